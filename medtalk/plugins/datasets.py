"""Built-in training datasets: a JSONL manifest, the MEDTalk authors' folder layout, the paired corpus.

Every dataset reads its whole index and every rig file when it is built, so a bad line or file is
reported before training starts; samples are then served from memory (174 controls at 60 fps take
about 150 MB per hour of animation). See docs/training-data.md.
"""

from __future__ import annotations

import difflib
import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from medtalk import hookimpl
from medtalk.core.components import ComponentConfig, Dataset
from medtalk.core.data.samples import AUTHORS_EMOTION_PREFIXES, EMOTIONS, Sample
from medtalk.core.errors import FileFormatError, InputError, MedtalkWarning

if TYPE_CHECKING:
    import numpy as np

MANIFEST_KEYS = (
    "id",
    "audio",
    "rig",
    "emotion",
    "transcript",
    "guidance_text",
    "guidance_image",
    "utterance",
)
_FILE_KEYS = ("audio", "rig", "guidance_image")
ManifestField = Literal[
    "audio", "rig", "emotion", "transcript", "guidance_text", "guidance_image", "utterance"
]

AUTHORS_AUDIO_FOLDER = "WAV"
AUTHORS_RIG_FOLDER = "VALID_CTR"
# The paired corpus is a manifest whose every line has these.
_PAIRED_REQUIRES: tuple[ManifestField, ...] = ("rig", "emotion", "utterance")


class SampleList(Dataset):
    """A dataset whose samples are read once, at build time, and kept in memory."""

    samples: list[Sample]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]


# ---------------------------------------------------------------------------------------------- manifest


class ManifestConfig(ComponentConfig):
    path: Path = Field(description="The JSONL manifest: one JSON object per line (docs/training-data.md)")
    rig: str = Field(default="metahuman-174", description="Rig of the rig files")
    fps: float = Field(default=60.0, gt=0, description="Frames per second of the rig files")
    require: list[ManifestField] = Field(
        default_factory=lambda: ["rig", "audio"],
        description="Fields every line must have, for the stage that trains on it",
    )


class ManifestDataset(SampleList):
    """A JSONL manifest: one sample per line (audio, rig, emotion, transcript, guidance)."""

    name = "manifest"
    Config = ManifestConfig
    config: ManifestConfig

    def __init__(self, config: ManifestConfig | None = None) -> None:
        super().__init__(config)
        entries = read_manifest(self.config.path, self.config.rig, self.config.fps, self.config.require)
        self.samples = [sample for _, sample in entries]


def read_manifest(
    path: str | Path, rig: str, fps: float, require: tuple[str, ...] | list[str] = ()
) -> list[tuple[int, Sample]]:
    """(line number, sample) for every non-blank line; any bad line raises one-line ``FileFormatError``."""
    manifest = Path(path)
    _check_rig_name(rig)
    if not manifest.is_file():
        problem = "is a folder" if manifest.is_dir() else "no such file"
        raise InputError(f"{manifest}: {problem}: give the path of a JSONL manifest")
    try:
        text = manifest.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FileFormatError(
            f"{manifest}: not a UTF-8 text file: save the manifest as UTF-8 JSON lines"
        ) from None

    entries: list[tuple[int, Sample]] = []
    id_lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            sample = _manifest_sample(manifest, number, line, rig, fps, require, id_lines)
            entries.append((number, sample))
    if not entries:
        raise FileFormatError(
            f"{manifest}: the manifest has no entries: write one JSON object per line (docs/training-data.md)"
        )
    return entries


