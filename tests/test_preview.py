"""`medtalk preview`: face videos, GIFs and stills, side-by-side comparison, curve plots, and refusals."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
from importlib.resources import files

import av
import numpy as np
import pytest
import soundfile
from PIL import Image

from medtalk.cli import run_cli
from medtalk.core.fileio import read_sequence, write_sequence
from medtalk.core.plugins import get_registry
from medtalk.core.sequence import RigSequence
from medtalk.render.face2d import FaceRenderer
from medtalk.render.poses import POSE_NAMES, pose_sequence, pose_values

REAL_FPS = 60.0
REAL_FRAMES = 202


@pytest.fixture
def real_wav(real_txt):
    return real_txt.with_suffix(".wav")


@pytest.fixture
def rig():
    return get_registry("rig").get("metahuman-174")


@pytest.fixture
def short_take(tmp_path, rig):
    """Half a second of the happy pose fading in, as a JSON take."""
    weights = np.linspace(0.0, 1.0, 30, dtype=np.float32)[:, None]
    path = tmp_path / "take.json"
    write_sequence(RigSequence(weights * pose_values("happy", rig), fps=REAL_FPS, rig=rig.name), path)
    return path


def medtalk(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medtalk", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
    )


def decoded(path):
    """(video frames, width, height, audio samples, audio rate, codecs) of an mp4, decoded with PyAV."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        width, height, codecs = (
            video.codec_context.width,
            video.codec_context.height,
            [video.codec_context.name],
        )
        pix_fmt = video.codec_context.pix_fmt
        frames = sum(1 for _ in container.decode(video=0))
    samples, rate = 0, None
    with av.open(str(path)) as container:
        if container.streams.audio:
            rate = container.streams.audio[0].codec_context.sample_rate
            codecs.append(container.streams.audio[0].codec_context.name)
            samples = sum(frame.samples for frame in container.decode(audio=0))
    return frames, width, height, pix_fmt, samples, rate, codecs


def region(image: Image.Image, left: float, right: float, top: float, bottom: float) -> np.ndarray:
    side = image.height
    pixels = np.asarray(image, dtype=np.float64)
    return pixels[int(top * side) : int(bottom * side), int(left * side) : int(right * side)]


BROWS = (0.28, 0.72, 0.27, 0.41)
MOUTH = (0.36, 0.64, 0.62, 0.82)


