"""Built-in formats for artists' tools: Maya, Unreal (curves and Live Link Face), Blender.

What each file holds and how to use it in the tool is written up in docs/exporting.md, with what was
checked against the tools' own documentation and source and what was not.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from medtalk import hookimpl
from medtalk.core.components import ComponentConfig, Exporter, Importer
from medtalk.core.errors import FileFormatError, OutputError
from medtalk.plugins.formats import checked_number

if TYPE_CHECKING:
    import numpy as np

    from medtalk.core.rig import RigSpec
    from medtalk.core.sequence import RigSequence

DECIMALS = 6
VALUE = f"%.{DECIMALS}f"

# Maya's named time units (MTime: kGames ... kNTSCField); the only names the .anim reader of the
# animImportExport devkit plug-in accepts in its header.
MAYA_NAMED_TIME_UNITS = {15: "game", 24: "film", 25: "pal", 30: "ntsc", 48: "show", 50: "palf", 60: "ntscf"}
# The other rates MTime has a unit for; `currentUnit -time` takes them as "<rate>fps".
# fmt: off
MAYA_FPS_TIME_UNITS = (
    2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 40, 75, 80, 90, 100, 120, 125, 150, 200, 240, 250, 300, 375, 400,
    500, 600, 750, 1200, 1500, 2000, 3000, 6000, 23.976, 29.97, 47.952, 59.94, 44100, 48000,
)
# fmt: on

# Live Link Face writes its timecode's frame field at 60 per second, whatever the take's rate.
LIVE_LINK_TIMECODE_RATE = 60
LIVE_LINK_TIMECODE_RATES = (24, 25, 30, 48, 50, 60, 120)
LIVE_LINK_BLENDSHAPE_COUNT = 61
LIVE_LINK_ROTATIONS = (
    "HeadYaw",
    "HeadPitch",
    "HeadRoll",
    "LeftEyeYaw",
    "LeftEyePitch",
    "LeftEyeRoll",
    "RightEyeYaw",
    "RightEyePitch",
    "RightEyeRoll",
)
# Radians of eye rotation at a full eyeLook shape. Recorded takes show about 0.44-0.61 rad per unit of
# eyeLookUp/Down; 30 degrees sits between (docs/exporting.md).
EYE_ROTATION_AT_FULL_LOOK = math.radians(30.0)
COMMON_FRAME_RATES = (23.976, 24.0, 25.0, 29.97, 30.0, 47.952, 48.0, 50.0, 59.94, 60.0, 90.0, 100.0, 120.0)
TIMECODE = re.compile(r"^(\d+):(\d{2}):(\d{2}):(\d{2,3}(?:\.\d+)?)$")


def _same_rate(fps: float, rate: float) -> bool:
    return abs(fps - rate) < 1e-3


def maya_time_unit(fps: float) -> str | None:
    """The Maya time unit of ``fps`` (``ntscf`` for 60, ``120fps`` for 120), or None where Maya has none."""
    for rate, name in MAYA_NAMED_TIME_UNITS.items():
        if _same_rate(fps, rate):
            return name
    for rate in MAYA_FPS_TIME_UNITS:
        if _same_rate(fps, rate):
            return f"{rate:g}fps"
    return None


def _first_columns(rig: RigSpec) -> list[tuple[int, str]]:
    """(column, control) of each control name's first column: a repeated name keys one curve only."""
    seen: set[str] = set()
    columns = []
    for column, control in enumerate(rig.controls):
        if control not in seen:
            seen.add(control)
            columns.append((column, control))
    return columns


def _board_curves(rig: RigSpec) -> list[tuple[int, str, str]]:
    """(column, node, attribute) per board curve, grouped by node in order of first appearance."""
    by_node: dict[str, list[tuple[int, str]]] = {}
    for column, control in _first_columns(rig):
        node, separator, attribute = control.rpartition("-")
        if not separator or not node or not attribute:
            raise OutputError(
                f"control '{control}' of rig {rig.name} is not NODE-ATTRIBUTE: "
                "export a metahuman-174 sequence (or retarget to it with --mapping)"
            )
        by_node.setdefault(node, []).append((column, attribute))
    return [(column, node, attribute) for node, pairs in by_node.items() for column, attribute in pairs]


def _joined_values(column: np.ndarray) -> str:
    return ",".join([VALUE] * len(column)) % tuple(column.tolist())


