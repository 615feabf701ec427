"""Retargeting: the built-in MetaHuman <-> ARKit mappings, their docs, user mapping files and the CLI."""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import yaml

from medtalk import hookimpl
from medtalk.cli import run_cli
from medtalk.core.errors import ConfigError, FileFormatError
from medtalk.core.fileio import read_sequence
from medtalk.core.plugins import get_registry
from medtalk.core.retarget import (
    RigMapping,
    builtin_mapping,
    builtin_mapping_names,
    load_mapping,
    parse_mapping,
    retarget,
)
from medtalk.core.rig import RigSpec
from medtalk.core.sequence import RigSequence
from medtalk.plugins.rigs import ARKIT_52

DOCS = Path(__file__).resolve().parents[1] / "docs" / "retargeting.md"
# ARKit shapes that oppose each other on one bidirectional board control: an import keeps their difference.
OPPOSITE = [
    *[(f"eyeBlink{s}", f"eyeWide{s}") for s in ("Left", "Right")],
    *[(f"eyeLookIn{s}", f"eyeLookOut{s}") for s in ("Left", "Right")],
    *[(f"eyeLookUp{s}", f"eyeLookDown{s}") for s in ("Left", "Right")],
    ("jawLeft", "jawRight"),
    ("mouthLeft", "mouthRight"),
]
# Float32 sums of a few terms of magnitude <= 1.
ROUND_TRIP_TOLERANCE = 1e-6


@pytest.fixture
def metahuman() -> RigSpec:
    return get_registry("rig").get("metahuman-174")


@pytest.fixture
def forward() -> RigMapping:
    return builtin_mapping("metahuman-174", "arkit-52")


@pytest.fixture
def reverse() -> RigMapping:
    return builtin_mapping("arkit-52", "metahuman-174")


@pytest.fixture
def real(real_txt) -> RigSequence:
    return read_sequence(real_txt)


def column(rig: RigSpec, name: str) -> int:
    return rig.controls.index(name)


def board_frame(metahuman: RigSpec, **values: float) -> RigSequence:
    """One metahuman-174 frame; keyword names drop the '-translateY' suffix, X controls say '_X'."""
    frame = np.zeros((1, metahuman.num_controls), dtype=np.float32)
    for key, value in values.items():
        name = key[:-2] + "-translateX" if key.endswith("_X") else key + "-translateY"
        frame[0, column(metahuman, name)] = value
    return RigSequence(frame, 60.0, "metahuman-174")


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64), b.astype(np.float64))[0, 1])


# ---------------------------------------------------------------------------------------------- built-ins


def test_both_builtin_mappings_ship_and_load(forward, reverse, metahuman):
    assert {("metahuman-174", "arkit-52"), ("arkit-52", "metahuman-174")} <= set(builtin_mapping_names())
    assert (forward.source, forward.target, forward.weights.shape) == ("metahuman-174", "arkit-52", (52, 174))
    assert (reverse.source, reverse.target, reverse.weights.shape) == ("arkit-52", "metahuman-174", (174, 52))
    for mapping in (forward, reverse):
        assert np.isfinite(mapping.weights).all() and np.isfinite(mapping.offsets).all()
    # Every ARKit shape is computed from something (no silent all-zero row) ...
    empty = [ARKIT_52[i] for i in np.flatnonzero(~np.any(forward.weights, axis=1))]
    assert empty == []
    # ... and every ARKit shape comes back onto the board on import.
    unused = [ARKIT_52[i] for i in np.flatnonzero(~np.any(reverse.weights, axis=0))]
    assert unused == []
    # The forward mapping reads no board control that does not exist twice over (the second tongue-tip
    # copy repeats the first), and the reverse one writes both copies alike or neither.
    tongue = [i for i, name in enumerate(metahuman.controls) if name.startswith("CTRL_C_tongue_tip")]
    assert not forward.weights[:, tongue[2:]].any()
    assert (reverse.weights[tongue[:2]] == reverse.weights[tongue[2:]]).all()


def test_every_forward_entry_is_listed_in_the_yaml_file_in_live_link_order():
    document = yaml.safe_load(
        files("medtalk").joinpath("data", "mappings", "metahuman-174__to__arkit-52.yaml").read_text()
    )
    assert list(document["targets"]) == list(ARKIT_52)