def _manifest_sample(
    manifest: Path,
    number: int,
    line: str,
    rig: str,
    fps: float,
    require: tuple[str, ...] | list[str],
    id_lines: dict[str, int],
) -> Sample:
    where = f"{manifest}, line {number}"
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as error:
        raise FileFormatError(
            f"{where}: not valid JSON ({error.msg}, column {error.colno}): write one JSON object per line"
        ) from None
    if not isinstance(entry, dict):
        raise FileFormatError(
            f"{where}: expected a JSON object, got {type(entry).__name__}: write one object per line, e.g. "
            '{"audio": "a.wav", "rig": "a.txt", "emotion": "happy"}'
        )
    for key, value in entry.items():
        if key not in MANIFEST_KEYS:
            close = difflib.get_close_matches(key, MANIFEST_KEYS, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise FileFormatError(
                f"{where}: unknown key '{key}'{hint}: the keys are {', '.join(MANIFEST_KEYS)}"
            )
        if value is not None and not isinstance(value, str):
            raise FileFormatError(f"{where}: '{key}' must be a string, got {json.dumps(value)}: quote it")
    fields = {key: value for key, value in entry.items() if value not in (None, "")}

    emotion = fields.get("emotion")
    if emotion is not None and emotion not in EMOTIONS:
        raise FileFormatError(f"{where}: unknown emotion '{emotion}': use one of {', '.join(EMOTIONS)}")
    for key in require:
        if key not in fields:
            raise FileFormatError(
                f"{where}: no '{key}', which this dataset requires (require: {', '.join(require)}): "
                "add it to the line, or leave it out of require"
            )
    files = {key: _manifest_file(where, manifest, key, fields[key]) for key in _FILE_KEYS if key in fields}

    sample_id = fields.get("id")
    if sample_id is not None and sample_id in id_lines:
        raise FileFormatError(
            f"{where}: id '{sample_id}' is already used on line {id_lines[sample_id]}: "
            "give every line its own id"
        )
    if sample_id is None:
        named_after = files.get("rig") or files.get("audio")
        sample_id = named_after.stem if named_after is not None else f"line{number}"
        if sample_id in id_lines:
            sample_id = f"{sample_id}@line{number}"
    id_lines[sample_id] = number

    values = None
    if "rig" in files:
        try:
            values = read_rig_values(files["rig"], rig, fps)
        except InputError as error:
            raise FileFormatError(f"{where}: {error}") from None
    return Sample(
        id=sample_id,
        rig=values,
        fps=fps,
        rig_name=rig if values is not None else None,
        emotion=emotion,
        audio_path=files.get("audio"),
        transcript=fields.get("transcript"),
        guidance_text=fields.get("guidance_text"),
        guidance_image=files.get("guidance_image"),
        utterance=fields.get("utterance"),
    )


def _manifest_file(where: str, manifest: Path, key: str, value: str) -> Path:
    path = Path(value)
    if not path.is_absolute():
        path = manifest.parent / path
    if not path.exists():
        raise FileFormatError(
            f"{where}: {key} file {path} does not exist: fix the path (relative paths start at the "
            "manifest's folder)"
        )
    if path.is_dir():
        raise FileFormatError(f"{where}: {key} {path} is a folder: give the path of a file")
    return path


def _check_rig_name(rig: str) -> None:
    from medtalk.core.plugins import get_registry

    get_registry("rig").get(rig)  # an unknown name raises, listing the registered rigs


def read_rig_values(path: Path, rig: str, fps: float) -> np.ndarray:
    """The (T, C) float32 values of a rig file in any importable format, checked to be ``rig`` at ``fps``.

    Formats without a rig or frame rate of their own (txt, csv) are read as ``rig`` at ``fps``.
    """
    from medtalk.core.fileio import format_for, read_sequence
    from medtalk.core.plugins import get_registry

    format_name = format_for("importer", path)
    accepted = get_registry("importer").get(format_name).Config.model_fields
    options = {key: value for key, value in {"rig": rig, "fps": fps}.items() if key in accepted}
    sequence = read_sequence(path, format_name, options)
    if sequence.rig != rig or sequence.fps != fps:
        raise InputError(
            f"{path}: holds rig {sequence.rig} at {sequence.fps:g} fps, but the dataset is rig {rig} at "
            f"{fps:g} fps: convert the file (medtalk export) or set rig and fps in the dataset config"
        )
    return sequence.values


# ----------------------------------------------------------------------------------------- authors' layout


class AuthorsLayoutConfig(ComponentConfig):
    root: Path = Field(description="Folder holding WAV/NAME.wav and VALID_CTR/NAME.txt (metahuman-174)")
    fps: float = Field(default=60.0, gt=0, description="Frames per second of the txt files")


class AuthorsLayoutDataset(SampleList):
    """The MEDTalk authors' folders: WAV/NAME.wav with VALID_CTR/NAME.txt, emotion from NAME's prefix.

    NAME is PREFIX_REST with PREFIX one of angry, disg, fear, happy, neutral, sad, surp; REST becomes the
    utterance. An unknown prefix is an error (the emotion cannot be guessed). A wav without its txt, or a
    txt without its wav, is skipped with one warning per folder, naming how many and the first.
    """

    name = "authors-layout"
    Config = AuthorsLayoutConfig
    config: AuthorsLayoutConfig
    rig_name = "metahuman-174"

    def __init__(self, config: AuthorsLayoutConfig | None = None) -> None:
        super().__init__(config)
        root = self.config.root
        if not root.is_dir():
            raise InputError(f"{root}: no such folder: give the folder holding WAV/ and VALID_CTR/")
        audio = self._files(AUTHORS_AUDIO_FOLDER, ".wav")
        rigs = self._files(AUTHORS_RIG_FOLDER, ".txt")
        for path in sorted([*audio.values(), *rigs.values()]):
            emotion_of_name(path)
        self._warn_unpaired(audio, rigs, AUTHORS_AUDIO_FOLDER, AUTHORS_RIG_FOLDER, "txt")
        self._warn_unpaired(rigs, audio, AUTHORS_RIG_FOLDER, AUTHORS_AUDIO_FOLDER, "wav")
        names = sorted(audio.keys() & rigs.keys())
        if not names:
            raise InputError(
                f"{root}: no {AUTHORS_AUDIO_FOLDER}/NAME.wav has a {AUTHORS_RIG_FOLDER}/NAME.txt: "
                "give each clip both files under the same name"
            )
        self.samples = [self._sample(name, audio[name], rigs[name]) for name in names]

    def _files(self, folder: str, suffix: str) -> dict[str, Path]:
        path = self.config.root / folder
        if not path.is_dir():
            raise InputError(
                f"{self.config.root}: no {folder}/ folder: the authors' layout is "
                f"{AUTHORS_AUDIO_FOLDER}/NAME.wav with {AUTHORS_RIG_FOLDER}/NAME.txt"
            )
        return {
            file.stem: file for file in path.iterdir() if file.is_file() and file.suffix.lower() == suffix
        }

    def _warn_unpaired(
        self, files: dict[str, Path], others: dict[str, Path], folder: str, other_folder: str, other_kind: str
    ) -> None:
        unpaired = sorted(files.keys() - others.keys())
        if unpaired:
            first = files[unpaired[0]]
            warnings.warn(
                f"{self.config.root}: {len(unpaired)} file(s) in {folder}/ have no {other_kind} in "
                f"{other_folder}/ and are skipped (the first: {first.name}): add the missing files or "
                "remove these",
                MedtalkWarning,
                stacklevel=2,
            )

    def _sample(self, name: str, audio: Path, rig: Path) -> Sample:
        emotion = emotion_of_name(rig)
        return Sample(
            id=name,
            rig=read_rig_values(rig, self.rig_name, self.config.fps),
            fps=self.config.fps,
            rig_name=self.rig_name,
            emotion=emotion,
            audio_path=audio,
            utterance=name.partition("_")[2] or None,
        )


def emotion_of_name(path: Path) -> str:
    """The emotion named by the authors' file-name prefix (``disg_...`` is disgust)."""
    prefix = path.stem.partition("_")[0]
    try:
        return AUTHORS_EMOTION_PREFIXES[prefix]
    except KeyError:
        raise FileFormatError(
            f"{path}: unknown emotion prefix '{prefix}': name the file PREFIX_NAME with PREFIX one of "
            f"{', '.join(AUTHORS_EMOTION_PREFIXES)}"
        ) from None


# -------------------------------------------------------------------------------------------- paired corpus


class PairedConfig(ComponentConfig):
    path: Path = Field(
        description="JSONL manifest whose lines all have rig, emotion and utterance (docs/training-data.md)"
    )
    rig: str = Field(default="metahuman-174", description="Rig of the rig files")
    fps: float = Field(default=60.0, gt=0, description="Frames per second of the rig files")


class PairedDataset(SampleList):
    """The stage-1 corpus: each utterance under several emotions, rigs of equal length (a manifest).

    Lines sharing an ``utterance`` form a group; a group's rigs must have the same number of frames and
    its emotions must differ. The pair samplers serve the three phases of the disentanglement stage.
    """

    name = "paired"
    Config = PairedConfig
    config: PairedConfig

    def __init__(self, config: PairedConfig | None = None) -> None:
        super().__init__(config)
        path = self.config.path
        entries = read_manifest(path, self.config.rig, self.config.fps, _PAIRED_REQUIRES)
        self.samples = [sample for _, sample in entries]
        grouped: dict[str, list[tuple[int, Sample]]] = {}
        for number, sample in entries:
            grouped.setdefault(sample.utterance, []).append((number, sample))  # type: ignore[arg-type]
        self._groups: dict[str, tuple[Sample, ...]] = {}
        for utterance, members in grouped.items():
            _check_group(path, utterance, members)
            ordered = sorted((sample for _, sample in members), key=lambda sample: sample.emotion_index)
            self._groups[utterance] = tuple(ordered)

    def groups(self) -> dict[str, tuple[Sample, ...]]:
        """Utterance -> its samples, one per emotion in label order; utterances in manifest order."""
        return dict(self._groups)

    def same_content_pairs(self, seed: int) -> list[tuple[Sample, Sample]]:
        """One pair per sample: it and the same utterance under another emotion (equal lengths).

        Samples whose utterance has a single emotion get no pair. The order is shuffled by ``seed``.
        """
        by_utterance = self._indices_by(lambda sample: sample.utterance)
        return self._pairs(seed, "same-content", lambda sample: by_utterance[sample.utterance])

    def same_emotion_pairs(self, seed: int) -> list[tuple[Sample, Sample]]:
        """One pair per sample: it and another utterance with the same emotion.

        The two utterances differ in length: both are cropped to the shorter one's first frames (the
        swap of emotion embeddings needs frame-aligned sequences; the audio is not cut).
        """
        # An utterance has each emotion once, so the other samples of an emotion are other utterances.
        by_emotion = self._indices_by(lambda sample: sample.emotion)
        return self._pairs(seed, "same-emotion", lambda sample: by_emotion[sample.emotion])

    def cycle_pairs(self, seed: int) -> list[tuple[Sample, Sample]]:
        """One pair per sample: it and any other sample, both cropped to the shorter, for cycle exchange."""
        everyone = list(range(len(self.samples)))
        return self._pairs(seed, "cycle", lambda sample: everyone)

    def _indices_by(self, attribute: Callable[[Sample], str | None]) -> dict[str | None, list[int]]:
        indices: dict[str | None, list[int]] = {}
        for index, sample in enumerate(self.samples):
            indices.setdefault(attribute(sample), []).append(index)
        return indices

    def _pairs(
        self, seed: int, phase: str, candidates: Callable[[Sample], list[int]]
    ) -> list[tuple[Sample, Sample]]:
        """For each sample, a partner drawn from its candidates other than itself; shuffled by ``seed``."""
        import numpy as np

        rng = np.random.default_rng(seed)
        pairs: list[tuple[Sample, Sample]] = []
        for index, sample in enumerate(self.samples):
            group = candidates(sample)  # sorted indices that include ``index``
            if len(group) < 2:
                continue
            # Draw among the others: a slot past the sample's own position shifts by one.
            slot = int(rng.integers(len(group) - 1))
            slot += slot >= group.index(index)
            pairs.append(crop_to_shorter(sample, self.samples[group[slot]]))
        if not pairs:
            raise InputError(
                f"{self.config.path}: no {phase} pairs can be formed from {len(self.samples)} samples: "
                "the paired corpus needs each utterance under at least two emotions, and each emotion "
                "in at least two utterances"
            )
        return [pairs[i] for i in rng.permutation(len(pairs))]


def crop_to_shorter(first: Sample, second: Sample) -> tuple[Sample, Sample]:
    """Both samples cut to the first frames of the shorter rig (views; unchanged when equal)."""
    frames = min(first.num_frames or 0, second.num_frames or 0)
    if first.num_frames == second.num_frames:
        return first, second
    return first.cropped(frames), second.cropped(frames)


def _check_group(path: Path, utterance: str, members: list[tuple[int, Sample]]) -> None:
    lengths = {sample.num_frames for _, sample in members}
    if len(lengths) > 1:
        listed = ", ".join(f"{sample.emotion} {sample.num_frames}" for _, sample in members)
        raise FileFormatError(
            f"{path}: utterance '{utterance}' has rigs of different lengths ({listed} frames): "
            "render every emotion of an utterance with the same number of frames"
        )
    seen: dict[str, int] = {}
    for number, sample in members:
        emotion = sample.emotion or ""
        if emotion in seen:
            raise FileFormatError(
                f"{path}, line {number}: utterance '{utterance}' already has a '{emotion}' rig (line "
                f"{seen[emotion]}): give each emotion of an utterance one line"
            )
        seen[emotion] = number


@hookimpl
def register_datasets(register):
    register(ManifestDataset)
    register(AuthorsLayoutDataset)
    register(PairedDataset)