class StartFrameConfig(ComponentConfig):
    start_frame: int = Field(
        default=1, description="Frame number of the first frame (Maya and Blender count from 1)"
    )


class MayaScriptConfig(StartFrameConfig):
    namespace: str = Field(
        default="",
        description="Namespace of the face board controls, e.g. 'MetaHuman:' (also editable in the script)",
    )


class MayaAnimExporter(Exporter):
    """Maya .anim curves (animImportExport plug-in) for the MetaHuman face board controls."""

    name = "maya-anim"
    extensions = (".anim",)
    rigs = ("metahuman-174",)
    Config = StartFrameConfig

    def write(self, sequence: RigSequence, rig: RigSpec, path: Path) -> None:
        import numpy as np

        frames = self.config.start_frame + np.arange(sequence.num_frames, dtype=np.float64)
        unit = next(
            (name for rate, name in MAYA_NAMED_TIME_UNITS.items() if _same_rate(sequence.fps, rate)), None
        )
        if unit is None:
            # The plug-in's reader knows only the named units; milliseconds land on the frames of a scene
            # set to the take's rate whatever that rate is.
            unit, times, time_format = "millisec", frames * 1000.0 / sequence.fps, "%.6f"
        else:
            times, time_format = frames, "%d"
        header = [
            f"// medtalk maya-anim: {sequence.num_frames} frames of rig {rig.name} at {sequence.fps:g} fps, "
            f"first frame {self.config.start_frame}; select the board controls in file order, then import",
            "animVersion 1.1;",
            # Read only to convert tangent angles of files from Maya 2.x; any later version reads the same.
            "mayaVersion 2024;",
            f"timeUnit {unit};",
            "linearUnit cm;",
            "angularUnit deg;",
            f"startTime {time_format % times[0]};",
            f"endTime {time_format % times[-1]};",
        ]
        key_lines = f"    {time_format} {VALUE} auto auto 1 0 0;\n" * sequence.num_frames
        time_value_pairs = np.empty((sequence.num_frames, 2), dtype=np.float64)
        time_value_pairs[:, 0] = times
        attribute_index: dict[str, int] = {}
        with path.open("w", encoding="utf-8") as stream:
            stream.write("\n".join(header) + "\n")
            for column, node, attribute in _board_curves(rig):
                index = attribute_index[node] = attribute_index.get(node, -1) + 1
                time_value_pairs[:, 1] = sequence.values[:, column]
                stream.write(
                    f"anim {_full_attribute(attribute)} {attribute} {node} 0 0 {index};\n"
                    "animData {\n  input time;\n  output linear;\n  weighted 0;\n"
                    "  preInfinity constant;\n  postInfinity constant;\n  keys {\n"
                )
                stream.write(key_lines % tuple(time_value_pairs.ravel().tolist()))
                stream.write("  }\n}\n")


def _full_attribute(attribute: str) -> str:
    """``translateY`` -> ``translate.translateY``: .anim names a compound's child with its parent."""
    for parent in ("translate", "rotate", "scale"):
        if attribute.startswith(parent) and attribute[len(parent) :] in ("X", "Y", "Z"):
            return f"{parent}.{attribute}"
    return attribute