@pytest.mark.parametrize(
    ("board", "expected"),
    [
        ({"CTRL_C_jaw": 0.6}, {"jawOpen": 0.6}),
        ({"CTRL_L_eye_blink": 0.8}, {"eyeBlinkLeft": 0.8}),
        ({"CTRL_L_eye_blink": -0.4}, {"eyeWideLeft": 0.4}),
        ({"CTRL_R_eye_blink": 0.3}, {"eyeBlinkRight": 0.3}),
        # Gaze X above 0 looks to the character's left: out for the left eye, in for the right eye.
        ({"CTRL_C_eye_X": 0.5}, {"eyeLookOutLeft": 0.5, "eyeLookInRight": 0.5}),
        ({"CTRL_C_eye_X": -0.25, "CTRL_R_eye_X": -0.25}, {"eyeLookInLeft": 0.25, "eyeLookOutRight": 0.5}),
        ({"CTRL_C_eye": 0.3}, {"eyeLookUpLeft": 0.3, "eyeLookUpRight": 0.3}),
        ({"CTRL_C_eye": -0.2, "CTRL_L_eye": 0.5}, {"eyeLookUpLeft": 0.3, "eyeLookDownRight": 0.2}),
        ({"CTRL_R_mouth_cornerPull": 0.7}, {"mouthSmileRight": 0.7}),
        ({"CTRL_L_mouth_cornerPull": 0.4, "CTRL_L_mouth_corner": 0.4}, {"mouthSmileLeft": 0.6}),
        ({"CTRL_L_mouth_cornerDepress": 0.5, "CTRL_L_mouth_corner": -0.4}, {"mouthFrownLeft": 0.7}),
        ({"CTRL_C_jaw_X": 0.2}, {"jawRight": 0.2}),
        ({"CTRL_C_mouth_X": 0.2}, {"mouthLeft": 0.2}),
        ({"CTRL_C_jaw_fwdBack": -0.3}, {"jawForward": 0.3}),
        ({"CTRL_C_jaw_fwdBack": 0.3}, {}),
        ({"CTRL_C_tongue_inOut": -0.9}, {"tongueOut": 0.9}),
        ({"CTRL_L_brow_raiseIn": 0.6}, {"browInnerUp": 0.3}),
        ({"CTRL_L_brow_down": 0.8, "CTRL_L_brow_lateral": 0.8}, {"browDownLeft": 1.0}),
        ({"CTRL_R_mouth_suckBlow": 0.8}, {"cheekPuff": 0.4}),
        ({"CTRL_R_mouth_suckBlow": -0.8}, {}),
        ({"CTRL_L_nose": 0.5}, {"noseSneerLeft": 0.5}),
        ({"CTRL_L_eye_cheekRaise": 0.5}, {"cheekSquintLeft": 0.5}),
        # Lips together closes the lips only as far as the jaw is open (a product's lower bound).
        (
            {"CTRL_C_jaw": 0.4, **{f"CTRL_{s}_mouth_lipsTogether{q}": 1.0 for s in "LR" for q in "UD"}},
            {"jawOpen": 0.4, "mouthClose": 0.4},
        ),
        ({f"CTRL_{s}_mouth_lipsTogether{q}": 1.0 for s in "LR" for q in "UD"}, {}),
    ],
)
def test_forward_mapping_follows_the_board_wiring(metahuman, board, expected):
    result = retarget(board_frame(metahuman, **board), "arkit-52").values[0]
    got = {ARKIT_52[i]: round(float(result[i]), 6) for i in np.flatnonzero(result)}
    assert got == pytest.approx(expected, abs=1e-6)
    assert set(got) == set(expected)


def test_the_real_clip_jaw_opens_the_arkit_jaw(real, metahuman):
    arkit = retarget(real, "arkit-52")
    jaw = real.values[:, column(metahuman, "CTRL_C_jaw-translateY")]
    jaw_open = arkit.values[:, ARKIT_52.index("jawOpen")]
    assert pearson(jaw, jaw_open) > 0.9
    assert jaw_open.max() > 0.3  # the clip speaks: the curve moves


