"""``medtalk preview``: a video, GIF or still of the 2D face driven by a rig sequence, or a curves plot.

Everything the user can get wrong is checked before anything is drawn, and the output is written through
``atomic_output``, so a failure leaves no file behind. See docs/preview.md.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from medtalk.core.errors import AudioError, ConfigError, InputError, MedtalkWarning, OutputError

if TYPE_CHECKING:
    import numpy as np

    from medtalk.core.retarget import RigMapping
    from medtalk.core.rig import RigSpec
    from medtalk.core.sequence import RigSequence

FACE_OUTPUTS = (".mp4", ".gif", ".png")
DEFAULT_SIZE = 512
MIN_SIZE, MAX_SIZE = 64, 2048
MIN_PLOT_WIDTH, MAX_PLOT_WIDTH = 320, 4096
# Audio that differs from the animation by more than this is taken for the wrong file and refused;
# a smaller difference (a few frames of capture slack) is padded with silence or trimmed, with a warning.
AUDIO_TOLERANCE_S = 0.5
# A GIF holds every frame in memory while it is written; longer previews belong in an mp4.
GIF_MAX_SECONDS = 60.0
STILL_SUPERSAMPLE = 2  # a single frame costs nothing to smooth


@dataclass(frozen=True)
class PreviewResult:
    """What was written, for the command's one-line summary."""

    path: Path
    kind: str  # "mp4", "gif", "png" or "curves"
    frames: int  # frames written (1 for a still), or curve panels for a plot
    fps: float
    width: int
    height: int
    source_frames: int
    frame: int | None = None
    sound: bool = False
    retargeted_from: tuple[str, ...] = ()

    def summary(self) -> str:
        size = f"{self.width}x{self.height}"
        if self.kind == "png":
            detail = f"frame {self.frame} of {self.source_frames}, {size}"
        elif self.kind == "curves":
            detail = f"{self.frames} panel{'s' * (self.frames != 1)} over {self.source_frames} frames, {size}"
        else:
            seconds = self.frames / self.fps
            detail = f"{self.frames} frames, {seconds:.2f} s at {self.fps:g} fps, {size}"
            if self.sound:
                detail += ", with sound"
        for rig in self.retargeted_from:
            detail += f", retargeted from rig {rig}"
        return f"wrote {self.path} ({detail})"


def write_preview(
    source: Path,
    output: Path,
    *,
    audio: Path | None = None,
    compare: Path | None = None,
    curves: str | None = None,
    frame: int | None = None,
    size: int | None = None,
    labels: str | None = None,
    mapping: Path | None = None,
    smooth: bool = False,
    overwrite: bool = False,
) -> PreviewResult:
    """Render ``source`` (and ``compare`` beside it) to ``output``: .mp4, .gif or .png, or a curves plot."""
    kind = _output_kind(output, curves is not None)
    _check_options(kind, size=size, frame=frame, audio=audio, smooth=smooth)
    panels = 2 if compare is not None else 1
    label_list = _labels(labels, source, compare, panels)

    from medtalk.core.fileio import atomic_output, read_sequence
    from medtalk.core.plugins import get_registry
    from medtalk.core.retarget import load_mapping

    rig_mapping = load_mapping(mapping) if mapping is not None else None
    first = read_sequence(source)
    second = read_sequence(compare) if compare is not None else None
    if second is not None:
        _check_compare(first, second, source, compare)
    target_rig = _target_rig(kind, first, rig_mapping)
    sequences, retargeted = _on_rig([first] + ([second] if second else []), target_rig, rig_mapping)
    rig = get_registry("rig").get(target_rig)

    curve_panels = None
    if kind == "curves":
        from medtalk.render.curves import parse_curves

        curve_panels = parse_curves(curves or "", rig)
    if kind == "png":
        frame = first.num_frames // 2 if frame is None else frame
        if not 0 <= frame < first.num_frames:
            last = first.num_frames - 1
            raise InputError(f"--frame {frame} is outside 0..{last} ({source} has {first.num_frames} frames)")
    if kind == "gif" and first.duration > GIF_MAX_SECONDS:
        raise InputError(
            f"{source} lasts {first.duration:.1f} s, over the {GIF_MAX_SECONDS:.0f} s a GIF preview holds: "
            "write .mp4 instead"
        )
    sound = fitted_audio(audio, first, source) if audio is not None else None

    if curve_panels is not None:
        from medtalk.render.curves import DEFAULT_WIDTH, plot_curves
        from medtalk.render.video import write_png

        plot = plot_curves(
            sequences, rig, curve_panels, labels=label_list, width=size or DEFAULT_WIDTH, audio=sound
        )
        with atomic_output(output, overwrite=overwrite) as temp:
            write_png(plot, temp)
        return PreviewResult(
            output,
            kind,
            frames=len(curve_panels),
            fps=first.fps,
            width=plot.width,
            height=plot.height,
            source_frames=first.num_frames,
            retargeted_from=retargeted,
        )
    result = _write_face(
        sequences,
        rig,
        output,
        kind,
        frame=frame,
        size=size or DEFAULT_SIZE,
        labels=label_list,
        sound=sound,
        smooth=smooth,
        overwrite=overwrite,
    )
    return dataclasses.replace(result, retargeted_from=retargeted)


