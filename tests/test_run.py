"""`medtalk run` end to end with a small trained bundle: frames, formats, emotion tracks, ASR, errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from test_training import StandInPlugin, train_small_bundle

from medtalk import hookimpl
from medtalk.cli import run_cli
from medtalk.core.components import ComponentConfig, Transcriber
from medtalk.core.data.samples import EMOTIONS
from medtalk.core.errors import InputError
from medtalk.core.fileio import read_sequence
from medtalk.core.pipeline import Pipeline
from medtalk.core.plugins import get_registry
from medtalk.core.types import Transcript

ROOT = Path(__file__).resolve().parents[1]
HEARD = "this is u2 said sad"
DURATION = 1.234


class CountingTranscriber(Transcriber):
    """A stand-in speech recogniser: always hears HEARD, and counts its instances and calls."""

    name = "test-counting-asr"
    Config = ComponentConfig
    instances = 0
    calls = 0

    def __init__(self, config=None) -> None:
        super().__init__(config)
        type(self).instances += 1

    def __call__(self, audio, text=None):
        type(self).calls += 1
        return Transcript(HEARD, language="en")


class AsrPlugin:
    @staticmethod
    @hookimpl
    def register_transcribers(register):
        register(CountingTranscriber)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A bundle trained for two epochs per stage on the training tests' corpus, naming the fake ASR."""
    bundle = train_small_bundle(tmp_path_factory.mktemp("trained"), "run-stand-ins")
    card_path = bundle / "model.json"
    card = json.loads(card_path.read_text())
    card["pipeline"]["transcriber"] = {"type": "test-counting-asr"}
    card_path.write_text(json.dumps(card, indent=2))
    return bundle


@pytest.fixture(autouse=True)
def stand_ins(register_plugin):
    register_plugin(StandInPlugin, name="run-stand-ins")
    register_plugin(AsrPlugin, name="run-asr")
    CountingTranscriber.instances = CountingTranscriber.calls = 0


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """The current folder, holding speech.wav: a 1.234 s voiced tone with a slow pitch glide."""
    t = np.arange(int(DURATION * 16000)) / 16000
    tone = 0.3 * np.sin(2 * np.pi * (180 + 40 * t) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    soundfile.write(tmp_path / "speech.wav", tone.astype(np.float32), 16000)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str) -> int:
    return run_cli(["run", *args])


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_run_writes_the_authors_txt_next_to_the_current_folder(bundle, workdir, capsys):
    assert run("speech.wav", "--model", str(bundle), "--transcript", HEARD) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"wrote speech\.txt \(74 frames, 1\.23 s of audio at 60 fps\) in \d+\.\d s\n", out)
    rows = (workdir / "speech.txt").read_text().splitlines()
    assert len(rows) == round(DURATION * 60) == 74
    assert {len(row.split(",")) for row in rows} == {174}
    assert files(workdir) == ["speech.txt", "speech.wav"]


@pytest.mark.parametrize("fps", ["30", "25", "60"])
def test_the_frame_count_is_the_duration_times_fps(bundle, workdir, fps):
    assert run("speech.wav", "-m", str(bundle), "--transcript", HEARD, "--fps", fps, "-o", "take.json") == 0
    take = read_sequence(workdir / "take.json")
    assert take.num_frames == round(DURATION * float(fps))
    assert take.fps == float(fps)


@pytest.mark.parametrize("exporter", [registration.name for registration in get_registry("exporter")])
def test_every_format_is_written(bundle, workdir, capsys, exporter):
    assert run("speech.wav", "-m", str(bundle), "--transcript", HEARD, "--format", exporter) == 0
    extension = get_registry("exporter").get(exporter).extensions[0]
    written = workdir / f"speech{extension}"
    assert capsys.readouterr().out.startswith(f"wrote {written.name} (74 frames,")
    assert written.stat().st_size > 0
    if exporter in get_registry("importer"):
        options = {"fps": 60.0} if exporter in ("txt", "csv") else {}
        assert read_sequence(written, exporter, options).num_frames == 74


def test_exporter_options_pass_through(bundle, workdir):
    options = ("-o", "take.anim", "-O", "start_frame=101")
    assert run("speech.wav", "-m", str(bundle), "--transcript", HEARD, *options) == 0
    assert (workdir / "take.anim").read_text().split("keys {\n", 1)[1].lstrip().startswith("101 ")