def test_the_real_clip_blinks_map_to_blink_curves(real, metahuman):
    arkit = retarget(real, "arkit-52").values
    for side in ("L", "R"):
        name = {"L": "Left", "R": "Right"}[side]
        blink = real.values[:, column(metahuman, f"CTRL_{side}_eye_blink-translateY")]
        eye_blink = arkit[:, ARKIT_52.index(f"eyeBlink{name}")]
        eye_wide = arkit[:, ARKIT_52.index(f"eyeWide{name}")]
        # The clamp keeps the closing half for the blink and the opening half for the wide shape.
        assert pearson(blink, eye_blink) > 0.75
        assert pearson(blink, eye_wide) < -0.9
        assert eye_blink[blink > 0.2].min() > 0.2 and eye_blink[blink < 0].max() == 0


def test_retargeted_values_lie_in_the_target_ranges(real, metahuman):
    rng = np.random.default_rng(3)
    arkit = retarget(real, "arkit-52").values
    assert arkit.shape == (real.num_frames, 52) and arkit.dtype == np.float32
    assert arkit.min() >= 0.0 and arkit.max() <= 1.0
    # Board values overshooting their ranges (solvers do) still give ARKit values in 0..1.
    low, high = np.array(metahuman.ranges, dtype=np.float32).T
    wild = rng.uniform(low * 1.5, high * 1.5, (400, 174)).astype(np.float32)
    arkit = retarget(RigSequence(wild, 60.0, "metahuman-174"), "arkit-52").values
    assert arkit.min() >= 0.0 and arkit.max() <= 1.0 and (arkit == 1.0).any()
    board = retarget(RigSequence(rng.uniform(0, 1, (400, 52)), 30.0, "arkit-52"), "metahuman-174")
    assert board.fps == 30.0 and board.rig == "metahuman-174"
    assert (board.values >= low).all() and (board.values <= high).all()


def test_arkit_round_trip_keeps_the_shapes_the_board_can_hold():
    values = np.random.default_rng(11).uniform(0, 1, (500, 52)).astype(np.float32)
    back = retarget(retarget(RigSequence(values, 60.0, "arkit-52"), "metahuman-174"), "arkit-52").values
    index = {name: i for i, name in enumerate(ARKIT_52)}
    paired = {name for pair in OPPOSITE for name in pair}
    exact = [name for name in ARKIT_52 if name not in paired and name != "mouthClose"]
    assert len(exact) == 35
    cols = [index[name] for name in exact]
    np.testing.assert_allclose(back[:, cols], values[:, cols], atol=ROUND_TRIP_TOLERANCE, rtol=0)
    # An opposite pair comes back as its difference; mouthClose as its lower bound given the jaw.
    for a, b in OPPOSITE:
        difference = values[:, index[a]] - values[:, index[b]]
        np.testing.assert_allclose(back[:, index[a]], np.clip(difference, 0, 1), atol=ROUND_TRIP_TOLERANCE)
        np.testing.assert_allclose(back[:, index[b]], np.clip(-difference, 0, 1), atol=ROUND_TRIP_TOLERANCE)
    close = np.clip(values[:, index["mouthClose"]] + values[:, index["jawOpen"]] - 1, 0, 1)
    np.testing.assert_allclose(back[:, index["mouthClose"]], close, atol=ROUND_TRIP_TOLERANCE)
    # With one shape of each pair on (as in most captured frames), all but mouthClose come back.
    values = values.copy()  # RigSequence froze the array it was given
    for a, b in OPPOSITE:
        smaller = np.where(values[:, index[a]] < values[:, index[b]], index[a], index[b])
        values[np.arange(len(values)), smaller] = 0
    back = retarget(retarget(RigSequence(values, 60.0, "arkit-52"), "metahuman-174"), "arkit-52").values
    keep = [i for i, name in enumerate(ARKIT_52) if name != "mouthClose"]
    np.testing.assert_allclose(back[:, keep], values[:, keep], atol=ROUND_TRIP_TOLERANCE, rtol=0)


def test_gaze_imports_as_central_pad_plus_per_eye_offsets(metahuman):
    frame = np.zeros((1, 52), dtype=np.float32)
    for name, value in {"eyeLookOutLeft": 0.6, "eyeLookInRight": 0.2, "eyeLookUpLeft": 0.4}.items():
        frame[0, ARKIT_52.index(name)] = value
    board = retarget(RigSequence(frame, 60.0, "arkit-52"), "metahuman-174").values[0]
    pads = {
        name: round(float(board[column(metahuman, name)]), 6)
        for name in ("CTRL_C_eye-translateX", "CTRL_L_eye-translateX", "CTRL_R_eye-translateX")
        + ("CTRL_C_eye-translateY", "CTRL_L_eye-translateY", "CTRL_R_eye-translateY")
    }
    assert pads == {
        "CTRL_C_eye-translateX": 0.4,
        "CTRL_L_eye-translateX": 0.2,
        "CTRL_R_eye-translateX": -0.2,
        "CTRL_C_eye-translateY": 0.2,
        "CTRL_L_eye-translateY": 0.2,
        "CTRL_R_eye-translateY": -0.2,
    }