def _write_face(
    sequences: Sequence[RigSequence],
    rig: RigSpec,
    output: Path,
    kind: str,
    *,
    frame: int | None,
    size: int,
    labels: Sequence[str],
    sound: np.ndarray | None,
    smooth: bool,
    overwrite: bool,
) -> PreviewResult:
    from medtalk.core.fileio import atomic_output
    from medtalk.render.face2d import FaceRenderer
    from medtalk.render.video import gif_step, write_gif, write_mp4, write_png

    first = sequences[0]
    supersample = STILL_SUPERSAMPLE if kind == "png" or smooth else 1
    renderer = FaceRenderer(rig, size=size, panels=len(sequences), labels=labels, supersample=supersample)
    common = {"width": renderer.width, "height": renderer.height, "source_frames": first.num_frames}
    with atomic_output(output, overwrite=overwrite) as temp:
        if kind == "mp4":
            written = write_mp4(
                renderer.frames(sequences),
                temp,
                fps=first.fps,
                width=renderer.width,
                height=renderer.height,
                audio=sound,
            )
            return PreviewResult(output, kind, written, first.fps, sound=sound is not None, **common)
        if kind == "gif":
            step = gif_step(first.fps)
            every_step = range(0, first.num_frames, step)
            written = write_gif(renderer.frames(sequences, every_step), temp, frame_seconds=step / first.fps)
            return PreviewResult(output, kind, written, first.fps / step, **common)
        write_png(next(renderer.frames(sequences, [frame])), temp)
        return PreviewResult(output, kind, 1, first.fps, frame=frame, **common)


def _output_kind(output: Path, plotting_curves: bool) -> str:
    suffix = output.suffix.lower()
    shown = f"'{output.suffix}'" if output.suffix else "no extension"
    if plotting_curves:
        if suffix != ".png":
            raise OutputError(
                f"{output}: a curves plot is written as .png, not {shown}: change the extension"
            )
        return "curves"
    if suffix not in FACE_OUTPUTS:
        raise OutputError(
            f"{output}: cannot write a preview with {shown}: use .mp4 (video, with sound from --audio), "
            ".gif or .png (one frame)"
        )
    return suffix.lstrip(".")


def _check_options(
    kind: str, *, size: int | None, frame: int | None, audio: Path | None, smooth: bool
) -> None:
    if size is not None:
        if kind == "curves" and not MIN_PLOT_WIDTH <= size <= MAX_PLOT_WIDTH:
            raise ConfigError(
                f"--size {size}: a curves plot is {MIN_PLOT_WIDTH} to {MAX_PLOT_WIDTH} pixels wide"
            )
        if kind != "curves" and (size % 2 or not MIN_SIZE <= size <= MAX_SIZE):
            raise ConfigError(
                f"--size {size}: give an even number of pixels from {MIN_SIZE} to {MAX_SIZE} "
                "(H.264 video needs even sides)"
            )
    if frame is not None and kind != "png":
        raise ConfigError("--frame picks the frame of a .png still: drop it, or write .png")
    if audio is not None and kind in ("gif", "png"):
        raise ConfigError(
            f"--audio needs an .mp4 output (a .{kind} has no sound): drop --audio, or write .mp4"
        )
    if smooth and kind == "curves":
        raise ConfigError("--smooth applies to the face, not to --curves plots: drop it")