# ------------------------------------------------------------------------------------ emotion tracks


def take(bundle: Path, *options: str, name: str) -> np.ndarray:
    assert run("speech.wav", "-m", str(bundle), "--transcript", HEARD, "-o", name, *options) == 0
    return read_sequence(Path(name), "txt", {"fps": 60.0}).values


def test_an_emotion_track_moves_the_upper_face_from_keyframe_to_keyframe(bundle, workdir):
    upper = get_registry("rig").get("metahuman-174").sets["upper"]
    angry = take(bundle, "--guidance", "label:angry", name="angry.txt")
    sad = take(bundle, "--guidance", "label:sad", name="sad.txt")
    # angry until 0.4 s (frame 24), easing to sad by 0.8 s (frame 48), then sad.
    track = take(bundle, "--emotion-track", "0:angry,0.4:angry,0.8:sad", name="track.txt")
    assert np.abs(angry[:, upper] - sad[:, upper]).mean() > 0.005
    # Savitzky-Golay reads two frames either side, so the holds match from two frames off the easing.
    np.testing.assert_allclose(track[:22], angry[:22], atol=1e-5)
    np.testing.assert_allclose(track[51:], sad[51:], atol=1e-5)
    distance_to_sad = np.abs(track[:, upper] - sad[:, upper]).mean(axis=1)
    assert distance_to_sad[30] > distance_to_sad[36] > distance_to_sad[42]


def test_a_track_strength_scales_the_emotion(bundle, workdir):
    upper = get_registry("rig").get("metahuman-174").sets["upper"]
    angry = take(bundle, "--emotion-track", "0:angry", name="angry.txt")
    sad = take(bundle, "--emotion-track", "0:sad", name="sad.txt")
    muted_angry = take(bundle, "--emotion-track", "0:angry@0", name="muted-angry.txt")
    muted_sad = take(bundle, "--emotion-track", "0:sad@0", name="muted-sad.txt")
    half_angry = take(bundle, "--emotion-track", "0:angry@0.5", name="half-angry.txt")
    assert np.abs(angry - sad)[:, upper].mean() > 0.005
    np.testing.assert_allclose(muted_angry, muted_sad, atol=1e-6)
    assert np.abs(half_angry - angry).mean() > 1e-3 and np.abs(half_angry - muted_angry).mean() > 1e-3


def test_a_one_keyframe_track_is_the_label(bundle, workdir):
    label = take(bundle, "--guidance", "label:happy", name="label.txt")
    np.testing.assert_allclose(take(bundle, "--emotion-track", "0:happy", name="t.txt"), label, atol=1e-6)


def test_the_python_api_takes_a_track(bundle, speech_audio):
    pipeline = Pipeline.from_pretrained(bundle)
    sequence = pipeline(speech_audio, transcript=HEARD, emotion_track="0:angry,1:sad@0.5")
    assert sequence.num_frames == 74
    with pytest.raises(InputError) as error:
        pipeline(speech_audio, "label:sad", transcript=HEARD, emotion_track="0:angry")
    assert str(error.value) == (
        "both --guidance and --emotion-track were given: the emotion track sets the emotion over time "
        "on its own, so give only one"
    )


@pytest.fixture
def speech_audio(workdir) -> Path:
    return workdir / "speech.wav"


# --------------------------------------------------------------------------------------- transcripts


def test_without_a_transcript_the_cards_recogniser_is_heard_once(bundle, workdir, capsys):
    assert run("speech.wav", "-m", str(bundle), "-g", "label:angry", "-o", "heard.txt") == 0
    assert (CountingTranscriber.instances, CountingTranscriber.calls) == (1, 1)
    out = capsys.readouterr().out
    assert out.startswith(f"heard: {HEARD!r}\nwrote heard.txt (74 frames,")
    given = take(bundle, "-g", "label:angry", name="given.txt")
    assert CountingTranscriber.calls == 1  # --transcript skips recognition
    other = take(bundle, "-g", "label:angry", "--transcript", "something else entirely", name="other.txt")
    heard = read_sequence(workdir / "heard.txt", "txt", {"fps": 60.0}).values
    np.testing.assert_allclose(heard, given, atol=1e-6)  # the recognised words are what the model read
    assert np.abs(other - given).mean() > 1e-5