# ------------------------------------------------------------------------------------------------- docs


def _docs_rows(start: str, end: str | None) -> list[tuple[str, dict[str, float], float, str]]:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split(start, 1)[1]
    section = section.split(end, 1)[0] if end else section
    rows = []
    for line in section.splitlines():
        match = re.match(r"^\| `([^`]+)` \| ([^|]+) \|(?: ([^|]*) \|)?$", line)
        if match:
            name, cell, why = match.group(1), match.group(2), (match.group(3) or "").strip()
            terms = re.findall(r"`([^`]+)` ×(-?[0-9.]+)", cell)
            offset = re.search(r"offset (-?[0-9.]+)", cell)
            rows.append(
                (name, {s: float(w) for s, w in terms}, float(offset.group(1)) if offset else 0.0, why)
            )
    return rows


def _yaml_entries(filename: str) -> dict[str, tuple[dict[str, float], float]]:
    document = yaml.safe_load(files("medtalk").joinpath("data", "mappings", filename).read_text())
    return {
        target: ({s: float(w) for s, w in entry["sum"].items()}, float(entry.get("offset", 0.0)))
        for target, entry in document["targets"].items()
    }


def test_docs_table_lists_every_arkit_shape_as_the_yaml_file_does():
    rows = _docs_rows("### metahuman-174 -> arkit-52, shape by shape", "### What a linear map")
    assert [name for name, *_ in rows] == list(ARKIT_52)
    assert all(why for *_, why in rows)
    documented = {name: (sources, offset) for name, sources, offset, _ in rows}
    assert documented == _yaml_entries("metahuman-174__to__arkit-52.yaml")


def test_docs_summarise_the_reverse_mapping_as_the_yaml_file_does(metahuman):
    rows = _docs_rows("### arkit-52 -> metahuman-174 (imports)", None)
    assert {name for name, *_ in rows} <= set(metahuman.controls)
    documented = {name: (sources, offset) for name, sources, offset, _ in rows}
    assert len(documented) == len(rows) == 63
    assert documented == _yaml_entries("arkit-52__to__metahuman-174.yaml")


def test_docs_error_examples_are_what_medtalk_says(tmp_path, monkeypatch):
    """The one-line errors shown in the docs, produced from the files they describe."""
    monkeypatch.chdir(tmp_path)
    examples = re.findall(r"^error: (studio\.yaml.*)$", DOCS.read_text(encoding="utf-8"), flags=re.MULTILINE)
    head = "source_rig: metahuman-174\ntarget_rig: arkit-52\ntargets:\n"
    files_for_examples = [
        head + "  JawOpn:\n    sum: {CTRL_C_jaw-translateY: 1.0}\n",
        head + "  jawOpen:\n    sum: {CTRL_C_jaw-translateZ: 1.0}\n",
        head + "  jawOpen:\n    sum: {CTRL_C_jaw-translateY: one}\n",
        head + "  jawOpen:\n    sum: {CTRL_C_jaw-translateY: 1.0}\n    offset:\n",
        "source_rig: metahuman-174\ntarget_rig: arkit-52\n",
        head + "  jawOpen:\n    sum: {CTRL_C_jaw-translateY: 1}\n  mouthClose\n    sum: {}\n",
        head.replace("arkit-52", "arkit52") + "  jawOpen:\n    sum: {CTRL_C_jaw-translateY: 1.0}\n",
    ]
    assert len(examples) == len(files_for_examples)
    for expected, text in zip(examples, files_for_examples, strict=True):
        Path("studio.yaml").write_text(text)
        with pytest.raises(FileFormatError) as error:
            load_mapping("studio.yaml")
        assert str(error.value) == expected


# ------------------------------------------------------------------------------------ user mapping files

USER_YAML = """\
description: a test mapping
source_rig: metahuman-174
target_rig: arkit-52
targets:
  jawOpen:
    sum: {CTRL_C_jaw-translateY: 0.5}
    offset: 0.1
  mouthSmileLeft:
    sum:
      CTRL_L_mouth_cornerPull-translateY: 2
      CTRL_R_mouth_cornerPull-translateY: -1e-1
  tongueOut:
    sum: {CTRL_C_tongue_tip-translateY#2: 1.0}
"""