def _labels(labels: str | None, source: Path, compare: Path | None, panels: int) -> tuple[str, ...]:
    if labels is not None:
        names = tuple(name.strip() for name in labels.split(","))
        if len(names) != panels:
            raise ConfigError(
                f"--labels needs {panels} comma-separated name{'s' * (panels > 1)} (one per panel), "
                f"got {len(names)}"
            )
        return names
    if compare is None:
        return ()
    if source.stem != compare.stem:
        return (source.stem, compare.stem)
    return (str(source), str(compare))


def _check_compare(first: RigSequence, second: RigSequence, source: Path, compare: Path) -> None:
    if not math.isclose(first.fps, second.fps, rel_tol=1e-6):
        raise InputError(
            f"{compare} runs at {second.fps:g} fps but {source} at {first.fps:g} fps: "
            "compare sequences made at the same frame rate"
        )
    if abs(first.num_frames - second.num_frames) > 1:
        fate = "holds its last frame" if second.num_frames < first.num_frames else "is cut short"
        warnings.warn(
            f"{compare} has {second.num_frames} frames and {source} {first.num_frames}: "
            f"the preview follows {source}; {compare} {fate}",
            MedtalkWarning,
            stacklevel=3,
        )


def _target_rig(kind: str, first: RigSequence, mapping: RigMapping | None) -> str:
    from medtalk.render.face2d import FACE_RIG

    if kind != "curves":
        return FACE_RIG
    return mapping.target if mapping is not None else first.rig


def _on_rig(
    sequences: Sequence[RigSequence], rig: str, mapping: RigMapping | None
) -> tuple[list[RigSequence], tuple[str, ...]]:
    """The sequences on ``rig``: through ``mapping`` where it maps a sequence's rig, else the built-in one."""
    from medtalk.core.retarget import retarget

    moved, origins = [], []
    for index, sequence in enumerate(sequences):
        # The user's mapping must fit the main input (a mismatch is an error); the compared file uses it
        # only if it is on the mapping's source rig.
        use = mapping if mapping is not None and (index == 0 or mapping.source == sequence.rig) else None
        if sequence.rig != rig or use is not None:
            if sequence.rig not in origins and sequence.rig != rig:
                origins.append(sequence.rig)
            sequence = retarget(sequence, rig, use)
        moved.append(sequence)
    return moved, tuple(origins)


def fitted_audio(path: Path, sequence: RigSequence, source: Path) -> np.ndarray:
    """The sound at the video's rate, matched to the animation's length (see AUDIO_TOLERANCE_S)."""
    import numpy as np

    from medtalk.core.audio import load_audio
    from medtalk.render.video import AUDIO_SAMPLE_RATE, whole_aac_blocks

    audio = load_audio(path, sample_rate=AUDIO_SAMPLE_RATE)
    gap = audio.duration - sequence.duration
    if abs(gap) > AUDIO_TOLERANCE_S:
        raise AudioError(
            f"{path}: the audio lasts {audio.duration:.2f} s but {source} {sequence.duration:.2f} s "
            f"({sequence.num_frames} frames at {sequence.fps:g} fps): give the audio the animation was made "
            f"from (up to {AUDIO_TOLERANCE_S:g} s apart is padded or trimmed)"
        )
    samples = audio.samples
    if abs(gap) > 1.0 / sequence.fps:
        target = round(sequence.duration * AUDIO_SAMPLE_RATE)
        fate = "trimmed" if gap > 0 else "padded with silence"
        warnings.warn(
            f"{path}: the audio lasts {audio.duration:.2f} s and {source} {sequence.duration:.2f} s: "
            f"the audio was {fate} to match",
            MedtalkWarning,
            stacklevel=3,
        )
        samples = samples[:target] if gap > 0 else np.concatenate([samples, np.zeros(target - len(samples))])
    return whole_aac_blocks(np.asarray(samples, dtype=np.float32))