def test_a_warm_pipeline_builds_each_part_once_and_only_those_it_needs(bundle, speech_audio):
    pipeline = Pipeline.from_pretrained(bundle)
    first = pipeline(speech_audio, "label:happy", transcript=HEARD)
    assert "transcriber" not in vars(pipeline) and "guidance_text_encoder" not in vars(pipeline)
    encoder = pipeline.text_encoder
    pipeline(speech_audio, "label:happy")
    pipeline(speech_audio, "text:a happy face")
    assert pipeline.text_encoder is encoder
    assert (CountingTranscriber.instances, CountingTranscriber.calls) == (1, 2)
    np.testing.assert_array_equal(pipeline(speech_audio, "label:happy", HEARD).values, first.values)


def test_a_recogniser_error_is_one_line(bundle, workdir, monkeypatch, capsys):
    def deaf(self, audio, text=None):
        raise InputError("test-counting-asr: heard nothing: give --transcript")

    monkeypatch.setattr(CountingTranscriber, "__call__", deaf)
    assert run("speech.wav", "-m", str(bundle)) == 2
    assert capsys.readouterr().err == "error: test-counting-asr: heard nothing: give --transcript\n"
    assert files(workdir) == ["speech.wav"]


def test_the_pipeline_computes_what_the_model_computes(bundle):
    import torch

    pipeline = Pipeline.from_pretrained(bundle)
    generator = torch.Generator().manual_seed(0)
    content = torch.randn(1, 30, 80, generator=generator)
    emotion = torch.randn(1, 30, 2, generator=generator)
    tokens = torch.randn(1, 4, 6, generator=generator)
    mask = torch.ones(1, 4, dtype=torch.bool)
    with torch.no_grad():
        feature = pipeline.model.encode_guidance("label", torch.tensor([3]))
        expected = pipeline.model(content, emotion, tokens, mask, feature)["rig"]
        generated = pipeline._generate(content, emotion, tokens, mask, feature, None)
        halved = pipeline._generate(content, emotion, tokens, mask, feature, torch.full((1, 30, 1), 0.5))
        intensity = pipeline.model.intensity_predictor(emotion, tokens, mask) * 0.5
        by_hand = pipeline.model.motion.decode(
            pipeline.model.emotion_embedding(feature, intensity), pipeline.model.content_mapper(content)
        )
    torch.testing.assert_close(generated, expected)
    torch.testing.assert_close(halved, by_hand)


# -------------------------------------------------------------------------------------------- errors