def _user_json() -> str:
    return json.dumps(
        {
            "source_rig": "metahuman-174",
            "target_rig": "arkit-52",
            "targets": {
                "jawOpen": {"sum": {"CTRL_C_jaw-translateY": 0.5}, "offset": 0.1},
                "mouthSmileLeft": {
                    "sum": {
                        "CTRL_L_mouth_cornerPull-translateY": 2,
                        "CTRL_R_mouth_cornerPull-translateY": -0.1,
                    }
                },
                "tongueOut": {"sum": {"CTRL_C_tongue_tip-translateY#2": 1.0}},
            },
        },
        indent=2,
    )


@pytest.mark.parametrize(("filename", "text"), [("studio.yaml", USER_YAML), ("studio.json", _user_json())])
def test_a_user_mapping_file_retargets(tmp_path, real, metahuman, filename, text):
    path = tmp_path / filename
    path.write_text(text)
    mapping = load_mapping(path)
    assert (mapping.source, mapping.target, mapping.origin) == ("metahuman-174", "arkit-52", str(path))
    result = retarget(real, "arkit-52", mapping).values
    board = real.values.astype(np.float64)
    jaw = board[:, column(metahuman, "CTRL_C_jaw-translateY")]
    np.testing.assert_allclose(result[:, ARKIT_52.index("jawOpen")], 0.5 * jaw + 0.1, atol=1e-6)
    smile = 2 * board[:, 53] - 0.1 * board[:, 122]
    np.testing.assert_allclose(result[:, ARKIT_52.index("mouthSmileLeft")], np.clip(smile, 0, 1), atol=1e-6)
    # '#2' reads the second tongue-tip copy (column 28), not the first (26).
    np.testing.assert_allclose(result[:, ARKIT_52.index("tongueOut")], np.clip(board[:, 28], 0, 1), atol=1e-6)
    assert not np.allclose(board[:, 26], board[:, 28])
    # Targets not listed stay 0.
    listed = {ARKIT_52.index(n) for n in ("jawOpen", "mouthSmileLeft", "tongueOut")}
    assert not result[:, [i for i in range(52) if i not in listed]].any()


def test_a_repeated_target_name_sets_all_its_columns_and_number_picks_one(metahuman):
    document = {
        "source_rig": "arkit-52",
        "target_rig": "metahuman-174",
        "targets": {
            "CTRL_C_tongue_tip-translateX": {"sum": {"tongueOut": 1.0}},
            "CTRL_C_tongue_tip-translateY#2": {"sum": {"jawOpen": -1.0}},
        },
    }
    frame = np.zeros((1, 52), dtype=np.float32)
    frame[0, ARKIT_52.index("tongueOut")], frame[0, ARKIT_52.index("jawOpen")] = 0.7, 0.4
    result = parse_mapping(document, "inline").apply(RigSequence(frame, 60.0, "arkit-52")).values[0]
    assert [round(float(result[i]), 6) for i in (25, 26, 27, 28)] == [0.7, 0.0, 0.7, -0.4]
    assert np.count_nonzero(result) == 3


@pytest.mark.parametrize("filename", ["studio.yaml", "studio.json"])
def test_export_with_a_mapping_file_writes_the_target_rig(real_txt, tmp_path, filename, capsys):
    mapping = tmp_path / filename
    mapping.write_text(USER_YAML if filename.endswith(".yaml") else _user_json())
    out = tmp_path / "take.csv"
    assert run_cli(["export", str(real_txt), "--mapping", str(mapping), "-o", str(out)]) == 0
    header = out.read_text().splitlines()[0]
    assert header.split(",") == list(ARKIT_52)
    written = read_sequence(out)
    assert (written.rig, written.num_frames) == ("arkit-52", 202)
    jaw = read_sequence(real_txt).values[:, 4]
    np.testing.assert_allclose(written.values[:, 17], 0.5 * jaw + 0.1, atol=2e-6)
    assert capsys.readouterr().err == ""