MAYA_SCRIPT = """\
# Generated by medtalk (maya-py): {frames} frames of rig {rig} at {fps:g} fps, keyed from frame {start}.
# Run it in Maya's Script Editor (Python tab) with the MetaHuman face board in the scene:
# File > Source Script..., or exec(open(r"/path/to/this.py").read()). Controls not in the scene are
# skipped with a warning; a repeated control name keys its first column only.
import maya.cmds as cmds
import maya.mel as mel

NAMESPACE = {namespace!r}  # e.g. "MetaHuman:" when the board came in with a namespace
FPS = {fps!r}
TIME_UNIT = {time_unit!r}  # None: Maya has no time unit for FPS; keys are placed by time instead
START_FRAME = {start!r}
FRAMES = {frames!r}
CURVES = (
{curves})


def main():
    if TIME_UNIT:
        cmds.currentUnit(time=TIME_UNIT)
        frame_step = 1.0
    else:
        frame_step = float(mel.eval("currentTimeUnitToFPS()")) / FPS
        print("medtalk warning: Maya has no time unit for %g fps; keys fall between frames" % FPS)
    # The board's limits are in centimetres whatever unit the scene shows, and setKeyframe reads values
    # in the scene's unit; undo and redraw stay off while keying so long takes key quickly.
    linear_unit = cmds.currentUnit(query=True, linear=True)
    undo_was_on = cmds.undoInfo(query=True, state=True)
    cmds.currentUnit(linear="cm")
    cmds.undoInfo(stateWithoutFlush=False)
    cmds.refresh(suspend=True)
    missing = []
    try:
        for node, attribute, values in CURVES:
            target = NAMESPACE + node
            if not cmds.objExists(target + "." + attribute):
                missing.append(target + "." + attribute)
                continue
            for index, value in enumerate(values.split(",")):
                time = START_FRAME + index * frame_step
                cmds.setKeyframe(target, attribute=attribute, time=time, value=float(value))
    finally:
        cmds.refresh(suspend=False)
        cmds.undoInfo(stateWithoutFlush=undo_was_on)
        cmds.currentUnit(linear=linear_unit)
    last = START_FRAME + (FRAMES - 1) * frame_step
    cmds.playbackOptions(minTime=START_FRAME, maxTime=last)
    cmds.playbackOptions(animationStartTime=START_FRAME, animationEndTime=last)
    for plug in missing:
        print("medtalk warning: %s is not in the scene, skipped (is NAMESPACE right?)" % plug)
    keyed = len(CURVES) - len(missing)
    print("medtalk: keyed %d of %d curves, frames %g to %g" % (keyed, len(CURVES), START_FRAME, last))


main()
"""


class MayaScriptExporter(Exporter):
    """A Maya Python script that keys the MetaHuman face board controls (run it in the Script Editor)."""

    name = "maya-py"
    extensions = (".py",)
    rigs = ("metahuman-174",)
    Config = MayaScriptConfig

    def write(self, sequence: RigSequence, rig: RigSpec, path: Path) -> None:
        curves = "".join(
            f"    ({node!r}, {attribute!r}, {_joined_values(sequence.values[:, column])!r}),\n"
            for column, node, attribute in _board_curves(rig)
        )
        path.write_text(
            MAYA_SCRIPT.format(
                frames=sequence.num_frames,
                rig=rig.name,
                fps=sequence.fps,
                start=self.config.start_frame,
                namespace=self.config.namespace,
                time_unit=maya_time_unit(sequence.fps),
                curves=curves,
            ),
            encoding="utf-8",
        )


class UnrealCurvesConfig(ComponentConfig):
    key_times: Literal["seconds", "frames"] = Field(
        default="seconds", description="Key times of the header row: seconds from 0, or frame numbers from 0"
    )


class UnrealCurveTableExporter(Exporter):
    """Unreal Curve Table CSV: a header of key times, then one row per face board control."""

    name = "unreal-curves"
    extensions = (".csv",)
    rigs = ("metahuman-174",)
    Config = UnrealCurvesConfig

    def write(self, sequence: RigSequence, rig: RigSpec, path: Path) -> None:
        import numpy as np

        frames = np.arange(sequence.num_frames, dtype=np.float64)
        if self.config.key_times == "seconds":
            header = _joined_values(frames / sequence.fps)
        else:
            header = ",".join(str(frame) for frame in range(sequence.num_frames))
        with path.open("w", encoding="utf-8") as stream:
            stream.write(f"Name,{header}\n")
            for column, control in _first_columns(rig):
                stream.write(f"{control},{_joined_values(sequence.values[:, column])}\n")


def _pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


class LiveLinkExporter(Exporter):
    """Live Link Face CSV: Timecode, BlendShapeCount, the 52 ARKit shapes, then head and eye rotations."""

    name = "livelink"
    extensions = (".csv",)
    rigs = ("arkit-52",)

    def write(self, sequence: RigSequence, rig: RigSpec, path: Path) -> None:
        import numpy as np

        header = ["Timecode", "BlendShapeCount", *(_pascal(c) for c in rig.controls), *LIVE_LINK_ROTATIONS]
        thousandths = np.rint(
            np.arange(sequence.num_frames, dtype=np.float64)
            * (LIVE_LINK_TIMECODE_RATE * 1000.0)
            / sequence.fps
        ).astype(np.int64)
        tc_frames, fraction = np.divmod(thousandths, 1000)
        seconds, frame = np.divmod(tc_frames, LIVE_LINK_TIMECODE_RATE)
        minutes, second = np.divmod(seconds, 60)
        hour, minute = np.divmod(minutes, 60)
        table = np.column_stack(
            [
                hour,
                minute,
                second,
                frame,
                fraction,
                sequence.values.astype(np.float64),
                np.zeros((sequence.num_frames, 3)),
                *_eye_rotations(sequence.values.astype(np.float64), rig),
            ]
        )
        row = (
            f"%02d:%02d:%02d:%02d.%03d,{LIVE_LINK_BLENDSHAPE_COUNT},"
            + ",".join([VALUE] * (rig.num_controls + len(LIVE_LINK_ROTATIONS)))
            + "\n"
        )
        path.write_text(
            ",".join(header) + "\n" + "".join(row % tuple(values) for values in table.tolist()),
            encoding="utf-8",
        )


