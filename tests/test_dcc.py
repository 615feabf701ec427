"""The artists' formats: Maya .anim and script, Unreal curve table, Live Link Face CSV, Blender script.

Neither Maya, Unreal nor Blender runs here, so each file is checked by what can be checked without them:
the .anim file by a small reader written from the format's description, the scripts by running them
against fake ``maya.cmds`` / ``bpy`` modules that record every key, the Live Link CSV by reading it back.
"""

from __future__ import annotations

import csv
import math
import re
import sys
import types
from importlib.resources import files

import numpy as np
import pytest

from medtalk.core.errors import FileFormatError
from medtalk.core.fileio import format_for, read_sequence, write_sequence
from medtalk.core.plugins import get_registry
from medtalk.core.retarget import retarget
from medtalk.core.sequence import RigSequence
from medtalk.plugins.dcc import maya_time_unit

LIVE_LINK_HEADER = (
    "Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,EyeLookInLeft,EyeLookOutLeft,EyeLookUpLeft,"
    "EyeSquintLeft,EyeWideLeft,EyeBlinkRight,EyeLookDownRight,EyeLookInRight,EyeLookOutRight,EyeLookUpRight,"
    "EyeSquintRight,EyeWideRight,JawForward,JawRight,JawLeft,JawOpen,MouthClose,MouthFunnel,MouthPucker,"
    "MouthRight,MouthLeft,MouthSmileLeft,MouthSmileRight,MouthFrownLeft,MouthFrownRight,MouthDimpleLeft,"
    "MouthDimpleRight,MouthStretchLeft,MouthStretchRight,MouthRollLower,MouthRollUpper,MouthShrugLower,"
    "MouthShrugUpper,MouthPressLeft,MouthPressRight,MouthLowerDownLeft,MouthLowerDownRight,MouthUpperUpLeft,"
    "MouthUpperUpRight,BrowDownLeft,BrowDownRight,BrowInnerUp,BrowOuterUpLeft,BrowOuterUpRight,CheekPuff,"
    "CheekSquintLeft,CheekSquintRight,NoseSneerLeft,NoseSneerRight,TongueOut,HeadYaw,HeadPitch,HeadRoll,"
    "LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll"
)
MAPPING = files("medtalk").joinpath("data", "mappings", "metahuman-174__to__arkit-52.yaml")
needs_mapping = pytest.mark.skipif(
    not MAPPING.is_file(),
    reason="medtalk/data/mappings/metahuman-174__to__arkit-52.yaml is not written yet (issue 7)",
)


@pytest.fixture
def real(real_txt):
    return read_sequence(real_txt)


@pytest.fixture
def metahuman():
    return get_registry("rig").get("metahuman-174")


@pytest.fixture
def arkit():
    return get_registry("rig").get("arkit-52")


def arkit_take(frames: int = 150, fps: float = 60.0, seed: int = 0) -> RigSequence:
    values = np.random.default_rng(seed).uniform(0, 1, size=(frames, 52)).round(6)
    return RigSequence(values, fps=fps, rig="arkit-52")


def written(values: np.ndarray) -> np.ndarray:
    """Values as a file holds them: float32 to float64, 6 decimals."""
    return np.round(values.astype(np.float64), 6)


def first_columns(rig) -> dict[str, int]:
    columns: dict[str, int] = {}
    for column, control in enumerate(rig.controls):
        columns.setdefault(control, column)
    return columns


def test_the_artists_formats_are_registered():
    assert {"maya-anim", "maya-py", "unreal-curves", "livelink", "blender-py"} <= set(
        get_registry("exporter").names()
    )
    assert "livelink" in get_registry("importer").names()


def test_a_csv_name_still_means_the_plain_csv(tmp_path):
    assert format_for("exporter", tmp_path / "take.csv") == "csv"


# --- Maya .anim ---------------------------------------------------------------------------------------