def test_export_to_arkit_through_the_builtin_mapping_file(real_txt, tmp_path):
    builtin = files("medtalk").joinpath("data", "mappings", "metahuman-174__to__arkit-52.yaml")
    out = tmp_path / "take.csv"
    assert run_cli(["export", str(real_txt), "--mapping", str(builtin), "-o", str(out)]) == 0
    written = read_sequence(out)
    expected = retarget(read_sequence(real_txt), "arkit-52").values
    np.testing.assert_allclose(written.values, expected, atol=1e-6)


# ------------------------------------------------------------------------------------ bad mapping files

HEAD = "source_rig: metahuman-174\ntarget_rig: arkit-52\ntargets:\n"
BAD = [
    (
        "bad.yaml",
        HEAD + "  jawOpn:\n    sum: {CTRL_C_jaw-translateY: 1.0}\n",
        "bad.yaml, target 'jawOpn': not a control of rig arkit-52; did you mean 'jawOpen'?",
    ),
    (
        "bad.yaml",
        HEAD + "  jawOpen:\n    sum: {CTRL_C_jaw-translateYY: 1.0}\n",
        "bad.yaml, target 'jawOpen', source 'CTRL_C_jaw-translateYY': not a control of rig metahuman-174; "
        "did you mean 'CTRL_C_jaw-translateY'?",
    ),
    (
        "bad.yaml",
        HEAD + "  jawOpen:\n    sum: {elbow: 1.0}\n",
        "bad.yaml, target 'jawOpen', source 'elbow': not a control of rig metahuman-174: "
        "see docs/rigs.md for its controls",
    ),
    (
        "bad.yaml",
        HEAD + "  jawOpen:\n    sum: {CTRL_C_jaw-translateY: 'one'}\n",
        "bad.yaml, target 'jawOpen', source 'CTRL_C_jaw-translateY': weight 'one' is not a number: "
        "write a plain number such as 0.5",
    ),
    (
        "bad.yaml",
        HEAD + "  jawOpen:\n    sum: {CTRL_C_jaw-translateY: true}\n",
        "bad.yaml, target 'jawOpen', source 'CTRL_C_jaw-translateY': weight true is not a number: "
        "write a plain number such as 0.5",
    ),
    (
        "bad.yaml",
        HEAD + "  jawOpen:\n    sum: {CTRL_C_jaw-translateY: null}\n",
        "bad.yaml, target 'jawOpen', source 'CTRL_C_jaw-translateY': weight null is not a number: "
        "write a plain number such as 0.5",
    ),
    (
        "bad.yaml",
        HEAD + "  jawOpen:\n    sum: {CTRL_C_jaw-translateY: [1, 2]}\n",
        "bad.yaml, target 'jawOpen', source 'CTRL_C_jaw-translateY': weight a list is not a number: "
        "write a plain number such as 0.5",
    ),
    (
        "bad.json",
        '{"source_rig": "metahuman-174", "target_rig": "arkit-52", '
        '"targets": {"jawOpen": {"sum": {"CTRL_C_jaw-translateY": NaN}}}}',
        "bad.json, target 'jawOpen', source 'CTRL_C_jaw-translateY': weight nan is not a finite number: "
        "write a plain number such as 0.5",
    ),
    (
        "bad.yaml",
        HEAD + "  jawOpen:\n    sum: {CTRL_C_jaw-translateY: 1.0}\n    offset: half\n",
        "bad.yaml, target 'jawOpen': offset 'half' is not a number: write a plain number such as 0.5",
    ),
    (
        "bad.yaml",
        "source_rig: metahuman-174\ntarget_rig: arkit-52\n",
        "bad.yaml: missing 'targets': see docs/retargeting.md",
    ),
    (
        "bad.yaml",
        HEAD + "  jawOpen:\n    sum: {CTRL_C_jaw-translateY: 1.0\n  mouthClose:\n    sum: {}\n",
        "bad.yaml, line 6: not valid YAML (expected ',' or '}', but got ':'): fix the syntax",
    ),
    (
        "bad.json",
        '{\n  "source_rig": "metahuman-174",\n  "target_rig": "arkit-52",\n  "targets": {,}\n}\n',
        "bad.json, line 4: not valid JSON (Expecting property name enclosed in double quotes): "
        "fix the syntax",
    ),
    (
        "bad.yaml",
        HEAD + "  tongueOut:\n    sum: {CTRL_C_tongue_tip-translateX#3: 1.0}\n",
        "bad.yaml, target 'tongueOut', source 'CTRL_C_tongue_tip-translateX#3': rig metahuman-174 has "
        "2 column(s) named CTRL_C_tongue_tip-translateX: use #1..#2",
    ),
    (
        "bad.yaml",
        HEAD.replace("target_rig: arkit-52", "target_rig: arkit52") + "  jawOpen:\n    sum: {}\n",
        "bad.yaml, target_rig: unknown rig 'arkit52': valid names are arkit-52, metahuman-174; "
        "did you mean 'arkit-52'?",
    ),
    (
        "bad.yaml",
        HEAD.replace("source_rig: metahuman-174", "source_rig: maya") + "  jawOpen:\n    sum: {}\n",
        "bad.yaml, source_rig: unknown rig 'maya': valid names are arkit-52, metahuman-174",
    ),
    (
        "bad.yaml",
        HEAD + "  jawOpen:\n    sum: {CTRL_C_jaw-translateY: 1.0}\n  jawOpen:\n    sum: {}\n",
        "bad.yaml, line 6: 'jawOpen' appears twice in one mapping: list each key once",
    ),
    (
        "bad.json",
        '{"source_rig": "metahuman-174", "target_rig": "arkit-52", '
        '"targets": {"jawOpen": {"sum": {}}, "jawOpen": {"sum": {}}}}',
        "bad.json: 'jawOpen' appears twice in one object: list each key once",
    ),
    (
        "bad.yaml",
        HEAD
        + "  jawOpen:\n    sum: {CTRL_C_tongue_tip-translateX: 1.0, CTRL_C_tongue_tip-translateX#1: 1}\n",
        "bad.yaml, target 'jawOpen', source 'CTRL_C_tongue_tip-translateX#1': the same column as source "
        "'CTRL_C_tongue_tip-translateX': list each source once",
    ),
    (
        "bad.yaml",
        HEAD + "  jawOpen:\n    sum: {CTRL_C_jaw-translateY: 1.0}\n    weight: 2\n",
        "bad.yaml, target 'jawOpen': an entry is {sum: {SOURCE: WEIGHT, ...}, offset: NUMBER}: "
        "see docs/retargeting.md",
    ),
    ("bad.yaml", HEAD + "  {}\n", "bad.yaml: 'targets' is empty: list at least one target control"),
    (
        "bad.yaml",
        "- jawOpen\n",
        "bad.yaml: a mapping needs the keys source_rig, target_rig and targets: see docs/retargeting.md",
    ),
    (
        "bad.yaml",
        HEAD + "  jawOpen: {sum: {}}\nsources: []\n",
        "bad.yaml: unknown key 'sources': the keys are source_rig, target_rig, targets, description",
    ),
]