def _eye_rotations(values: np.ndarray, rig: RigSpec) -> list[np.ndarray]:
    """Yaw, pitch and roll of the left eye, then of the right, in radians, from the eyeLook shapes.

    Yaw is positive towards the subject's right and pitch positive downwards, as in recorded takes;
    roll is 0.
    """
    import numpy as np

    def shape(name: str) -> np.ndarray:
        return values[:, rig.controls.index(name)]

    scale = EYE_ROTATION_AT_FULL_LOOK
    zero = np.zeros(len(values))
    return [
        (shape("eyeLookInLeft") - shape("eyeLookOutLeft")) * scale,
        (shape("eyeLookDownLeft") - shape("eyeLookUpLeft")) * scale,
        zero,
        (shape("eyeLookOutRight") - shape("eyeLookInRight")) * scale,
        (shape("eyeLookDownRight") - shape("eyeLookUpRight")) * scale,
        zero,
    ]


class LiveLinkImportConfig(ComponentConfig):
    fps: float | None = Field(
        default=None,
        gt=0,
        description="Frames per second of the result; by default inferred from the timecodes",
    )


class LiveLinkImporter(Importer):
    """Live Link Face CSV (raw or _cal): the 52 ARKit shapes; head and eye rotations are dropped."""

    name = "livelink"
    extensions = (".csv",)
    Config = LiveLinkImportConfig

    @classmethod
    def sniff(cls, head: str) -> bool:
        return head.lstrip("\ufeff").startswith("Timecode")

    def read(self, path: Path) -> RigSequence:
        import numpy as np

        from medtalk.core.plugins import get_registry
        from medtalk.core.sequence import RigSequence

        rig = get_registry("rig").get("arkit-52")
        rows = _live_link_lines(path)
        header_line, header_text = rows[0]
        header = [name.strip() for name in header_text.split(",")]
        columns = _live_link_columns(path, header_line, header, rig)
        if len(rows) == 1:
            raise FileFormatError(
                f"{path}: the file has a header but no frames: expected one row per frame after it"
            )
        timecodes, values = _live_link_rows(path, rows[1:], header, columns)
        seconds, fps = _live_link_times(path, rows[1:], timecodes)
        fps = self.config.fps or fps
        frames = np.rint((seconds - seconds[0]) * fps).astype(np.int64)
        return RigSequence(_on_frames(frames, values), fps=fps, rig=rig.name)


def _live_link_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise FileFormatError(
            f"{path}: not a text file: give the CSV that Live Link Face saved with the take"
        ) from None
    rows = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not rows:
        raise FileFormatError(
            f"{path}: the file is empty: expected a header (Timecode,BlendShapeCount,EyeBlinkLeft,...) "
            "and one row per frame"
        )
    return rows


def _live_link_columns(path: Path, line: int, header: list[str], rig: RigSpec) -> list[int]:
    """For each rig control in order, the header column holding it (names match whatever their case)."""
    where = f"{path}, line {line}"
    if header[0] != "Timecode" or len(header) < 2 or header[1].lower() != "blendshapecount":
        raise FileFormatError(
            f"{where}: the header does not start with Timecode,BlendShapeCount: "
            "give a CSV saved by Live Link Face (or --from csv for a plain CSV)"
        )
    by_name = {control.lower(): control for control in rig.controls}
    rotations = {name.lower() for name in LIVE_LINK_ROTATIONS}
    found: dict[str, int] = {}
    for column, name in enumerate(header[2:], start=2):
        control = by_name.get(name.lower())
        if control is None and name.lower() not in rotations:
            raise FileFormatError(
                f"{where}: '{name}' is not an ARKit shape or a head/eye rotation: "
                "use the column names Live Link Face writes (docs/exporting.md)"
            )
        if control is not None:
            if control in found:
                raise FileFormatError(f"{where}: '{name}' has two columns: keep one column per shape")
            found[control] = column
    missing = [_pascal(control) for control in rig.controls if control not in found]
    if missing:
        raise FileFormatError(
            f"{where}: the header lacks {missing[0]}: a Live Link Face CSV has a column per ARKit shape"
        )
    return [found[control] for control in rig.controls]