def test_mp4_has_a_frame_per_animation_frame_and_the_audio_s_duration(real_txt, real_wav, tmp_path, capsys):
    out = tmp_path / "angry.mp4"
    assert run_cli(["preview", str(real_txt), "--audio", str(real_wav), "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out} (202 frames, 3.37 s at 60 fps, 512x512, with sound)\n"
    frames, width, height, pix_fmt, samples, rate, codecs = decoded(out)
    sequence = read_sequence(real_txt)
    assert frames == round(sequence.duration * sequence.fps) == REAL_FRAMES
    assert (width, height, pix_fmt, codecs) == (512, 512, "yuv420p", ["h264", "aac"])
    assert abs(samples / rate - soundfile.info(real_wav).duration) < 1.0 / REAL_FPS


def test_mp4_without_audio_has_no_audio_stream(short_take, tmp_path):
    out = tmp_path / "take.mp4"
    assert run_cli(["preview", str(short_take), "-o", str(out), "--size", "256"]) == 0
    frames, width, height, _, samples, rate, codecs = decoded(out)
    assert (frames, width, height, samples, rate, codecs) == (30, 256, 256, 0, None, ["h264"])


def test_gif_keeps_every_second_frame_of_a_60_fps_take_and_its_timing(real_txt, tmp_path, capsys):
    out = tmp_path / "angry.gif"
    assert run_cli(["preview", str(real_txt), "-o", str(out), "--size", "128"]) == 0
    assert capsys.readouterr().out == f"wrote {out} (101 frames, 3.37 s at 30 fps, 128x128)\n"
    with Image.open(out) as gif:
        assert (gif.n_frames, gif.size) == (101, (128, 128))
        total_ms = 0
        for index in range(gif.n_frames):
            gif.seek(index)
            total_ms += gif.info["duration"]
    assert abs(total_ms / 1000 - REAL_FRAMES / REAL_FPS) < 0.01


def test_png_is_one_frame_the_middle_one_by_default(real_txt, tmp_path, capsys):
    out = tmp_path / "still.png"
    assert run_cli(["preview", str(real_txt), "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out} (frame 101 of 202, 512x512)\n"
    with Image.open(out) as still:
        assert (still.size, still.mode) == ((512, 512), "RGB")
    small = tmp_path / "small.png"
    assert run_cli(["preview", str(real_txt), "-o", str(small), "--size", "200", "--frame", "0"]) == 0
    assert capsys.readouterr().out == f"wrote {small} (frame 0 of 202, 200x200)\n"
    with Image.open(small) as still:
        assert still.size == (200, 200)


def test_the_png_frame_follows_the_animation(real_txt, tmp_path):
    stills = []
    for frame in (0, 135):
        out = tmp_path / f"f{frame}.png"
        assert run_cli(["preview", str(real_txt), "-o", str(out), "--frame", str(frame)]) == 0
        stills.append(Image.open(out).convert("RGB"))
    # Frame 0 is at rest; at frame 135 the jaw is open (0.37) while the lower lip is pulled down.
    assert np.abs(region(stills[0], *MOUTH) - region(stills[1], *MOUTH)).mean() > 5.0


def test_side_by_side_is_twice_as_wide_with_both_faces(real_txt, short_take, tmp_path, capsys):
    still = tmp_path / "both.png"
    assert run_cli(["preview", str(real_txt), "--compare", str(real_txt), "-o", str(still)]) == 0
    assert capsys.readouterr().out == f"wrote {still} (frame 101 of 202, 1024x512)\n"
    with Image.open(still) as image:
        assert image.size == (1024, 512)
        left, right = np.asarray(image.crop((0, 0, 512, 512))), np.asarray(image.crop((512, 0, 1024, 512)))
    # The same take on both sides: the faces match away from the labels and the line between them.
    assert np.array_equal(left[60:, 8:-8], right[60:, 8:-8])
    video = tmp_path / "both.mp4"
    args = ["preview", str(short_take), "--compare", str(short_take), "--labels", "pred,gt", "--size", "128"]
    assert run_cli([*args, "-o", str(video)]) == 0
    frames, width, height, *_ = decoded(video)
    assert (frames, width, height) == (30, 256, 128)


def test_a_shorter_compared_take_holds_its_last_frame_with_a_warning(short_take, real_txt, tmp_path):
    out = tmp_path / "both.gif"
    result = medtalk("preview", str(short_take), "--compare", str(real_txt), "--size", "64", "-o", str(out))
    assert result.returncode == 0
    assert result.stderr == (
        f"warning: {real_txt} has 202 frames and {short_take} 30: the preview follows {short_take}; "
        f"{real_txt} is cut short\n"
    )
    with Image.open(out) as gif:
        assert gif.n_frames == 15


def test_the_five_poses_differ_in_the_brows_and_in_the_mouth(rig):
    renderer = FaceRenderer(rig, size=256)
    faces = {pose: next(renderer.frames([pose_sequence(pose, rig)])) for pose in POSE_NAMES}
    for first, second in itertools.combinations(POSE_NAMES, 2):
        brows = np.abs(region(faces[first], *BROWS) - region(faces[second], *BROWS)).mean()
        mouth = np.abs(region(faces[first], *MOUTH) - region(faces[second], *MOUTH)).mean()
        assert brows > 3.0, (first, second, brows)
        assert mouth > 3.0, (first, second, mouth)


def test_opening_the_jaw_moves_the_mouth_and_nothing_above_it(rig):
    renderer = FaceRenderer(rig, size=256)
    (jaw,) = rig.indices_of(["CTRL_C_jaw-translateY"])
    values = np.zeros((2, rig.num_controls), dtype=np.float32)
    values[1, jaw] = 0.6
    closed, opened = renderer.frames([RigSequence(values, fps=REAL_FPS, rig=rig.name)])
    assert np.abs(region(closed, *MOUTH) - region(opened, *MOUTH)).mean() > 10.0
    assert np.array_equal(region(closed, 0.0, 1.0, 0.0, 0.55), region(opened, 0.0, 1.0, 0.0, 0.55))


def test_a_widening_blink_shows_more_eye_white_than_a_closing_one(rig):
    renderer = FaceRenderer(rig, size=256)
    blinks = rig.indices_of(["CTRL_L_eye_blink-translateY", "CTRL_R_eye_blink-translateY"])
    values = np.zeros((3, rig.num_controls), dtype=np.float32)
    values[0, list(blinks)], values[2, list(blinks)] = -1.0, 1.0
    eyes = (0.3, 0.7, 0.38, 0.5)
    white = [
        int((region(face, *eyes) > 245).all(axis=-1).sum())
        for face in renderer.frames([RigSequence(values, fps=REAL_FPS, rig=rig.name)])
    ]
    wide, rest, closed = white
    assert wide > 1.2 * rest > 0
    assert closed < 0.1 * rest


def test_curves_plot_is_a_png_with_a_panel_per_item(real_txt, real_wav, tmp_path, capsys):
    out = tmp_path / "curves.png"
    items = "lip,upper,CTRL_C_jaw-translateY"
    assert run_cli(["preview", str(real_txt), "--curves", items, "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out} (3 panels over 202 frames, 960x632)\n"
    with Image.open(out) as plot:
        assert (plot.format, plot.size) == ("PNG", (960, 632))
        assert len(plot.convert("RGB").getcolors(maxcolors=100_000)) > 10
    with_audio = tmp_path / "with-audio.png"
    args = ["preview", str(real_txt), "--curves", "intensity", "--audio", str(real_wav), "--size", "640"]
    assert run_cli([*args, "--compare", str(real_txt), "-o", str(with_audio)]) == 0
    assert capsys.readouterr().out == f"wrote {with_audio} (1 panel over 202 frames, 640x352)\n"


def _mapping_file(tmp_path):
    path = tmp_path / "jaw.yaml"
    path.write_text(
        "source_rig: arkit-52\ntarget_rig: metahuman-174\n"
        "targets:\n  CTRL_C_jaw-translateY:\n    sum: {jawOpen: 1.0}\n"
    )
    return path


def _arkit_take(tmp_path, jaw_open: float):
    arkit = get_registry("rig").get("arkit-52")
    values = np.zeros((4, arkit.num_controls), dtype=np.float32)
    values[:, arkit.indices_of(["jawOpen"])[0]] = jaw_open
    path = tmp_path / f"arkit-{jaw_open}.json"
    write_sequence(RigSequence(values, fps=REAL_FPS, rig="arkit-52"), path)
    return path


def test_an_arkit_take_renders_through_a_given_mapping(tmp_path, capsys):
    mapping = _mapping_file(tmp_path)
    stills = []
    for jaw_open in (0.0, 0.7):
        out = tmp_path / f"arkit-{jaw_open}.png"
        args = ["preview", str(_arkit_take(tmp_path, jaw_open)), "--mapping", str(mapping), "-o", str(out)]
        assert run_cli(args) == 0
        assert capsys.readouterr().out == (
            f"wrote {out} (frame 2 of 4, 512x512, retargeted from rig arkit-52)\n"
        )
        stills.append(Image.open(out).convert("RGB"))
    assert np.abs(region(stills[0], *MOUTH) - region(stills[1], *MOUTH)).mean() > 10.0


def test_an_arkit_take_renders_through_the_built_in_mapping(tmp_path, capsys):
    shipped = files("medtalk").joinpath("data", "mappings", "arkit-52__to__metahuman-174.yaml")
    if not shipped.is_file():
        pytest.skip("the built-in arkit-52 -> metahuman-174 mapping is not in medtalk/data/mappings yet")
    stills = []
    for jaw_open in (0.0, 0.7):
        out = tmp_path / f"arkit-{jaw_open}.png"
        assert run_cli(["preview", str(_arkit_take(tmp_path, jaw_open)), "-o", str(out)]) == 0
        assert capsys.readouterr().out.endswith(", retargeted from rig arkit-52)\n")
        stills.append(Image.open(out).convert("RGB"))
    assert np.abs(region(stills[0], *MOUTH) - region(stills[1], *MOUTH)).mean() > 5.0


def test_audio_a_little_longer_than_the_take_is_trimmed_with_a_warning(short_take, tmp_path):
    wav = _wav(tmp_path / "speech.wav", 0.8)
    out = tmp_path / "take.mp4"
    result = medtalk("preview", str(short_take), "--audio", str(wav), "--size", "64", "-o", str(out))
    assert result.returncode == 0
    assert result.stderr == (
        f"warning: {wav}: the audio lasts 0.80 s and {short_take} 0.50 s: the audio was trimmed to match\n"
    )
    frames, *_, samples, rate, _ = decoded(out)
    assert frames == 30
    assert abs(samples / rate - 0.5) < 1.0 / REAL_FPS


def _wav(path, seconds: float, rate: int = 16_000):
    soundfile.write(path, 0.1 * np.sin(np.arange(int(seconds * rate)) * 0.05), rate)
    return path


BAD_INPUTS = [
    (
        ["-o", "out.avi"],
        "error: out.avi: cannot write a preview with '.avi': use .mp4 (video, with sound from --audio), "
        ".gif or .png (one frame)",
    ),
    (
        ["-o", "out"],
        "error: out: cannot write a preview with no extension: use .mp4 (video, with sound from "
        "--audio), .gif or .png (one frame)",
    ),
    (
        ["--curves", "lip", "-o", "out.mp4"],
        "error: out.mp4: a curves plot is written as .png, not '.mp4': change the extension",
    ),
    (
        ["--curves", "lipp", "-o", "out.png"],
        "error: --curves: 'lipp' is neither an index set nor a control of rig metahuman-174: "
        "did you mean 'lip'?",
    ),
    (
        ["--curves", "lip,teeth", "-o", "out.png"],
        "error: --curves: 'teeth' is neither an index set nor a control of rig metahuman-174: "
        "give index sets (emotion, intensity, lip, upper) or control names",
    ),
    (
        ["--curves", " , ", "-o", "out.png"],
        "error: --curves needs index set or control names of rig metahuman-174, e.g. --curves lip,upper",
    ),
    (["--frame", "202", "-o", "out.png"], "error: --frame 202 is outside 0..201 (take.txt has 202 frames)"),
    (
        ["--frame", "3", "-o", "out.mp4"],
        "error: --frame picks the frame of a .png still: drop it, or write .png",
    ),
    (
        ["--audio", "speech.wav", "-o", "out.gif"],
        "error: --audio needs an .mp4 output (a .gif has no sound): drop --audio, or write .mp4",
    ),
    (
        ["--size", "511", "-o", "out.mp4"],
        "error: --size 511: give an even number of pixels from 64 to 2048 (H.264 video needs even sides)",
    ),
    (
        ["--size", "100", "--curves", "lip", "-o", "out.png"],
        "error: --size 100: a curves plot is 320 to 4096 pixels wide",
    ),
    (
        ["--labels", "a,b", "-o", "out.png"],
        "error: --labels needs 1 comma-separated name (one per panel), got 2",
    ),
    (
        ["--smooth", "--curves", "lip", "-o", "out.png"],
        "error: --smooth applies to the face, not to --curves plots: drop it",
    ),
    (["--audio", "missing.wav", "-o", "out.mp4"], "error: missing.wav: no such file: check the path"),
    (["--compare", "missing.txt", "-o", "out.mp4"], "error: missing.txt: no such file: check the path"),
    (
        ["--compare", "slow.json", "-o", "out.mp4"],
        "error: slow.json runs at 30 fps but take.txt at 60 fps: "
        "compare sequences made at the same frame rate",
    ),
    (
        ["--audio", "long.wav", "-o", "out.mp4"],
        "error: long.wav: the audio lasts 4.00 s but take.txt 3.37 s (202 frames at 60 fps): "
        "give the audio the animation was made from (up to 0.5 s apart is padded or trimmed)",
    ),
    (
        ["--mapping", "missing.yaml", "-o", "out.png"],
        "error: missing.yaml: no such mapping file: check the path",
    ),
    (
        ["-o", "no/such/dir/out.png"],
        "error: no/such/dir/out.png: the folder no/such/dir does not exist: create it first",
    ),
    (
        ["-o", "taken.mp4"],
        "error: taken.mp4: already exists: choose another name, or pass --force to replace it",
    ),
]


@pytest.mark.parametrize(("args", "expected"), BAD_INPUTS)
def test_bad_input_gives_the_exact_one_line_error_and_writes_nothing(args, expected, real_txt, tmp_path):
    (tmp_path / "take.txt").write_bytes(real_txt.read_bytes())
    write_sequence(RigSequence(np.zeros((3, 174)), fps=30.0, rig="metahuman-174"), tmp_path / "slow.json")
    _wav(tmp_path / "speech.wav", 3.0)
    _wav(tmp_path / "long.wav", 4.0)
    (tmp_path / "taken.mp4").write_text("mine")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = medtalk("preview", "take.txt", *args, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", expected + "\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "taken.mp4").read_text() == "mine"


def test_a_missing_input_is_one_line(tmp_path):
    result = medtalk("preview", "nowhere.txt", "-o", "out.mp4", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (2, "error: nowhere.txt: no such file: check the path\n")
    assert list(tmp_path.iterdir()) == []


def test_a_failure_midway_leaves_no_partial_video(short_take, tmp_path, monkeypatch, capsys):
    drawn = itertools.count()
    original = FaceRenderer._draw

    def failing_draw(self, panels):
        if next(drawn) == 10:
            raise RuntimeError("the renderer broke")
        return original(self, panels)

    monkeypatch.setattr(FaceRenderer, "_draw", failing_draw)
    out = tmp_path / "take.mp4"
    assert run_cli(["preview", str(short_take), "-o", str(out)]) == 1
    assert "internal error: RuntimeError: the renderer broke" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.json"]


def test_an_existing_output_is_replaced_with_force(short_take, tmp_path):
    out = tmp_path / "take.png"
    out.write_text("mine")
    assert run_cli(["preview", str(short_take), "-o", str(out), "--force"]) == 0
    with Image.open(out) as still:
        assert still.size == (512, 512)


def test_help_lists_preview_and_start_up_does_not_import_the_renderer():
    assert "preview" in medtalk("--help").stdout
    code = (
        "import sys, medtalk.cli as cli; from medtalk.core.plugins import get_plugin_manager;"
        "cli.build_app(get_plugin_manager());"
        "print(sorted(m for m in ('numpy', 'PIL', 'av', 'medtalk.render') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_gif_timing_tracks_the_take_for_any_frame_rate():
    from medtalk.render.video import gif_durations_ms, gif_step

    assert [gif_step(fps) for fps in (24, 30, 50, 60, 100, 120)] == [1, 1, 1, 2, 2, 3]
    delays = gif_durations_ms(90, 1 / 30)
    assert set(delays) == {30, 40} and sum(delays) == 3000
    assert math.isclose(sum(gif_durations_ms(7, 1 / 24)) / 1000, 7 / 24, abs_tol=0.01)


def test_a_gif_over_a_minute_is_refused(tmp_path, rig):
    take = tmp_path / "long.json"
    write_sequence(RigSequence(np.zeros((61 * 30, rig.num_controls)), fps=30.0, rig=rig.name), take)
    result = medtalk("preview", "long.json", "-o", "long.gif", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        2,
        "error: long.json lasts 61.0 s, over the 60 s a GIF preview holds: write .mp4 instead\n",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.json"]