@pytest.mark.parametrize(("filename", "text", "expected"), BAD)
def test_a_bad_mapping_file_is_refused_with_one_line(tmp_path, monkeypatch, filename, text, expected):
    monkeypatch.chdir(tmp_path)
    Path(filename).write_text(text)
    with pytest.raises(FileFormatError) as error:
        load_mapping(filename)
    assert str(error.value) == expected


def test_a_repeated_target_column_is_refused():
    document = {
        "source_rig": "arkit-52",
        "target_rig": "metahuman-174",
        "targets": {
            "CTRL_C_tongue_tip-translateX": {"sum": {"tongueOut": 1.0}},
            "CTRL_C_tongue_tip-translateX#2": {"sum": {"jawOpen": 1.0}},
        },
    }
    with pytest.raises(FileFormatError) as error:
        parse_mapping(document, "studio.json")
    assert str(error.value) == (
        "studio.json, target 'CTRL_C_tongue_tip-translateX#2': the same column as target "
        "'CTRL_C_tongue_tip-translateX': list each target column once"
    )


def test_missing_and_binary_mapping_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileFormatError) as error:
        load_mapping("nowhere.yaml")
    assert str(error.value) == "nowhere.yaml: no such mapping file: check the path"
    Path("blob.yaml").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(FileFormatError) as error:
        load_mapping("blob.yaml")
    assert str(error.value) == "blob.yaml: not a text file: write the mapping as YAML or JSON"


