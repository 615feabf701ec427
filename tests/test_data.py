"""Training data: the three dataset layouts, batching with masks, length buckets, the log-mel featurizer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from conftest import REAL_TXT, REAL_WAV

import medtalk
from medtalk.core.audio import audio_from_array, load_audio
from medtalk.core.data.batching import collate, interpolate_to_frames, length_bucketed_batches
from medtalk.core.data.samples import EMOTIONS, Sample
from medtalk.core.errors import ConfigError, FileFormatError, InputError, MedtalkWarning
from medtalk.core.types import FeatureSeq
from medtalk.plugins.featurizers import mel_band_centers

CONTROLS = 174
RAMP_RATE_HZ = 50.0


def write_rig(path: Path, frames: int, seed: int = 0) -> np.ndarray:
    values = np.random.default_rng(seed).uniform(-1, 1, size=(frames, CONTROLS)).round(6)
    np.savetxt(path, values, fmt="%.6f", delimiter=",")
    return values.astype(np.float32)


def write_wav(path: Path, seconds: float = 0.5, frequency: float = 220.0) -> Path:
    time = np.arange(round(seconds * 16_000)) / 16_000
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * frequency * time), 16_000)
    return path


def write_manifest(path: Path, *entries: dict | str) -> Path:
    lines = [entry if isinstance(entry, str) else json.dumps(entry) for entry in entries]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def build_manifest(path: Path, **options) -> medtalk.Dataset:
    return medtalk.build("dataset", {"type": "manifest", "path": str(path), **options})


# ---------------------------------------------------------------------------------------------- samples


def test_the_seven_labels_are_in_the_label_table_order():
    assert EMOTIONS == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    assert Sample(id="a", emotion="surprise").emotion_index == 6
    assert Sample(id="a").emotion_index == -1


def test_a_sample_refuses_an_unknown_emotion():
    with pytest.raises(InputError) as error:
        Sample(id="a", emotion="joy")
    assert str(error.value) == (
        "unknown emotion 'joy': use one of angry, disgust, fear, happy, neutral, sad, surprise"
    )


# --------------------------------------------------------------------------------------------- manifest


@pytest.fixture
def corpus(tmp_path):
    """A folder of clips and rigs, and a manifest one folder up from them (paths are relative)."""
    data = tmp_path / "data"
    data.mkdir()
    write_wav(data / "a.wav")
    write_wav(data / "b.wav")
    (data / "face.png").write_bytes(b"not really a png")
    rigs = {"a": write_rig(data / "a.txt", 30, seed=1), "b": write_rig(data / "b.txt", 24, seed=2)}
    return data, rigs


def test_manifest_reads_every_field_with_paths_relative_to_its_folder(corpus, tmp_path, monkeypatch):
    data, rigs = corpus
    manifest = write_manifest(
        data / "train.jsonl",
        {
            "id": "first",
            "audio": "a.wav",
            "rig": "a.txt",
            "emotion": "happy",
            "transcript": "hello there",
            "guidance_text": "a broad smile",
            "guidance_image": "face.png",
            "utterance": "u1",
        },
        {"audio": "b.wav", "rig": str(data / "b.txt")},
    )
    monkeypatch.chdir(tmp_path)  # not the manifest's folder: relative paths must not depend on it
    dataset = build_manifest(manifest)
    first, second = list(dataset)
    assert len(dataset) == 2
    assert (first.id, first.emotion, first.emotion_index, first.utterance) == ("first", "happy", 3, "u1")
    assert (first.transcript, first.guidance_text) == ("hello there", "a broad smile")
    assert (first.audio_path, first.guidance_image) == (data / "a.wav", data / "face.png")
    assert (first.rig_name, first.fps) == ("metahuman-174", 60.0)
    np.testing.assert_array_equal(first.rig, rigs["a"])
    # Without an id, a line is named after its rig file; absent fields are None.
    assert (second.id, second.emotion, second.emotion_index, second.transcript) == ("b", None, -1, None)
    np.testing.assert_array_equal(second.rig, rigs["b"])


def test_a_manifest_for_a_stage_without_rigs_requires_only_what_it_names(corpus):
    data, _ = corpus
    manifest = write_manifest(data / "m.jsonl", {"audio": "a.wav", "transcript": "hi"})
    (sample,) = build_manifest(manifest, require=["audio", "transcript"])
    assert (sample.id, sample.rig, sample.rig_name, sample.audio_path) == ("a", None, None, data / "a.wav")


def test_default_ids_stay_unique_when_two_lines_share_a_file_name(corpus):
    data, _ = corpus
    (data / "other").mkdir()
    write_rig(data / "other" / "a.txt", 10)
    manifest = write_manifest(
        data / "m.jsonl", {"audio": "a.wav", "rig": "a.txt"}, {"audio": "a.wav", "rig": "other/a.txt"}
    )
    assert [sample.id for sample in build_manifest(manifest)] == ["a", "a@line2"]


KEYS = "the keys are id, audio, rig, emotion, transcript, guidance_text, guidance_image, utterance"
LABELS = "use one of angry, disgust, fear, happy, neutral, sad, surprise"
NO_RIG = (
    "no 'rig', which this dataset requires (require: rig, audio): "
    "add it to the line, or leave it out of require"
)
BAD_LINES = [
    (
        '{"audio": "a.wav", "rig": "a.txt"',
        "not valid JSON (Expecting ',' delimiter, column 34): write one JSON object per line",
    ),
    (
        '["a.wav", "a.txt"]',
        "expected a JSON object, got list: write one object per line, e.g. "
        '{"audio": "a.wav", "rig": "a.txt", "emotion": "happy"}',
    ),
    ('{"rig": "a.txt", "emotoin": "sad"}', f"unknown key 'emotoin' (did you mean 'emotion'?): {KEYS}"),
    ('{"audio": "a.wav", "rig": "a.txt", "speaker": "x"}', f"unknown key 'speaker': {KEYS}"),
    ('{"audio": "a.wav", "rig": "a.txt", "emotion": 3}', "'emotion' must be a string, got 3: quote it"),
    ('{"audio": "a.wav", "rig": "a.txt", "emotion": "joy"}', f"unknown emotion 'joy': {LABELS}"),
    ('{"audio": "a.wav", "rig": "a.txt", "emotion": "disg"}', f"unknown emotion 'disg': {LABELS}"),
    ('{"audio": "a.wav"}', NO_RIG),
    ('{"audio": "a.wav", "rig": null}', NO_RIG),
]


@pytest.mark.parametrize(("line", "message"), BAD_LINES)
def test_every_bad_line_is_one_line_naming_file_line_and_fix(corpus, line, message):
    data, _ = corpus
    manifest = write_manifest(data / "m.jsonl", {"audio": "b.wav", "rig": "b.txt"}, "", line)
    with pytest.raises(FileFormatError) as error:
        build_manifest(manifest)
    assert str(error.value) == f"{manifest}, line 3: {message}"


def test_a_missing_file_is_named_with_where_relative_paths_start(corpus):
    data, _ = corpus
    manifest = write_manifest(data / "m.jsonl", {"audio": "a.wav", "rig": "clips/a.txt"})
    with pytest.raises(FileFormatError) as error:
        build_manifest(manifest)
    assert str(error.value) == (
        f"{manifest}, line 1: rig file {data / 'clips' / 'a.txt'} does not exist: fix the path "
        "(relative paths start at the manifest's folder)"
    )


def test_a_folder_given_as_a_file_is_refused(corpus):
    data, _ = corpus
    manifest = write_manifest(data / "m.jsonl", {"audio": ".", "rig": "a.txt"})
    with pytest.raises(FileFormatError) as error:
        build_manifest(manifest)
    assert str(error.value) == f"{manifest}, line 1: audio {data} is a folder: give the path of a file"


def test_a_repeated_id_names_both_lines(corpus):
    data, _ = corpus
    manifest = write_manifest(
        data / "m.jsonl",
        {"id": "x", "audio": "a.wav", "rig": "a.txt"},
        {"id": "x", "audio": "b.wav", "rig": "b.txt"},
    )
    with pytest.raises(FileFormatError) as error:
        build_manifest(manifest)
    assert (
        str(error.value)
        == f"{manifest}, line 2: id 'x' is already used on line 1: give every line its own id"
    )


def test_a_malformed_rig_file_is_reported_with_both_locations(corpus):
    data, _ = corpus
    (data / "short.txt").write_text("0.1,0.2\n")
    manifest = write_manifest(data / "m.jsonl", {"audio": "a.wav", "rig": "short.txt"})
    with pytest.raises(FileFormatError) as error:
        build_manifest(manifest, rig="metahuman-174")
    assert str(error.value) == (
        f"{manifest}, line 1: {data / 'short.txt'}, line 1: expected 174 values (rig metahuman-174), "
        "found 2: every row needs one value per control"
    )


def test_a_rig_file_at_another_frame_rate_is_refused(corpus):
    data, rigs = corpus
    medtalk.write_sequence(medtalk.RigSequence(rigs["a"], fps=30.0, rig="metahuman-174"), data / "a30.json")
    manifest = write_manifest(data / "m.jsonl", {"audio": "a.wav", "rig": "a30.json"})
    with pytest.raises(FileFormatError) as error:
        build_manifest(manifest)
    assert str(error.value) == (
        f"{manifest}, line 1: {data / 'a30.json'}: holds rig metahuman-174 at 30 fps, but the dataset is rig "
        "metahuman-174 at 60 fps: convert the file (medtalk export) or set rig and fps in the dataset config"
    )
    (sample,) = build_manifest(manifest, fps=30.0)
    assert sample.fps == 30.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "\n  \n",
            "{path}: the manifest has no entries: write one JSON object per line (docs/training-data.md)",
        ),
        (b"\xff\xfe{", "{path}: not a UTF-8 text file: save the manifest as UTF-8 JSON lines"),
    ],
)
def test_an_empty_or_binary_manifest_is_refused(tmp_path, content, message):
    path = tmp_path / "m.jsonl"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(FileFormatError) as error:
        build_manifest(path)
    assert str(error.value) == message.format(path=path)


def test_a_missing_manifest_is_refused(tmp_path):
    with pytest.raises(InputError) as error:
        build_manifest(tmp_path / "nope.jsonl")
    assert str(error.value) == f"{tmp_path / 'nope.jsonl'}: no such file: give the path of a JSONL manifest"


def test_require_accepts_only_manifest_fields(tmp_path):
    with pytest.raises(ConfigError) as error:
        build_manifest(tmp_path / "m.jsonl", require=["rig", "speaker"])
    assert str(error.value) == (
        "invalid config for dataset 'manifest': field 'require.1': input should be 'audio', 'rig', "
        "'emotion', 'transcript', 'guidance_text', 'guidance_image' or 'utterance'; "
        "its fields are: path, rig, fps, require"
    )


# --------------------------------------------------------------------------------------- authors' layout


def authors_layout(root: Path, wavs: dict[str, Path], txts: dict[str, Path]) -> Path:
    for folder, files in (("WAV", wavs), ("VALID_CTR", txts)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name, source in files.items():
            (root / folder / name).symlink_to(source)
    return root


def build_layout(root: Path) -> medtalk.Dataset:
    return medtalk.build("dataset", {"type": "authors-layout", "root": str(root)})


def test_the_authors_layout_reads_the_real_clip(tmp_path):
    root = authors_layout(
        tmp_path, {"angry_gd04_001_021.wav": REAL_WAV}, {"angry_gd04_001_021.txt": REAL_TXT}
    )
    (sample,) = build_layout(root)
    assert (sample.id, sample.emotion, sample.emotion_index) == ("angry_gd04_001_021", "angry", 0)
    assert (sample.utterance, sample.rig_name, sample.fps) == ("gd04_001_021", "metahuman-174", 60.0)
    assert sample.audio_path == root / "WAV" / "angry_gd04_001_021.wav"
    np.testing.assert_array_equal(sample.rig, np.loadtxt(REAL_TXT, delimiter=",").astype(np.float32))
    # T = round(duration x fps): the authors' rig has exactly the frames of its audio at 60 fps.
    assert sample.num_frames == round(load_audio(sample.audio_path).duration * 60) == 202


def test_the_authors_abbreviated_prefixes_name_disgust_and_surprise(tmp_path):
    names = ("disg_x_1", "surp_x_1", "neutral_x_1")
    root = authors_layout(
        tmp_path, {f"{n}.wav": REAL_WAV for n in names}, {f"{n}.txt": REAL_TXT for n in names}
    )
    assert [(s.id, s.emotion) for s in build_layout(root)] == [
        ("disg_x_1", "disgust"),
        ("neutral_x_1", "neutral"),
        ("surp_x_1", "surprise"),
    ]


def test_an_unknown_prefix_is_an_error_naming_the_valid_ones(tmp_path):
    root = authors_layout(tmp_path, {"joy_x_1.wav": REAL_WAV}, {"joy_x_1.txt": REAL_TXT})
    with pytest.raises(FileFormatError) as error:
        build_layout(root)
    assert str(error.value) == (
        f"{root / 'VALID_CTR' / 'joy_x_1.txt'}: unknown emotion prefix 'joy': name the file PREFIX_NAME with "
        "PREFIX one of angry, disg, fear, happy, neutral, sad, surp"
    )


def test_unpaired_files_are_skipped_with_one_warning_per_folder(tmp_path):
    root = authors_layout(
        tmp_path,
        {"sad_a.wav": REAL_WAV, "sad_b.wav": REAL_WAV, "sad_c.wav": REAL_WAV},
        {"sad_a.txt": REAL_TXT, "fear_z.txt": REAL_TXT},
    )
    with pytest.warns(MedtalkWarning) as record:
        dataset = build_layout(root)
    assert [str(w.message) for w in record] == [
        f"{root}: 2 file(s) in WAV/ have no txt in VALID_CTR/ and are skipped (the first: sad_b.wav): "
        "add the missing files or remove these",
        f"{root}: 1 file(s) in VALID_CTR/ have no wav in WAV/ and are skipped (the first: fear_z.txt): "
        "add the missing files or remove these",
    ]
    assert [sample.id for sample in dataset] == ["sad_a"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: None, "{root}: no such folder: give the folder holding WAV/ and VALID_CTR/"),
        (
            lambda root: (root / "WAV").mkdir(parents=True),
            "{root}: no VALID_CTR/ folder: the authors' layout is WAV/NAME.wav with VALID_CTR/NAME.txt",
        ),
        (
            lambda root: [(root / f).mkdir(parents=True) for f in ("WAV", "VALID_CTR")],
            "{root}: no WAV/NAME.wav has a VALID_CTR/NAME.txt: give each clip both files under the same name",
        ),
    ],
)
def test_a_broken_layout_is_refused(tmp_path, make, message):
    root = tmp_path / "corpus"
    make(root)
    with pytest.raises(InputError) as error:
        build_layout(root)
    assert str(error.value) == message.format(root=root)


# ---------------------------------------------------------------------------------------- paired corpus


@pytest.fixture
def paired_manifest(tmp_path):
    """Three utterances (lengths 20, 12, 16), each under some emotions; one line per rendering."""
    lines = []
    layout = {"u1": ("happy", "angry", "sad"), "u2": ("sad", "happy"), "u3": ("neutral",)}
    lengths = {"u1": 20, "u2": 12, "u3": 16}
    for seed, (utterance, emotions) in enumerate(layout.items()):
        for emotion in emotions:
            write_rig(tmp_path / f"{utterance}_{emotion}.txt", lengths[utterance], seed=seed)
            lines.append({"rig": f"{utterance}_{emotion}.txt", "emotion": emotion, "utterance": utterance})
    return write_manifest(tmp_path / "paired.jsonl", *lines)


def build_paired(path: Path) -> medtalk.Dataset:
    return medtalk.build("dataset", {"type": "paired", "path": str(path)})


def test_paired_groups_hold_each_utterance_in_label_order(paired_manifest):
    dataset = build_paired(paired_manifest)
    groups = dataset.groups()
    assert list(groups) == ["u1", "u2", "u3"]
    assert [[s.emotion for s in group] for group in groups.values()] == [
        ["angry", "happy", "sad"],
        ["happy", "sad"],
        ["neutral"],
    ]
    assert [s.id for s in dataset] == ["u1_happy", "u1_angry", "u1_sad", "u2_sad", "u2_happy", "u3_neutral"]


def test_same_content_pairs_share_the_utterance_not_the_emotion(paired_manifest):
    dataset = build_paired(paired_manifest)
    pairs = dataset.same_content_pairs(seed=0)
    # u3 has one emotion, so its sample gets no partner.
    assert sorted(a.id for a, _ in pairs) == sorted(s.id for s in dataset if s.utterance != "u3")
    for a, b in pairs:
        assert a.utterance == b.utterance and a.emotion != b.emotion
        assert a.rig.shape == b.rig.shape
    assert [(a.id, b.id) for a, b in pairs] == [(a.id, b.id) for a, b in dataset.same_content_pairs(seed=0)]


def test_same_emotion_pairs_are_cropped_to_the_shorter_utterance(paired_manifest):
    dataset = build_paired(paired_manifest)
    full = {sample.id: sample.rig for sample in dataset}
    pairs = dataset.same_emotion_pairs(seed=3)
    # Only happy and sad appear in two utterances.
    assert sorted(a.id for a, _ in pairs) == ["u1_happy", "u1_sad", "u2_happy", "u2_sad"]
    for a, b in pairs:
        assert a.emotion == b.emotion and a.utterance != b.utterance
        assert a.num_frames == b.num_frames == 12
        np.testing.assert_array_equal(a.rig, full[a.id][:12])
        np.testing.assert_array_equal(b.rig, full[b.id][:12])


def test_cycle_pairs_give_every_sample_another_partner(paired_manifest):
    dataset = build_paired(paired_manifest)
    pairs = dataset.cycle_pairs(seed=1)
    assert sorted(a.id for a, _ in pairs) == sorted(s.id for s in dataset)
    assert all(a.id != b.id and a.num_frames == b.num_frames for a, b in pairs)


def test_pair_samplers_are_deterministic_for_a_seed_and_vary_with_it(paired_manifest):
    dataset = build_paired(paired_manifest)

    def ids(seed):
        return [(a.id, b.id) for a, b in dataset.cycle_pairs(seed)]

    assert ids(5) == ids(5)
    assert len({tuple(ids(seed)) for seed in range(6)}) > 1


def test_a_group_of_unequal_lengths_names_the_utterance_and_the_lengths(tmp_path):
    write_rig(tmp_path / "a.txt", 20)
    write_rig(tmp_path / "b.txt", 19)
    manifest = write_manifest(
        tmp_path / "p.jsonl",
        {"rig": "a.txt", "emotion": "happy", "utterance": "hello"},
        {"rig": "b.txt", "emotion": "sad", "utterance": "hello"},
    )
    with pytest.raises(FileFormatError) as error:
        build_paired(manifest)
    assert str(error.value) == (
        f"{manifest}: utterance 'hello' has rigs of different lengths (happy 20, sad 19 frames): "
        "render every emotion of an utterance with the same number of frames"
    )


def test_a_group_with_an_emotion_twice_is_refused(tmp_path):
    write_rig(tmp_path / "a.txt", 20)
    manifest = write_manifest(
        tmp_path / "p.jsonl",
        {"id": "1", "rig": "a.txt", "emotion": "happy", "utterance": "hello"},
        {"id": "2", "rig": "a.txt", "emotion": "happy", "utterance": "hello"},
    )
    with pytest.raises(FileFormatError) as error:
        build_paired(manifest)
    assert str(error.value) == (
        f"{manifest}, line 2: utterance 'hello' already has a 'happy' rig (line 1): "
        "give each emotion of an utterance one line"
    )


def test_paired_lines_need_an_utterance(tmp_path):
    write_rig(tmp_path / "a.txt", 20)
    manifest = write_manifest(tmp_path / "p.jsonl", {"rig": "a.txt", "emotion": "happy"})
    with pytest.raises(FileFormatError) as error:
        build_paired(manifest)
    assert str(error.value) == (
        f"{manifest}, line 1: no 'utterance', which this dataset requires "
        "(require: rig, emotion, utterance): add it to the line, or leave it out of require"
    )


def test_a_phase_without_any_pair_says_what_the_corpus_lacks(tmp_path):
    write_rig(tmp_path / "a.txt", 20)
    manifest = write_manifest(
        tmp_path / "p.jsonl",
        {"rig": "a.txt", "emotion": "happy", "utterance": "only"},
        {"rig": "a.txt", "emotion": "sad", "utterance": "only"},
    )
    dataset = build_paired(manifest)
    assert len(dataset.same_content_pairs(seed=0)) == 2
    with pytest.raises(InputError) as error:
        dataset.same_emotion_pairs(seed=0)
    assert str(error.value) == (
        f"{manifest}: no same-emotion pairs can be formed from 2 samples: the paired corpus needs each "
        "utterance under at least two emotions, and each emotion in at least two utterances"
    )


# --------------------------------------------------------------------------------------------- batching


def ramp(frames: int, rate_hz: float = RAMP_RATE_HZ, dims: int = 2) -> FeatureSeq:
    """Features that grow linearly in time: value = 1 + 2 t in the first column, -t in the second."""
    seconds = np.arange(frames) / rate_hz
    return FeatureSeq(np.stack([1 + 2 * seconds, -seconds], axis=1)[:, :dims], rate_hz=rate_hz)


def test_interpolation_is_exact_on_a_linear_ramp_and_clamps_past_the_end():
    features = ramp(10)  # 0 .. 0.18 s at 50 Hz
    out = interpolate_to_frames(features.values, RAMP_RATE_HZ, num_frames=15, fps=60.0)
    seconds = np.arange(15) / 60.0
    inside = seconds <= 9 / RAMP_RATE_HZ
    assert out.shape == (15, 2) and out.dtype == np.float32
    np.testing.assert_allclose(
        out[inside], np.stack([1 + 2 * seconds, -seconds], 1)[inside], rtol=0, atol=1e-6
    )
    np.testing.assert_array_equal(
        out[~inside], np.repeat(features.values[-1:].astype(np.float32), (~inside).sum(), 0)
    )


def test_interpolation_at_the_same_rate_is_the_identity():
    values = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    np.testing.assert_array_equal(interpolate_to_frames(values, 60.0, 7, 60.0), values)


def test_interpolation_refuses_empty_features():
    with pytest.raises(InputError) as error:
        interpolate_to_frames(np.zeros((0, 3)), 50.0, 10, 60.0)
    assert str(error.value) == "the features have no frames: the audio is too short to featurize"


def rig_sample(name: str, frames: int, emotion: str | None = None, seed: int = 0) -> Sample:
    values = np.random.default_rng(seed).uniform(0.1, 1, size=(frames, 4)).astype(np.float32)
    return Sample(id=name, rig=values, emotion=emotion, rig_name="test-4")


def test_collate_pads_with_zeros_and_masks_the_real_frames():
    samples = [rig_sample("a", 5, "sad"), rig_sample("b", 3), rig_sample("c", 4, "angry")]
    batch = collate(samples, {"content": [ramp(5), ramp(3), ramp(4)]})
    assert sorted(batch) == ["content_features", "emotion", "lengths", "mask", "rig"]
    assert batch["rig"].shape == (3, 5, 4) and batch["rig"].dtype == torch.float32
    assert batch["lengths"].tolist() == [5, 3, 4]
    assert batch["emotion"].tolist() == [5, -1, 0]
    assert batch["mask"].tolist() == [[True] * 5, [True] * 3 + [False] * 2, [True] * 4 + [False]]
    for row, sample in enumerate(samples):
        length = sample.num_frames
        np.testing.assert_array_equal(batch["rig"][row, :length].numpy(), sample.rig)
        assert not batch["rig"][row, length:].any()
        assert not batch["content_features"][row, length:].any()
    assert batch["content_features"].shape == (3, 5, 2)


def test_collate_brings_each_feature_stream_to_the_samples_frames():
    samples = [rig_sample("long", 30), rig_sample("short", 12)]
    mel = [ramp(50, rate_hz=100.0, dims=2), ramp(20, rate_hz=100.0, dims=2)]
    whisper = [ramp(26, rate_hz=50.0, dims=1), ramp(10, rate_hz=50.0, dims=1)]
    batch = collate(samples, {"mel": mel, "whisper": whisper}, fps=60.0)
    for row, (sample, stream) in enumerate(zip(samples, mel, strict=True)):
        expected = interpolate_to_frames(stream.values, 100.0, sample.num_frames, 60.0)
        np.testing.assert_array_equal(batch["mel_features"][row, : sample.num_frames].numpy(), expected)
    assert batch["whisper_features"].shape == (2, 30, 1)
    np.testing.assert_allclose(
        batch["whisper_features"][0, :, 0].numpy(), 1 + 2 * np.arange(30) / 60, atol=1e-6
    )


def test_collate_pads_text_tokens_with_their_own_mask():
    tokens = [np.ones((2, 8), np.float32), np.full((5, 8), 2.0, np.float32)]
    batch = collate([rig_sample("a", 3), rig_sample("b", 3)], text_tokens=tokens)
    assert batch["text_tokens"].shape == (2, 5, 8)
    assert batch["text_mask"].tolist() == [[True, True, False, False, False], [True] * 5]
    assert batch["text_tokens"][0, :2].eq(1).all() and not batch["text_tokens"][0, 2:].any()


def test_a_sample_without_rig_takes_its_length_from_the_audio(tmp_path):
    audio = write_wav(tmp_path / "a.wav", seconds=0.51)
    batch = collate([Sample(id="a", audio_path=audio, emotion="fear")], {"mel": [ramp(52, rate_hz=100.0)]})
    assert "rig" not in batch
    assert batch["lengths"].tolist() == [round(0.51 * 60)] == [31]
    assert batch["mel_features"].shape == (1, 31, 2)


@pytest.mark.parametrize(
    ("samples", "kwargs", "message"),
    [
        ([], {}, "collate got no samples: give at least one"),
        (
            [rig_sample("a", 3), Sample(id="b", audio_path=REAL_WAV)],
            {},
            "sample 'b' has no rig but others in its batch do: batch samples of one kind, "
            "or require rig in the dataset config",
        ),
        (
            [rig_sample("a", 3), rig_sample("b", 3)],
            {"features": {"mel": [ramp(3)]}},
            "feature stream 'mel' has 1 entries for 2 samples: give one FeatureSeq per sample",
        ),
        (
            [rig_sample("a", 3)],
            {"fps": 30.0},
            "sample 'a' has rig frames at 60 fps, but the batch is at 30 fps: resample the rig first",
        ),
        (
            [Sample(id="a")],
            {},
            "sample 'a' has neither a rig nor audio, so its length is unknown: give it one",
        ),
    ],
)
def test_collate_refuses_what_it_cannot_batch(samples, kwargs, message):
    with pytest.raises(InputError) as error:
        collate(samples, **kwargs)
    assert str(error.value) == message


# --------------------------------------------------------------------------------------- length buckets


LENGTHS = np.random.default_rng(7).integers(50, 600, size=203).tolist()


def padding(batches: list[list[int]]) -> int:
    return sum(
        max(LENGTHS[i] for i in batch) * len(batch) - sum(LENGTHS[i] for i in batch) for batch in batches
    )


def test_buckets_cover_every_sample_once_and_are_deterministic_for_a_seed():
    batches = length_bucketed_batches(LENGTHS, batch_size=8, seed=11, bucket_batches=5)
    assert sorted(i for batch in batches for i in batch) == list(range(len(LENGTHS)))
    assert sorted(len(batch) for batch in batches)[0] == 203 % 8
    assert batches == length_bucketed_batches(LENGTHS, batch_size=8, seed=11, bucket_batches=5)
    assert batches != length_bucketed_batches(LENGTHS, batch_size=8, seed=12, bucket_batches=5)


def test_buckets_group_similar_lengths():
    bucketed = length_bucketed_batches(LENGTHS, batch_size=8, seed=0)
    order = np.random.default_rng(0).permutation(len(LENGTHS)).tolist()
    random_batches = [order[i : i + 8] for i in range(0, len(order), 8)]
    assert padding(bucketed) < padding(random_batches) / 10


def test_without_shuffle_the_batches_run_from_short_to_long():
    batches = length_bucketed_batches([5, 1, 4, 2, 3], batch_size=2, seed=0, shuffle=False)
    assert batches == [[1, 3], [4, 2], [0]]


def test_drop_last_leaves_out_the_partial_batch():
    batches = length_bucketed_batches(LENGTHS, batch_size=8, seed=1, drop_last=True)
    assert {len(batch) for batch in batches} == {8}
    assert len(batches) == 203 // 8


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_ranks_get_disjoint_equal_shares_of_full_batches(world_size):
    shares = [
        length_bucketed_batches(LENGTHS, batch_size=8, seed=5, rank=rank, world_size=world_size)
        for rank in range(world_size)
    ]
    per_rank = 203 // 8 // world_size
    assert [len(share) for share in shares] == [per_rank] * world_size
    assert all(len(batch) == 8 for share in shares for batch in share)
    seen = [i for share in shares for batch in share for i in batch]
    assert len(seen) == len(set(seen)) == per_rank * world_size * 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
        ({"rank": 2, "world_size": 2}, "rank must be in 0..world_size-1, got rank 2 of world_size 2"),
        (
            {"batch_size": 64, "world_size": 4},
            "203 samples make fewer than one batch of 64 for each of 4 ranks: "
            "lower batch_size or use fewer ranks",
        ),
    ],
)
def test_bucket_arguments_are_checked(kwargs, message):
    with pytest.raises(InputError) as error:
        length_bucketed_batches(LENGTHS, seed=0, **{"batch_size": 8, **kwargs})
    assert str(error.value) == message


# -------------------------------------------------------------------------------------------- log-mel


def tone(frequency: float, seconds: float = 0.5) -> medtalk.Audio:
    time = np.arange(round(seconds * 16_000)) / 16_000
    return audio_from_array((0.5 * np.sin(2 * np.pi * frequency * time)).astype(np.float32), 16_000)


def test_logmel_is_a_streaming_content_featurizer_of_80_bands_at_100_hz():
    featurizer = medtalk.build("featurizer", "logmel")
    assert (featurizer.role, featurizer.supports_streaming) == ("content", True)
    assert (featurizer.dim, featurizer.rate_hz) == (80, 100.0)


@pytest.mark.parametrize("seconds", [0.1, 0.5, 1.2345, 3.36])
def test_logmel_frames_are_floor_of_duration_times_100_plus_one(seconds):
    features = medtalk.build("featurizer", "logmel")(tone(440.0, seconds))
    assert features.values.shape == (math.floor(round(seconds * 16_000) / 160) + 1, 80)
    assert features.values.dtype == np.float32 and features.rate_hz == 100.0


@pytest.mark.parametrize("frequency", [250.0, 1000.0, 3000.0, 6500.0])
def test_a_pure_tone_peaks_in_the_band_centred_nearest_to_it(frequency):
    features = medtalk.build("featurizer", "logmel")(tone(frequency))
    middle = features.values[10:-10]  # away from the zero-padded ends
    centers = mel_band_centers(80, 0.0, 8000.0)
    nearest = int(np.argmin(np.abs(centers - frequency)))
    assert set(np.argmax(middle, axis=1).tolist()) == {nearest}


def test_silence_sits_at_the_log_floor():
    with pytest.warns(MedtalkWarning):
        silent = audio_from_array(np.zeros(1600, np.float32), 16_000)
    features = medtalk.build("featurizer", {"type": "logmel", "log_floor": 1e-8})(silent)
    np.testing.assert_array_equal(features.values, np.float32(np.log(1e-8)))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"fmin": 4000, "fmax": 3000},
            "invalid config for featurizer 'logmel': field '(root)': value error, fmin (4000 Hz) must be "
            "below fmax (3000 Hz); its fields are: n_mels, hop_ms, win_ms, fmin, fmax, log_floor",
        ),
        (
            {"n_mels": 256, "win_ms": 10},
            "logmel: 75 of 256 mel bands fall between FFT bins (the first at 7 Hz): use fewer n_mels, "
            "a longer win_ms or a higher fmin",
        ),
    ],
)
def test_a_logmel_config_that_cannot_work_is_refused_at_build_time(options, message):
    with pytest.raises(ConfigError) as error:
        medtalk.build("featurizer", {"type": "logmel", **options})
    assert str(error.value) == message


def test_the_real_clip_featurizes_to_its_duration():
    audio = load_audio(REAL_WAV)
    features = medtalk.build("featurizer", "logmel")(audio)
    assert features.values.shape == (audio.num_samples // 160 + 1, 80) == (337, 80)
    assert np.isfinite(features.values).all()
