"""The built-in rigs: names, index sets, ranges, checked against the shared data and the real clip."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED

from medtalk.core.errors import ConfigError, PluginError
from medtalk.core.fileio import read_sequence
from medtalk.core.plugins import get_registry
from medtalk.core.rig import RigSpec

# How far outside a control's documented range the real (solver-produced) clip may go.
RANGE_MARGIN = 0.01


@pytest.fixture
def metahuman():
    return get_registry("rig").get("metahuman-174")


@pytest.fixture
def arkit():
    return get_registry("rig").get("arkit-52")


def test_metahuman_controls_are_the_shared_list_in_order(metahuman):
    shared = (SHARED / "data" / "metahuman_controls_174.txt").read_text().split()
    assert list(metahuman.controls) == shared
    assert metahuman.num_controls == 174
    assert metahuman.controls[25:29] == metahuman.controls[25:27] * 2


def test_metahuman_authors_sets(metahuman):
    assert metahuman.index_set("intensity") == (29, 30, 31, 32, 98, 99, 100, 101, 36, 43, 105, 112, 53, 122)
    lip = metahuman.index_set("lip")
    assert lip == tuple(range(3, 13)) + tuple(range(46, 92)) + tuple(range(115, 161))
    assert {metahuman.controls[i] for i in (3, 12, 46, 91, 115, 160)} == {
        "CTRL_C_jaw-translateX",
        "CTRL_C_mouth_stickyU-translateY",
        "CTRL_L_jaw_ChinRaiseD-translateY",
        "CTRL_L_mouth_upperLipRaise-translateY",
        "CTRL_R_jaw_ChinRaiseD-translateY",
        "CTRL_R_mouth_upperLipRaise-translateY",
    }


def test_metahuman_upper_and_emotion_sets(metahuman):
    upper = {metahuman.controls[i] for i in metahuman.index_set("upper")}
    emotion = {metahuman.controls[i] for i in metahuman.index_set("emotion")}
    lip = set(metahuman.index_set("lip"))
    assert len(metahuman.index_set("upper")) == 36
    assert upper < emotion
    assert emotion - upper == {
        f"CTRL_{side}_neck_{name}-translateY" for side in "LR" for name in ("mastoidContract", "stretch")
    }
    assert not lip & set(metahuman.index_set("emotion"))
    for name in ("brow_down", "eye_blink", "eye_squintInner", "eye_cheekRaise", "nose_wrinkleUpper"):
        assert {f"CTRL_L_{name}-translateY", f"CTRL_R_{name}-translateY"} <= upper
    # Gaze and pupils follow attention, not emotion; tongue and teeth follow speech.
    assert not any(n.startswith(("CTRL_C_eye", "CTRL_C_tongue", "CTRL_C_teeth")) for n in emotion)
    assert not any(
        n.endswith(("_eye-translateX", "_eye-translateY", "eye_pupil-translateY")) for n in emotion
    )
    # The intensity controls the authors chose are expressive: brows, blinks and squints are upper face.
    assert set(metahuman.index_set("intensity")) <= set(metahuman.index_set("upper")) | lip


def test_metahuman_ranges_are_0_1_or_minus1_1_and_cover_the_real_clip(metahuman, real_txt):
    assert set(metahuman.ranges) == {(0.0, 1.0), (-1.0, 1.0)}
    bidirectional = {metahuman.controls[i] for i, r in enumerate(metahuman.ranges) if r == (-1.0, 1.0)}
    assert {
        "CTRL_L_eye_blink-translateY",
        "CTRL_C_jaw-translateX",
        "CTRL_L_mouth_suckBlow-translateY",
    } <= bidirectional
    assert "CTRL_C_jaw-translateY" not in bidirectional
    values = read_sequence(real_txt).values
    low = np.array([lo for lo, _ in metahuman.ranges]) - RANGE_MARGIN
    high = np.array([hi for _, hi in metahuman.ranges]) + RANGE_MARGIN
    outside = [metahuman.controls[i] for i in np.flatnonzero((values < low).any(0) | (values > high).any(0))]
    assert outside == []


def test_arkit_52_names_order_and_sets(arkit):
    assert arkit.num_controls == len(set(arkit.controls)) == 52
    assert (
        arkit.controls[0] == "eyeBlinkLeft"
        and arkit.controls[17] == "jawOpen"
        and arkit.controls[-1] == "tongueOut"
    )
    assert set(arkit.ranges) == {(0.0, 1.0)}
    lip = {arkit.controls[i] for i in arkit.index_set("lip")}
    upper = {arkit.controls[i] for i in arkit.index_set("upper")}
    assert len(lip) + len(upper) == 52 - 8  # the eight eye-look shapes are gaze
    assert "mouthSmileLeft" in lip and "browInnerUp" in upper and not lip & upper
    assert {arkit.controls[i] for i in arkit.index_set("intensity")} == {
        "browDownLeft",
        "browDownRight",
        "browInnerUp",
        "browOuterUpLeft",
        "browOuterUpRight",
        "eyeBlinkLeft",
        "eyeBlinkRight",
        "eyeSquintLeft",
        "eyeSquintRight",
        "mouthSmileLeft",
        "mouthSmileRight",
    }


def test_unknown_set_and_control_names(metahuman):
    with pytest.raises(ConfigError) as error:
        metahuman.index_set("lips")
    assert (
        str(error.value)
        == "rig 'metahuman-174' has no index set 'lips': its sets are emotion, intensity, lip, upper"
    )
    assert metahuman.indices_of(["CTRL_C_tongue_tip-translateY"]) == (26, 28)
    with pytest.raises(ConfigError) as error:
        metahuman.indices_of(["CTRL_C_jaw"])
    assert str(error.value) == "rig 'metahuman-174' has no control 'CTRL_C_jaw': check the spelling"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"ranges": ((0, 1),)}, "rig 'r' has 2 controls but 1 ranges: give one (min, max) per control"),
        ({"ranges": ((0, 1), (1, 1))}, "rig 'r', control 'b': range (1.0, 1.0) needs min < max"),
        ({"sets": {"lip": (0, 2)}}, "rig 'r', set 'lip': indices [2] are outside 0..1"),
    ],
)
def test_a_bad_rig_spec_is_refused(kwargs, expected):
    spec = {"name": "r", "controls": ("a", "b"), "ranges": ((0, 1), (0, 1)), **kwargs}
    with pytest.raises(PluginError) as error:
        RigSpec(**spec)
    assert str(error.value) == expected


def test_docs_list_every_metahuman_control_with_its_range_and_sets(metahuman):
    docs = (Path(__file__).resolve().parents[1] / "docs" / "rigs.md").read_text(encoding="utf-8")
    rows = re.findall(
        r"^\| (\d+) \| `([^`]+)` \| (-?\d+) \| (-?\d+) \| ([a-z, ]*) \|$", docs, flags=re.MULTILINE
    )
    assert len(rows) == 174
    for index, control, low, high, sets in rows:
        i = int(index)
        assert (control, float(low), float(high)) == (metahuman.controls[i], *metahuman.ranges[i])
        listed = {s.strip() for s in sets.split(",") if s.strip()}
        assert listed == {name for name, indices in metahuman.sets.items() if i in indices}