@pytest.mark.parametrize(("filename", "text", "expected"), [BAD[0], BAD[3], BAD[11], BAD[12]])
def test_export_with_a_bad_mapping_exits_2_with_one_line_and_writes_nothing(
    real_txt, tmp_path, monkeypatch, capsys, filename, text, expected
):
    monkeypatch.chdir(tmp_path)
    Path(filename).write_text(text)
    assert run_cli(["export", str(real_txt), "--mapping", filename, "-o", "take.csv"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {expected}\n"
    assert captured.out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == [filename]


def test_a_mapping_from_another_rig_or_to_another_rig_is_refused(tmp_path, real, capsys, real_txt):
    reverse = builtin_mapping("arkit-52", "metahuman-174")
    with pytest.raises(ConfigError) as error:
        retarget(real, "metahuman-174", reverse)
    assert str(error.value) == (
        "the mapping arkit-52__to__metahuman-174.yaml maps rig arkit-52, but the sequence is rig "
        "metahuman-174: use a mapping from that rig"
    )
    with pytest.raises(ConfigError) as error:
        retarget(real, "metahuman-174", builtin_mapping("metahuman-174", "arkit-52"))
    assert str(error.value) == (
        "the mapping metahuman-174__to__arkit-52.yaml maps to rig arkit-52, not metahuman-174: "
        "use a mapping to metahuman-174"
    )
    assert retarget(real, "metahuman-174") is real
    path = tmp_path / "import.yaml"
    path.write_text(
        files("medtalk").joinpath("data", "mappings", "arkit-52__to__metahuman-174.yaml").read_text()
    )
    assert run_cli(["export", str(real_txt), "--mapping", str(path), "-o", str(tmp_path / "x.csv")]) == 2
    assert capsys.readouterr().err == (
        f"error: the mapping {path} maps rig arkit-52, but the sequence is rig metahuman-174: "
        "use a mapping from that rig\n"
    )
    assert not (tmp_path / "x.csv").exists()


# ------------------------------------------------------------------------------------------ a studio rig

STUDIO_RIG = RigSpec(
    name="studio-rig",
    controls=("JawOpen", "SmileL", "BrowTension"),
    ranges=((0.0, 1.0), (0.0, 0.5), (-1.0, 1.0)),
    description="a studio's own face rig, for the tests",
)


class StudioRigPlugin:
    @staticmethod
    @hookimpl
    def register_rigs(register):
        register(STUDIO_RIG)


STUDIO_MAPPING = """\
source_rig: metahuman-174
target_rig: studio-rig
targets:
  JawOpen:
    sum: {CTRL_C_jaw-translateY: 1.0}
  SmileL:
    sum: {CTRL_L_mouth_cornerPull-translateY: 4.0}
  BrowTension:
    sum: {CTRL_L_brow_down-translateY: -2.0, CTRL_L_brow_lateral-translateY: 1.0}
    offset: 0.25
"""


def test_a_plugin_rig_is_a_mapping_target_without_retraining(
    register_plugin, real_txt, tmp_path, monkeypatch, capsys
):
    register_plugin(StudioRigPlugin)
    monkeypatch.chdir(tmp_path)
    Path("studio.yaml").write_text(STUDIO_MAPPING)
    assert run_cli(["export", str(real_txt), "--mapping", "studio.yaml", "-o", "take.csv"]) == 0
    assert Path("take.csv").read_text().splitlines()[0] == "JawOpen,SmileL,BrowTension"
    take = read_sequence("take.csv")
    assert (take.rig, take.num_frames) == ("studio-rig", 202)
    board = read_sequence(real_txt).values.astype(np.float64)
    np.testing.assert_allclose(take.values[:, 0], board[:, 4], atol=2e-6)
    # Clamped to the studio rig's own ranges: SmileL tops out at 0.5, BrowTension goes below 0.
    np.testing.assert_allclose(take.values[:, 1], np.clip(4 * board[:, 53], 0, 0.5), atol=2e-6)
    assert take.values[:, 1].max() == 0.5
    tension = np.clip(-2 * board[:, 29] + board[:, 30] + 0.25, -1, 1)
    np.testing.assert_allclose(take.values[:, 2], tension, atol=2e-6)
    assert take.values[:, 2].min() < 0
    # medtalk ships no mapping to a studio's rig, and says how to give one.
    with pytest.raises(ConfigError) as error:
        retarget(read_sequence(real_txt), "studio-rig")
    assert str(error.value) == (
        "no built-in mapping from rig metahuman-174 to rig studio-rig (medtalk ships "
        "arkit-52 -> metahuman-174, metahuman-174 -> arkit-52): "
        "write one (docs/retargeting.md) and pass --mapping FILE"
    )