def _live_link_rows(
    path: Path, rows: list[tuple[int, str]], header: list[str], columns: list[int]
) -> tuple[list[str], np.ndarray]:
    """The timecode cells and the shape values (frames x 52) of the data rows."""
    import numpy as np

    width = len(header)
    for number, line in rows:
        count = line.count(",") + 1
        if count != width:
            raise FileFormatError(
                f"{path}, line {number}: expected {width} values as in the header, found {count}: "
                "every row needs a timecode, the blendshape count and one value per header column"
            )
    cells = [line.split(",") for _, line in rows]
    timecodes = [row[0].strip() for row in cells]
    tokens = [row[column] for row in cells for column in columns]
    try:
        values = np.array(tokens, dtype=np.float64).reshape(len(rows), len(columns))
        parsed = bool(np.isfinite(values).all())
    except ValueError:
        parsed = False
    if not parsed:
        values = np.array(
            [
                [_live_link_value(path, number, header[column], row[column]) for column in columns]
                for (number, _), row in zip(rows, cells, strict=True)
            ]
        )
    return timecodes, values


def _live_link_value(path: Path, line: int, name: str, token: str) -> float:
    return checked_number(token, f"{path}, line {line}, column {name}")


def _live_link_times(
    path: Path, rows: list[tuple[int, str]], timecodes: list[str]
) -> tuple[np.ndarray, float]:
    """Seconds of each row from its timecode, and the frame rate of the rows.

    The timecode is HH:MM:SS:FF.fff with FF.fff in frames of the timecode's own rate; that rate is the
    standard one above every FF in the take that makes the steps across a second as long as the others
    (60, Live Link Face's, where the take does not cross a second). The rows' rate is that rate over the
    median step, snapped to a common frame rate within 0.2%.
    """
    import numpy as np

    whole = np.empty(len(timecodes), dtype=np.int64)
    frame_part = np.empty(len(timecodes), dtype=np.float64)
    for index, ((number, _), timecode) in enumerate(zip(rows, timecodes, strict=True)):
        match = TIMECODE.match(timecode)
        if match is None or int(match[2]) > 59 or int(match[3]) > 59:
            raise FileFormatError(
                f"{path}, line {number}: {timecode!r} is not a Live Link Face timecode: "
                "write HH:MM:SS:FF.fff, e.g. 00:00:01:30.000"
            )
        whole[index] = int(match[1]) * 3600 + int(match[2]) * 60 + int(match[3])
        frame_part[index] = float(match[4])
    candidates = [rate for rate in LIVE_LINK_TIMECODE_RATES if rate > frame_part.max()]
    if not candidates:
        number = rows[int(frame_part.argmax())][0]
        raise FileFormatError(
            f"{path}, line {number}: frame {frame_part.max():g} is beyond every timecode rate up to "
            f"{LIVE_LINK_TIMECODE_RATES[-1]}: write frames below the timecode's rate"
        )
    if len(rows) == 1:
        rate = LIVE_LINK_TIMECODE_RATE if LIVE_LINK_TIMECODE_RATE in candidates else candidates[0]
        return np.zeros(1), float(rate)
    # Midnight: a day later, not a jump back.
    whole = whole + 86400 * np.concatenate([[0], np.cumsum(np.diff(whole) < -43200)])

    def misfits(rate: int) -> int:
        steps = np.diff(whole * rate + frame_part)
        return int((np.abs(steps - np.median(steps)) > 0.25 * np.median(steps)).sum())

    crosses_a_second = bool((np.diff(whole) != 0).any())
    if crosses_a_second:
        rate = min(candidates, key=lambda r: (misfits(r), r != LIVE_LINK_TIMECODE_RATE, r))
    else:
        rate = LIVE_LINK_TIMECODE_RATE if LIVE_LINK_TIMECODE_RATE in candidates else candidates[0]
    seconds = whole + frame_part / rate
    steps = np.diff(seconds)
    backwards = np.flatnonzero(steps <= 0)
    if backwards.size:
        number = rows[int(backwards[0]) + 1][0]
        raise FileFormatError(
            f"{path}, line {number}: timecode {timecodes[int(backwards[0]) + 1]!r} is not after the row "
            f"before ({timecodes[int(backwards[0])]!r}): keep the rows in recording order"
        )
    fps = 1.0 / float(np.median(steps))
    nearest = min(COMMON_FRAME_RATES, key=lambda common: abs(common - fps))
    fps = nearest if abs(nearest - fps) <= 0.002 * nearest else round(fps, 3)
    return seconds, fps