def read_anim(text: str) -> tuple[dict[str, str], list[dict]]:
    """A small .anim reader after Maya's ANIM file format description: header statements, then curves."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("//", "#"))]
    header: dict[str, str] = {}
    curves: list[dict] = []
    position = 0
    while position < len(lines) and not lines[position].startswith("anim "):
        keyword, value = lines[position].rstrip(";").split(" ", 1)
        header[keyword] = value
        position += 1
    while position < len(lines):
        words = lines[position].rstrip(";").split()
        assert words[0] == "anim" and len(words) == 7, lines[position]
        curve = {
            "full": words[1],
            "attribute": words[2],
            "node": words[3],
            "address": tuple(map(int, words[4:])),
        }
        assert lines[position + 1] == "animData {"
        position += 2
        settings = {}
        while lines[position] != "keys {":
            keyword, value = lines[position].rstrip(";").split(" ", 1)
            settings[keyword] = value
            position += 1
        position += 1
        keys = []
        while lines[position] != "}":
            fields = lines[position].rstrip(";").split()
            assert fields[2:] == ["auto", "auto", "1", "0", "0"], lines[position]
            keys.append((float(fields[0]), float(fields[1])))
            position += 1
        assert lines[position + 1] == "}"
        position += 2
        curve.update(settings=settings, keys=keys)
        curves.append(curve)
    return header, curves


def test_the_anim_file_keys_every_board_attribute_on_every_frame(real, metahuman, tmp_path):
    header, curves = read_anim(write_sequence(real, tmp_path / "take.anim").read_text())
    assert header == {
        "animVersion": "1.1",
        "mayaVersion": "2024",
        "timeUnit": "ntscf",
        "linearUnit": "cm",
        "angularUnit": "deg",
        "startTime": "1",
        "endTime": "202",
    }
    columns = first_columns(metahuman)
    assert len(curves) == len(columns) == 172
    assert sum(len(curve["keys"]) for curve in curves) == 202 * 172
    assert {f"{c['node']}-{c['attribute']}" for c in curves} == set(columns)
    for curve in curves:
        assert curve["settings"] == {
            "input": "time",
            "output": "linear",
            "weighted": "0",
            "preInfinity": "constant",
            "postInfinity": "constant",
        }
        assert curve["full"] == f"translate.{curve['attribute']}"
        times, values = np.array(curve["keys"]).T
        np.testing.assert_array_equal(times, np.arange(1, 203))
        column = columns[f"{curve['node']}-{curve['attribute']}"]
        np.testing.assert_array_equal(values, written(real.values[:, column]))


def test_the_anim_file_numbers_each_nodes_attributes_and_keeps_the_first_tongue_tip_pair(real, tmp_path):
    _, curves = read_anim(write_sequence(real, tmp_path / "take.anim").read_text())
    addresses = {(c["node"], c["attribute"]): c["address"] for c in curves}
    assert addresses[("CTRL_C_eye", "translateX")] == (0, 0, 0)
    assert addresses[("CTRL_C_eye", "translateY")] == (0, 0, 1)
    assert addresses[("CTRL_C_jaw_fwdBack", "translateY")] == (0, 0, 0)
    tip = [c for c in curves if c["node"] == "CTRL_C_tongue_tip"]
    assert [c["attribute"] for c in tip] == ["translateX", "translateY"]
    # Columns 25-26 are written; the repeated pair at 27-28 differs in the real clip and is left out.
    for curve, column in zip(tip, (25, 26), strict=True):
        np.testing.assert_array_equal(np.array(curve["keys"])[:, 1], written(real.values[:, column]))
    assert np.abs(real.values[:, 26] - real.values[:, 28]).max() > 0.1


@pytest.mark.parametrize(
    ("fps", "unit"),
    [(15, "game"), (24, "film"), (25, "pal"), (30, "ntsc"), (48, "show"), (50, "palf"), (60, "ntscf")],
)
def test_the_anim_time_unit_follows_the_frame_rate(fps, unit, real, tmp_path):
    take = RigSequence(real.values[:10], fps=fps, rig=real.rig)
    header, curves = read_anim(write_sequence(take, tmp_path / "take.anim").read_text())
    assert (header["timeUnit"], header["startTime"], header["endTime"]) == (unit, "1", "10")
    assert [t for t, _ in curves[0]["keys"]] == list(range(1, 11))


def test_a_rate_without_a_named_unit_is_keyed_in_milliseconds(real, tmp_path):
    take = RigSequence(real.values[:10], fps=120, rig=real.rig)
    header, curves = read_anim(
        write_sequence(take, tmp_path / "take.anim", options={"start_frame": 0}).read_text()
    )
    assert header["timeUnit"] == "millisec"
    np.testing.assert_allclose([t for t, _ in curves[0]["keys"]], np.arange(10) * 1000 / 120, atol=1e-6)
    assert (float(header["startTime"]), float(header["endTime"])) == (0.0, pytest.approx(75.0))


def test_maya_time_units():
    assert [maya_time_unit(fps) for fps in (24, 30, 60, 120, 23.976, 59.94, 33)] == [
        "film",
        "ntsc",
        "ntscf",
        "120fps",
        "23.976fps",
        "59.94fps",
        None,
    ]


# --- Maya script --------------------------------------------------------------------------------------


class FakeMayaCmds(types.ModuleType):
    """Records what the script asks of maya.cmds; ``missing`` plugs do not exist."""

    def __init__(self, missing=()):
        super().__init__("maya.cmds")
        self.missing = set(missing)
        self.keys: dict[tuple[str, str], list[tuple[float, float]]] = {}
        self.units: list[dict] = []
        self.undo: list[dict] = []
        self.playback: dict = {}
        self.linear = "m"

    def currentUnit(self, query=False, **flags):  # noqa: N802 (Maya's name)
        if query:
            return self.linear
        self.units.append(flags)
        self.linear = flags.get("linear", self.linear)

    def undoInfo(self, query=False, **flags):  # noqa: N802
        if query:
            return True
        self.undo.append(flags)

    def refresh(self, **flags):
        pass

    def objExists(self, plug):  # noqa: N802
        return plug not in self.missing

    def setKeyframe(self, node, attribute, time, value):  # noqa: N802
        self.keys.setdefault((node, attribute), []).append((time, value))

    def playbackOptions(self, **flags):  # noqa: N802
        self.playback.update(flags)


@pytest.fixture
def fake_maya(monkeypatch):
    def install(missing=(), scene_fps=24.0):
        cmds = FakeMayaCmds(missing)
        mel = types.ModuleType("maya.mel")
        mel.eval = lambda command: scene_fps if command == "currentTimeUnitToFPS()" else None
        maya = types.ModuleType("maya")
        maya.cmds, maya.mel = cmds, mel
        for name, module in (("maya", maya), ("maya.cmds", cmds), ("maya.mel", mel)):
            monkeypatch.setitem(sys.modules, name, module)
        return cmds

    return install


def run_script(path):
    exec(compile(path.read_text(), str(path), "exec"), {"__name__": "__main__"})


def test_the_maya_script_keys_every_board_attribute(real, metahuman, fake_maya, tmp_path, capsys):
    cmds = fake_maya()
    run_script(write_sequence(real, tmp_path / "take.py", "maya-py"))
    columns = first_columns(metahuman)
    assert {f"{node}-{attribute}" for node, attribute in cmds.keys} == set(columns)
    for (node, attribute), keys in cmds.keys.items():
        times, values = np.array(keys).T
        np.testing.assert_array_equal(times, np.arange(1, 203))
        column = columns[f"{node}-{attribute}"]
        np.testing.assert_array_equal(values, written(real.values[:, column]))
    assert cmds.units == [{"time": "ntscf"}, {"linear": "cm"}, {"linear": "m"}]
    assert cmds.undo == [{"stateWithoutFlush": False}, {"stateWithoutFlush": True}]
    assert cmds.playback == {"minTime": 1, "maxTime": 202, "animationStartTime": 1, "animationEndTime": 202}
    assert capsys.readouterr().out == "medtalk: keyed 172 of 172 curves, frames 1 to 202\n"


def test_the_maya_script_skips_missing_controls_and_uses_the_namespace(real, fake_maya, tmp_path, capsys):
    cmds = fake_maya(missing={"MH:CTRL_C_jaw.translateY"})
    path = write_sequence(real, tmp_path / "take.py", "maya-py", {"namespace": "MH:", "start_frame": 101})
    run_script(path)
    assert ("MH:CTRL_C_jaw", "translateY") not in cmds.keys
    assert len(cmds.keys) == 171 and all(node.startswith("MH:") for node, _ in cmds.keys)
    assert cmds.keys[("MH:CTRL_C_jaw", "translateX")][0][0] == 101
    assert capsys.readouterr().out == (
        "medtalk warning: MH:CTRL_C_jaw.translateY is not in the scene, skipped (is NAMESPACE right?)\n"
        "medtalk: keyed 171 of 172 curves, frames 101 to 302\n"
    )


def test_the_maya_script_places_keys_by_time_where_maya_has_no_unit(real, fake_maya, tmp_path, capsys):
    cmds = fake_maya(scene_fps=24.0)
    run_script(
        write_sequence(RigSequence(real.values[:4], fps=33, rig=real.rig), tmp_path / "take.py", "maya-py")
    )
    assert cmds.units[0] == {"linear": "cm"}
    times = [t for t, _ in cmds.keys[("CTRL_C_eye", "translateX")]]
    np.testing.assert_allclose(times, 1 + np.arange(4) * 24 / 33)
    assert capsys.readouterr().out.startswith("medtalk warning: Maya has no time unit for 33 fps")


# --- Unreal curve table -------------------------------------------------------------------------------


def read_curve_table(path) -> tuple[list[float], dict[str, list[float]]]:
    """What UCurveTable::CreateTableFromCSVString reads: key times after the first cell, then named rows."""
    rows = list(csv.reader(path.read_text().splitlines()))
    times = [float(cell) for cell in rows[0][1:]]
    assert len(set(times)) == len(times)
    curves = {}
    for row in rows[1:]:
        assert row[0] not in curves and len(row) == len(rows[0])
        curves[row[0]] = [float(cell) for cell in row[1:]]
    return times, curves


def test_the_curve_table_has_a_row_per_board_control(real, metahuman, tmp_path):
    path = write_sequence(real, tmp_path / "take.csv", "unreal-curves")
    assert path.read_text().startswith("Name,0.000000,0.016667,0.033333,")
    times, curves = read_curve_table(path)
    np.testing.assert_allclose(times, np.arange(202) / 60, atol=5e-7)
    columns = first_columns(metahuman)
    assert list(curves) == list(columns)
    for control, column in columns.items():
        np.testing.assert_array_equal(curves[control], written(real.values[:, column]))


def test_the_curve_table_can_be_keyed_by_frame(real, tmp_path):
    times, _ = read_curve_table(
        write_sequence(real, tmp_path / "t.csv", "unreal-curves", {"key_times": "frames"})
    )
    assert times == list(range(202))


# --- Live Link Face CSV -------------------------------------------------------------------------------


def test_the_live_link_csv_has_the_apps_columns_and_timecodes(arkit, tmp_path):
    take = arkit_take(frames=70)
    lines = write_sequence(take, tmp_path / "take.csv", "livelink").read_text().splitlines()
    assert lines[0] == LIVE_LINK_HEADER
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 70 and {len(row) for row in rows} == {63}
    assert [row[0] for row in rows[:2] + rows[59:61]] == [
        "00:00:00:00.000",
        "00:00:00:01.000",
        "00:00:00:59.000",
        "00:00:01:00.000",
    ]
    assert {row[1] for row in rows} == {"61"}
    table = np.array([row[2:] for row in rows], dtype=np.float64)
    np.testing.assert_array_equal(table[:, :52], written(take.values))
    assert not table[:, 52:55].any()
    look = {name: take.values[:, arkit.controls.index(name)].astype(np.float64) for name in arkit.controls}
    full = math.radians(30)
    expected = [
        (look["eyeLookInLeft"] - look["eyeLookOutLeft"]) * full,
        (look["eyeLookDownLeft"] - look["eyeLookUpLeft"]) * full,
        0 * full,
        (look["eyeLookOutRight"] - look["eyeLookInRight"]) * full,
        (look["eyeLookDownRight"] - look["eyeLookUpRight"]) * full,
        0 * full,
    ]
    for column, values in enumerate(expected, start=55):
        np.testing.assert_allclose(table[:, column], values, atol=5e-7)


@pytest.mark.parametrize("fps", [24.0, 25.0, 29.97, 30.0, 50.0, 60.0])
def test_a_live_link_csv_round_trips(fps, tmp_path):
    take = arkit_take(frames=150, fps=fps)
    back = read_sequence(write_sequence(take, tmp_path / "take.csv", "livelink"))
    assert (back.rig, back.fps, back.num_frames) == ("arkit-52", fps, 150)
    np.testing.assert_array_equal(back.values, take.values)


def test_a_short_live_link_take_round_trips(tmp_path):
    take = arkit_take(frames=3, fps=30)
    back = read_sequence(write_sequence(take, tmp_path / "take.csv", "livelink"))
    assert (back.fps, back.num_frames) == (30.0, 3)


def recorded_take(timecodes: list[str], seed: int = 1) -> tuple[str, np.ndarray]:
    """A Live Link Face CSV as the app writes it, 10 decimals and head/eye rotations included."""
    values = np.random.default_rng(seed).uniform(0, 1, size=(len(timecodes), 61)).round(10)
    rows = [
        f"{tc},61," + ",".join(f"{v:.10f}" for v in row) for tc, row in zip(timecodes, values, strict=True)
    ]
    return LIVE_LINK_HEADER + "\n" + "\n".join(rows) + "\n", values[:, :52]


@pytest.mark.parametrize("name", ["MySlate_7_iPhone.csv", "MySlate_7_iPhone_cal.csv"])
def test_a_recorded_take_imports_raw_or_calibrated(name, tmp_path):
    # 30 rows a second on the app's 60-frame timecode, crossing a second, with its sub-frame drift.
    text, values = recorded_take(["12:27:47:55.169", "12:27:47:57.168", "12:27:47:59.168", "12:27:48:01.167"])
    (tmp_path / name).write_text(text)
    take = read_sequence(tmp_path / name)
    assert (take.rig, take.fps, take.num_frames) == ("arkit-52", 30.0, 4)
    np.testing.assert_array_equal(take.values, values.astype(np.float32))


def test_a_25_frame_timecode_is_recognised_and_a_dropped_frame_interpolated(tmp_path):
    timecodes = ["01:00:00:21.000", "01:00:00:22.000", "01:00:00:23.000", "01:00:00:24.000"]
    text, values = recorded_take([*timecodes, "01:00:01:00.000", "01:00:01:02.000"])
    (tmp_path / "take.csv").write_text(text)
    take = read_sequence(tmp_path / "take.csv")
    assert (take.fps, take.num_frames) == (25.0, 7)
    np.testing.assert_allclose(take.values[5], (values[4] + values[5]) / 2, atol=1e-6)
    np.testing.assert_array_equal(take.values[6], values[5].astype(np.float32))


def test_the_frame_rate_can_be_given(tmp_path):
    text, _ = recorded_take([f"00:00:00:{frame:02d}.000" for frame in range(0, 40, 2)])
    (tmp_path / "take.csv").write_text(text)
    assert read_sequence(tmp_path / "take.csv").fps == 30.0
    # Rows are placed on the nearest frame at the given rate; two on one frame keep the later.
    take = read_sequence(tmp_path / "take.csv", options={"fps": 15})
    assert (take.fps, take.num_frames) == (15.0, 11)


def bad_take(tmp_path, change) -> str:
    text, _ = recorded_take(["00:00:00:00.000", "00:00:00:01.000", "00:00:00:02.000"])
    lines = text.splitlines()
    change(lines)
    (tmp_path / "take.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(FileFormatError) as error:
        read_sequence("take.csv", "livelink")
    return str(error.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda lines: lines.clear(),
            "take.csv: the file is empty: expected a header (Timecode,BlendShapeCount,EyeBlinkLeft,...) "
            "and one row per frame",
        ),
        (
            lambda lines: lines.__delitem__(slice(1, None)),
            "take.csv: the file has a header but no frames: expected one row per frame after it",
        ),
        (
            lambda lines: lines.__setitem__(2, "00:00:00:1.000" + lines[2][15:]),
            "take.csv, line 3: '00:00:00:1.000' is not a Live Link Face timecode: "
            "write HH:MM:SS:FF.fff, e.g. 00:00:01:30.000",
        ),
        (
            lambda lines: lines.__setitem__(2, lines[2].rsplit(",", 1)[0]),
            "take.csv, line 3: expected 63 values as in the header, found 62: "
            "every row needs a timecode, the blendshape count and one value per header column",
        ),
        (
            lambda lines: lines.__setitem__(3, re.sub(r"^([^,]*,61,[^,]*,)[^,]*", r"\1abc", lines[3])),
            "take.csv, line 4, column EyeLookDownLeft: 'abc' is not a number: write plain decimal numbers",
        ),
        (
            lambda lines: lines.__setitem__(3, re.sub(r"^([^,]*,61,)[^,]*", r"\1nan", lines[3])),
            "take.csv, line 4, column EyeBlinkLeft: 'nan' is not a finite number: "
            "replace NaN/inf with real values",
        ),
        (
            lambda lines: lines.__setitem__(0, lines[0].replace("JawOpen", "JawOpened")),
            "take.csv, line 1: 'JawOpened' is not an ARKit shape or a head/eye rotation: "
            "use the column names Live Link Face writes (docs/exporting.md)",
        ),
        (
            lambda lines: lines.__setitem__(0, lines[0].replace("TongueOut", "HeadYaw")),
            "take.csv, line 1: the header lacks TongueOut: a Live Link Face CSV has a column per ARKit shape",
        ),
        (
            lambda lines: lines.__setitem__(0, lines[0].replace("BlendShapeCount", "Count")),
            "take.csv, line 1: the header does not start with Timecode,BlendShapeCount: "
            "give a CSV saved by Live Link Face (or --from csv for a plain CSV)",
        ),
        (
            lambda lines: lines.__setitem__(3, "00:00:00:00.500" + lines[3][15:]),
            "take.csv, line 4: timecode '00:00:00:00.500' is not after the row before ('00:00:00:01.000'): "
            "keep the rows in recording order",
        ),
    ],
)
def test_bad_live_link_files(change, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert bad_take(tmp_path, change) == expected


def test_plain_and_live_link_csvs_are_told_apart(real, tmp_path):
    write_sequence(real, tmp_path / "plain.csv")
    write_sequence(arkit_take(), tmp_path / "face.csv", "livelink")
    assert format_for("importer", tmp_path / "plain.csv") == "csv"
    assert format_for("importer", tmp_path / "face.csv") == "livelink"


@needs_mapping
def test_a_board_take_is_retargeted_for_live_link_and_blender(real, fake_bpy, tmp_path):
    expected = retarget(real, "arkit-52")
    back = read_sequence(write_sequence(real, tmp_path / "take.csv", "livelink"))
    assert (back.rig, back.fps, back.num_frames) == ("arkit-52", 60.0, 202)
    np.testing.assert_array_equal(back.values, written(expected.values).astype(np.float32))
    bpy = fake_bpy({name: name for name in expected_rig_names()})
    run_script(write_sequence(real, tmp_path / "take.py", "blender-py"))
    for column, name in enumerate(expected_rig_names()):
        np.testing.assert_array_equal(bpy.values_of(name), written(expected.values[:, column]))


def expected_rig_names() -> tuple[str, ...]:
    return get_registry("rig").get("arkit-52").controls


# --- Blender script -----------------------------------------------------------------------------------


class FakeKeyBlock:
    def __init__(self, name, keys):
        self.name, self.value, self._keys = name, 0.0, keys

    def keyframe_insert(self, data_path, frame):
        assert data_path == "value"
        self._keys.setdefault(self.name, []).append((frame, self.value))


class FakeKeyBlocks:
    def __init__(self, blocks):
        self._blocks = {block.name: block for block in blocks}

    def get(self, name):
        return self._blocks.get(name)

    def __getitem__(self, name):
        return self._blocks[name]

    def __iter__(self):
        return iter(self._blocks.values())


@pytest.fixture
def fake_bpy(monkeypatch):
    def install(shape_key_names, with_shape_keys=True):
        keys: dict[str, list[tuple[float, float]]] = {}
        blocks = FakeKeyBlocks([FakeKeyBlock(name, keys) for name in ["Basis", *shape_key_names.values()]])
        data = types.SimpleNamespace(
            shape_keys=types.SimpleNamespace(key_blocks=blocks) if with_shape_keys else None
        )
        render = types.SimpleNamespace(fps=24, fps_base=1.0)
        scene = types.SimpleNamespace(render=render, frame_start=1, frame_end=250)
        bpy = types.ModuleType("bpy")
        bpy.context = types.SimpleNamespace(
            active_object=types.SimpleNamespace(name="Face", data=data), scene=scene
        )
        bpy.keys = keys
        bpy.values_of = lambda name: np.array([value for _, value in keys[shape_key_names[name]]])
        monkeypatch.setitem(sys.modules, "bpy", bpy)
        return bpy

    return install


def test_the_blender_script_keys_shape_keys_named_in_any_common_style(arkit, fake_bpy, tmp_path, capsys):
    styles = {name: name for name in arkit.controls}
    styles.update(
        eyeBlinkLeft="EyeBlinkLeft",
        eyeBlinkRight="eyeBlink_R",
        jawOpen="JAWOPEN",
        mouthSmileLeft="mouthSmile.L",
    )
    del styles["tongueOut"]
    bpy = fake_bpy(styles)
    take = arkit_take(frames=20, fps=30)
    run_script(write_sequence(take, tmp_path / "take.py", "blender-py"))
    for column, name in enumerate(arkit.controls[:-1]):
        frames = [frame for frame, _ in bpy.keys[styles[name]]]
        assert frames == list(range(1, 21))
        np.testing.assert_array_equal(bpy.values_of(name), written(take.values[:, column]))
    scene = bpy.context.scene
    assert (scene.render.fps, scene.render.fps_base, scene.frame_start, scene.frame_end) == (30, 1.0, 1, 20)
    assert capsys.readouterr().out == (
        "medtalk warning: Face has no shape key tongueOut, skipped\n"
        "medtalk: keyed 51 of 52 shapes, frames 1 to 20\n"
    )


def test_the_blender_script_sets_a_fractional_frame_rate(fake_bpy, tmp_path):
    bpy = fake_bpy({"jawOpen": "jawOpen"})
    run_script(
        write_sequence(
            arkit_take(frames=5, fps=29.97), tmp_path / "take.py", "blender-py", {"start_frame": 0}
        )
    )
    render = bpy.context.scene.render
    assert (render.fps, render.fps_base * 29.97) == (30, pytest.approx(30.0))
    assert [frame for frame, _ in bpy.keys["jawOpen"]] == [0, 1, 2, 3, 4]


def test_the_blender_script_asks_for_a_mesh_with_shape_keys(fake_bpy, tmp_path):
    fake_bpy({}, with_shape_keys=False)
    with pytest.raises(RuntimeError) as error:
        run_script(write_sequence(arkit_take(frames=2), tmp_path / "take.py", "blender-py"))
    assert (
        str(error.value) == "medtalk: make the mesh with the ARKit shape keys the active object, then rerun"
    )


# --- every exporter ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("maya-anim", ".anim"),
        ("maya-py", ".py"),
        ("unreal-curves", ".csv"),
        ("livelink", ".csv"),
        ("blender-py", ".py"),
    ],
)
def test_each_exporter_writes_only_its_file_and_the_scripts_compile(name, suffix, real, tmp_path):
    take = real if name in ("maya-anim", "maya-py", "unreal-curves") else arkit_take(frames=30)
    path = write_sequence(take, tmp_path / f"take{suffix}", name)
    assert list(tmp_path.iterdir()) == [path]
    if suffix == ".py":
        compile(path.read_text(), str(path), "exec")