UNKNOWN_LABEL = "unknown emotion label 'joyful': use one of " + ", ".join(EMOTIONS)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["-g", "label:joyful"], UNKNOWN_LABEL),
        (["-g", "text:"], "guidance 'text:' is empty: give a text after 'text:'"),
        (["-g", "text:   "], "guidance 'text:   ' is empty: give a text after 'text:'"),
        (["-g", "happy"], "guidance 'happy' is not label:NAME, text:\"...\" or image:PATH: e.g. label:happy"),
        (
            ["-g", "image:face.png"],
            "this model has no image guidance encoder (it has: label, text): use one of those, "
            "or a model trained for image guidance",
        ),
        (
            ["--emotion-track", "0:angry,1.5:furious"],
            "emotion track keyframe '1.5:furious': unknown emotion 'furious': use one of "
            + ", ".join(EMOTIONS),
        ),
        (
            ["--emotion-track", "1:angry,0.5:sad"],
            "emotion track keyframe '0.5:sad' is not after the one before it (1 s): list keyframes in "
            "increasing time",
        ),
        (
            ["--emotion-track", "0:angry@1.5"],
            "emotion track keyframe '0:angry@1.5': strength '1.5' is not a number from 0 to 1: "
            "e.g. angry@0.8",
        ),
        (
            ["-g", "label:sad", "--emotion-track", "0:angry"],
            "both --guidance and --emotion-track were given: the emotion track sets the emotion over time "
            "on its own, so give only one",
        ),
        (["--fps", "0"], "fps must be a positive number, got 0: e.g. 60"),
        (
            ["-O", "start_frame=3"],
            "invalid config for exporter 'txt': unknown field 'start_frame'; its fields are: none",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(bundle, workdir, capsys, arguments, message):
    assert run("speech.wav", "-m", str(bundle), "--transcript", HEARD, *arguments) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {message}\n"
    assert captured.out == ""
    assert files(workdir) == ["speech.wav"]


def test_a_missing_audio_file_is_one_line(bundle, workdir, capsys):
    assert run("nope.wav", "-m", str(bundle)) == 2
    assert capsys.readouterr().err == "error: nope.wav: no such file: check the path\n"
    assert files(workdir) == ["speech.wav"]


def test_an_existing_output_is_kept_without_force_and_replaced_with_it(bundle, workdir, capsys):
    (workdir / "speech.txt").write_text("keep me\n")
    assert run("speech.wav", "-m", str(bundle), "--transcript", HEARD) == 2
    assert capsys.readouterr().err == (
        "error: speech.txt: already exists: choose another name, or pass --force to replace it\n"
    )
    assert (workdir / "speech.txt").read_text() == "keep me\n"
    assert files(workdir) == ["speech.txt", "speech.wav"]
    assert CountingTranscriber.calls == 0
    assert run("speech.wav", "-m", str(bundle), "--transcript", HEARD, "--force") == 0
    assert len((workdir / "speech.txt").read_text().splitlines()) == 74


def test_an_unreadable_face_image_is_one_line(face_bundle, workdir, capsys):
    (workdir / "face.png").write_text("not an image")
    assert run("speech.wav", "-m", str(face_bundle), "-g", "image:face.png") == 2
    assert capsys.readouterr().err == "error: face.png: not a readable image: give a JPEG or PNG photo\n"
    assert files(workdir) == ["face.png", "speech.wav"]


def test_an_image_without_a_face_is_one_line(face_bundle, workdir, capsys):
    from PIL import Image

    Image.new("RGB", (256, 256), (128, 140, 150)).save(workdir / "wall.png")
    assert run("speech.wav", "-m", str(face_bundle), "-g", "image:wall.png") == 2
    assert capsys.readouterr().err == (
        "error: wall.png: no face found: use a photo with one clearly visible, frontal face\n"
    )
    assert files(workdir) == ["speech.wav", "wall.png"]


@pytest.fixture(scope="module")
def face_bundle(tmp_path_factory) -> Path:
    """An untrained bundle with face-blendshapes image guidance: enough to reach the image checks."""
    from medtalk.core.model.bundle import save_bundle
    from medtalk.core.model.modules import MedtalkModel

    model = MedtalkModel.from_config(
        {
            "motion_model": {"type": "medtalk-autoencoder"},
            "content_mapper": {"type": "temporal-conv", "input_dim": 80},
            "intensity_predictor": {"type": "emotion-mlp", "emotion_dim": 14},
            "guidance_encoders": {"label": {"type": "label"}, "image": {"type": "face-blendshapes"}},
        }
    )
    features = {"content": {"type": "logmel"}, "emotion": {"type": "prosody"}}
    card = {"pipeline": {"rig": "metahuman-174", "fps": 60.0, "features": features}}
    return save_bundle(tmp_path_factory.mktemp("face") / "bundle", model, card)


# ----------------------------------------------------------------------------------- embedded model


def test_a_missing_embedded_model_says_how_to_get_it(workdir, monkeypatch, capsys):
    from medtalk.plugins.run import EmbeddedModel

    missing = workdir / "models" / "embedded"
    monkeypatch.setattr(EmbeddedModel, "bundle_path", missing)
    message = (
        f"the embedded model is missing from this installation ({missing} has no model.json): "
        "reinstall medtalk, or rebuild the model as docs/model-card.md describes"
    )
    with pytest.raises(InputError) as error:
        Pipeline.from_pretrained("embedded")
    assert str(error.value) == message
    assert run("speech.wav", "-g", "label:happy") == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert files(workdir) == ["speech.wav"]


def test_models_lists_the_embedded_model(bundle, workdir, monkeypatch, capsys):
    from medtalk.plugins.run import EmbeddedModel

    monkeypatch.setattr(EmbeddedModel, "bundle_path", bundle)
    assert run_cli(["models", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["embedded"] == {
        "name": "embedded",
        "plugin": "medtalk.plugins.run",
        "description": EmbeddedModel.describe(),
        "bundle": str(bundle),
        "installed": True,
    }
    monkeypatch.setattr(EmbeddedModel, "bundle_path", workdir / "gone")
    assert run_cli(["models", "--json"]) == 0
    assert {row["name"]: row for row in json.loads(capsys.readouterr().out)}["embedded"]["installed"] is False


def test_the_embedded_model_is_package_data():
    import tomllib

    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "data/models/embedded/*" in package_data["medtalk"]


def test_help_lists_run_and_models_without_loading_torch_or_numpy():
    result = subprocess.run([sys.executable, "-m", "medtalk", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert " run " in result.stdout and " models " in result.stdout
    code = (
        "import sys; from medtalk.cli import build_app; from medtalk.core.plugins import get_plugin_manager,"
        " get_registry; build_app(get_plugin_manager()); get_registry('model');"
        " print(sorted(m for m in ('torch', 'numpy', 'transformers') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout == "[]\n"


def test_the_readme_runs_the_example_speech():
    first = (ROOT / "README.md").read_text().split("```bash\n", 1)[1].splitlines()[0]
    assert first == (
        "bash scripts/setup.sh && .venv/bin/medtalk run examples/speech.wav "
        '--guidance text:"smirking, raised brow" -o speech.txt'
    )
    assert (ROOT / "examples" / "speech.wav").is_file()


def test_the_readme_main_job_animates_the_example_with_the_embedded_model(tmp_path, capsys):
    target = tmp_path / "speech.txt"
    example = ROOT / "examples" / "speech.wav"
    assert run(str(example), "--guidance", "text:smirking, raised brow", "-o", str(target)) == 0
    heard, wrote = capsys.readouterr().out.splitlines()
    assert heard.startswith("heard: '") and "party" in heard
    assert re.fullmatch(
        rf"wrote {re.escape(str(target))} \(206 frames, 3\.44 s of audio at 60 fps\) in \d+\.\d s", wrote
    )
    values = read_sequence(target).values
    assert values.shape == (206, 174)
    low, high = np.array(get_registry("rig").get("metahuman-174").ranges, dtype=np.float32).T
    assert ((values >= low) & (values <= high)).all()


def test_the_teacher_runs_through_the_same_command(tmp_path, capsys):
    example = ROOT / "examples" / "speech.wav"
    words = (ROOT / "examples" / "speech.txt").read_text().strip()
    target = tmp_path / "teacher.txt"
    assert (
        run(
            str(example), "-m", "teacher", "-g", "label:happy-smirk", "--transcript", words, "-o", str(target)
        )
        == 0
    )
    assert capsys.readouterr().out.startswith(f"wrote {target} (206 frames, 3.44 s of audio at 60 fps)")
    assert read_sequence(target).values.shape == (206, 174)
    assert (
        run(
            str(example), "-m", "teacher", "--fps", "30", "--transcript", words, "-o", str(tmp_path / "x.txt")
        )
        == 2
    )
    assert capsys.readouterr().err == "error: the teacher animates at 60 fps only: drop --fps\n"
    assert not (tmp_path / "x.txt").exists()


# ------------------------------------------------------------------------------------ example speech


def test_the_example_speech_is_34_s_of_16_khz_mono_with_its_transcript():
    info = soundfile.info(ROOT / "examples" / "speech.wav")
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert 3.3 <= info.duration <= 3.5
    assert (ROOT / "examples" / "speech.txt").read_text() == (
        "Well, well, look who finally decided to show up for the party.\n"
    )


def test_the_example_speech_is_made_by_the_script(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_example_speech.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    shipped, _ = soundfile.read(ROOT / "examples" / "speech.wav", dtype="int16")
    made, _ = soundfile.read(tmp_path / "speech.wav", dtype="int16")
    assert made.shape == shipped.shape
    # The same machine gives the same bytes; another CPU's float rounding may move a sample by a step.
    assert np.abs(made.astype(int) - shipped).max() <= 2
    assert (tmp_path / "speech.txt").read_text() == (ROOT / "examples" / "speech.txt").read_text()