def _on_frames(frames: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rows on their frames: two rows on one frame keep the later, a frame with none is interpolated."""
    import numpy as np

    last_of_frame = np.flatnonzero(np.append(frames[1:] != frames[:-1], True))
    frames, values = frames[last_of_frame], values[last_of_frame]
    every_frame = np.arange(frames[-1] + 1)
    if len(frames) == len(every_frame):
        return values
    return np.stack([np.interp(every_frame, frames, values[:, c]) for c in range(values.shape[1])], axis=1)


BLENDER_SCRIPT = """\
# Generated by medtalk (blender-py): {frames} frames of rig {rig} at {fps:g} fps, keyed from frame {start}.
# Select the face mesh (make it the active object), then in the Scripting workspace open this file in the
# Text Editor and press Run Script. It keys the mesh's shape keys named after the 52 ARKit shapes:
# exactly as ARKit names them (eyeBlinkLeft), else ignoring case and underscores with a _L/_R or .L/.R
# ending read as Left/Right (EyeBlinkLeft, eyeBlink_L). Shapes the mesh lacks are skipped with a warning.
import bpy

FPS = {fps!r}
START_FRAME = {start!r}
FRAMES = {frames!r}
SHAPES = (
{shapes})


def normalized(name):
    lowered = name.lower()
    for ending, side in (("_l", "left"), ("_r", "right"), (".l", "left"), (".r", "right")):
        if lowered.endswith(ending):
            lowered = lowered[: -len(ending)] + side
    return lowered.replace("_", "").replace(".", "")


def main():
    mesh = bpy.context.active_object
    shape_keys = getattr(getattr(mesh, "data", None), "shape_keys", None)
    if shape_keys is None:
        raise RuntimeError("medtalk: make the mesh with the ARKit shape keys the active object, then rerun")
    scene = bpy.context.scene
    scene.render.fps = max(1, round(FPS))
    scene.render.fps_base = scene.render.fps / FPS
    blocks = shape_keys.key_blocks
    by_normalized = {{normalized(block.name): block.name for block in blocks}}
    missing = []
    for shape, values in SHAPES:
        name = shape if blocks.get(shape) is not None else by_normalized.get(normalized(shape))
        if name is None:
            missing.append(shape)
            continue
        block = blocks[name]
        for index, value in enumerate(values.split(",")):
            block.value = float(value)
            block.keyframe_insert("value", frame=START_FRAME + index)
    scene.frame_start = START_FRAME
    scene.frame_end = START_FRAME + FRAMES - 1
    for shape in missing:
        print("medtalk warning: %s has no shape key %s, skipped" % (mesh.name, shape))
    keyed = len(SHAPES) - len(missing)
    last = scene.frame_end
    print("medtalk: keyed %d of %d shapes, frames %d to %d" % (keyed, len(SHAPES), START_FRAME, last))


main()
"""


class BlenderScriptExporter(Exporter):
    """A Blender Python script that keys ARKit-named shape keys on the active object."""

    name = "blender-py"
    extensions = (".py",)
    rigs = ("arkit-52",)
    Config = StartFrameConfig

    def write(self, sequence: RigSequence, rig: RigSpec, path: Path) -> None:
        shapes = "".join(
            f"    ({control!r}, {_joined_values(sequence.values[:, column])!r}),\n"
            for column, control in _first_columns(rig)
        )
        path.write_text(
            BLENDER_SCRIPT.format(
                frames=sequence.num_frames,
                rig=rig.name,
                fps=sequence.fps,
                start=self.config.start_frame,
                shapes=shapes,
            ),
            encoding="utf-8",
        )


@hookimpl
def register_exporters(register):
    register(MayaAnimExporter)
    register(MayaScriptExporter)
    register(UnrealCurveTableExporter)
    register(LiveLinkExporter)
    register(BlenderScriptExporter)


@hookimpl
def register_importers(register):
    register(LiveLinkImporter)
