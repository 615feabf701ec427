"""The built-in formats: the real clip round-trips exactly; bad files give one line with the fix."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medtalk.core.errors import FileFormatError, InputError
from medtalk.core.fileio import read_sequence, write_sequence
from medtalk.core.plugins import get_registry
from medtalk.core.sequence import RigSequence

FORMATS = ("txt", "csv", "json")


@pytest.fixture
def real(real_txt):
    return read_sequence(real_txt)


def test_the_real_clip_reads_as_metahuman_174_at_60_fps(real, real_txt):
    source = np.loadtxt(real_txt, delimiter=",")
    assert real.rig == "metahuman-174"
    assert real.fps == 60.0
    assert real.values.shape == source.shape == (202, 174)
    assert real.values.dtype == np.float32
    np.testing.assert_array_equal(real.values, source.astype(np.float32))


@pytest.mark.parametrize("format_name", FORMATS)
def test_the_real_clip_round_trips_to_six_decimals(format_name, real, real_txt, tmp_path):
    path = write_sequence(real, tmp_path / f"clip.{format_name}")
    back = read_sequence(path)
    assert (back.rig, back.fps, back.values.shape) == (real.rig, real.fps, real.values.shape)
    source = np.loadtxt(real_txt, delimiter=",")
    np.testing.assert_array_equal(np.round(back.values.astype(np.float64), 6), source)


def test_txt_output_is_byte_identical_to_the_authors_file(real, real_txt, tmp_path):
    path = write_sequence(real, tmp_path / "clip.txt")
    assert path.read_bytes() == real_txt.read_bytes()


def test_chained_conversions_keep_every_value(real, tmp_path):
    sequence = real
    for step, format_name in enumerate(("json", "csv", "txt", "json")):
        sequence = read_sequence(write_sequence(sequence, tmp_path / f"step{step}.{format_name}"))
    np.testing.assert_array_equal(sequence.values, real.values)


def test_csv_header_names_the_controls_in_rig_order(real, tmp_path):
    path = write_sequence(real, tmp_path / "clip.csv")
    header = path.read_text().splitlines()[0].split(",")
    assert header == list(get_registry("rig").get("metahuman-174").controls)


def test_csv_columns_may_come_in_any_order(real, tmp_path):
    rig = get_registry("rig").get("arkit-52")
    values = np.random.default_rng(0).uniform(0, 1, size=(5, 52)).round(6)
    order = np.random.default_rng(1).permutation(52)
    lines = [",".join(rig.controls[i] for i in order)]
    lines += [",".join(f"{v:.6f}" for v in row[order]) for row in values]
    (tmp_path / "shuffled.csv").write_text("\n".join(lines) + "\n")
    back = read_sequence(tmp_path / "shuffled.csv")
    assert back.rig == "arkit-52"
    np.testing.assert_array_equal(back.values, values.astype(np.float32))


def test_json_is_per_control_curves_with_rig_and_fps(real, tmp_path):
    document = json.loads(write_sequence(real, tmp_path / "clip.json").read_text())
    assert document["format"] == "medtalk.rig-sequence"
    assert (document["rig"], document["fps"], document["num_frames"]) == ("metahuman-174", 60.0, 202)
    assert len(document["curves"]) == 174
    # The repeated tongue-tip pair keeps both copies, in rig order.
    assert [c["control"] for c in document["curves"][25:29]] == [
        "CTRL_C_tongue_tip-translateX",
        "CTRL_C_tongue_tip-translateY",
    ] * 2
    assert document["curves"][4]["values"][:3] == [round(float(v), 6) for v in real.values[:3, 4]]


def test_importer_options_set_rig_and_fps(tmp_path):
    (tmp_path / "a.txt").write_text("0.5," * 51 + "0.5\n")
    sequence = read_sequence(tmp_path / "a.txt", options={"fps": 30, "rig": "arkit-52"})
    assert (sequence.rig, sequence.fps, sequence.num_frames) == ("arkit-52", 30.0, 1)


def write_rows(path, rows):
    path.write_text("".join(",".join(row) + "\n" for row in rows))
    return path


def real_rows(real_txt):
    return [line.split(",") for line in real_txt.read_text().splitlines()]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda rows: rows[11].pop(),
            "bad.txt, line 12: expected 174 values (rig metahuman-174), found 173: "
            "every row needs one value per control",
        ),
        (
            lambda rows: rows[2].__setitem__(16, "abc"),
            "bad.txt, line 3, value 17: 'abc' is not a number: write plain decimal numbers",
        ),
        (
            lambda rows: rows[4].__setitem__(0, "nan"),
            "bad.txt, line 5, value 1: 'nan' is not a finite number: replace NaN/inf with real values",
        ),
        (
            lambda rows: rows[200].__setitem__(173, "-inf"),
            "bad.txt, line 201, value 174: '-inf' is not a finite number: replace NaN/inf with real values",
        ),
    ],
)
def test_bad_txt_rows_name_the_file_line_and_fix(edit, expected, real_txt, tmp_path, monkeypatch):
    rows = real_rows(real_txt)
    edit(rows)
    monkeypatch.chdir(tmp_path)
    write_rows(tmp_path / "bad.txt", rows)
    with pytest.raises(FileFormatError) as error:
        read_sequence("bad.txt")
    assert str(error.value) == expected


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_an_empty_txt_is_refused(content, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text(content)
    with pytest.raises(FileFormatError) as error:
        read_sequence("empty.txt")
    assert str(error.value) == (
        "empty.txt: the file has no frames: expected one row of comma-separated values per frame"
    )


def test_a_width_no_rig_has_asks_for_the_rig(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_rows(tmp_path / "narrow.txt", [["0"] * 60])
    with pytest.raises(FileFormatError) as error:
        read_sequence("narrow.txt")
    assert str(error.value) == (
        "narrow.txt, line 1: 60 values, which matches no registered rig "
        "(arkit-52: 52, metahuman-174: 174): pass --rig NAME"
    )


def test_line_numbers_count_blank_lines(real_txt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = real_rows(real_txt)[:3]
    rows[2] = rows[2][:-1]
    (tmp_path / "gappy.txt").write_text(
        ",".join(rows[0]) + "\n\n" + ",".join(rows[1]) + "\n" + ",".join(rows[2])
    )
    with pytest.raises(FileFormatError) as error:
        read_sequence("gappy.txt")
    assert str(error.value).startswith("gappy.txt, line 4: expected 174 values")


def test_a_binary_file_is_not_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip.txt").write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(FileFormatError) as error:
        read_sequence("clip.txt")
    assert str(error.value) == ("clip.txt: not a text file: give a UTF-8 text file of comma-separated values")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "h.csv: the file is empty: expected a header of control names, then one row per frame"),
        (
            "eyeBlinkLeft,notAControl\n0,0\n",
            "h.csv, line 1: the header's 2 control names match no registered "
            "rig: use a rig's control names (docs/rigs.md) or pass --rig NAME",
        ),
    ],
)
def test_bad_csv_headers(content, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "h.csv").write_text(content)
    with pytest.raises(FileFormatError) as error:
        read_sequence("h.csv")
    assert str(error.value) == expected


def test_csv_with_an_explicit_rig_names_the_unknown_control(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "h.csv").write_text("eyeBlinkLeft,notAControl\n0,0\n")
    with pytest.raises(FileFormatError) as error:
        read_sequence("h.csv", options={"rig": "arkit-52"})
    assert str(error.value) == (
        "h.csv, line 1: 'notAControl' is not a control of rig arkit-52: "
        "use the rig's control names (docs/rigs.md)"
    )


def test_csv_value_errors_use_file_line_numbers(real, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = write_sequence(real, tmp_path / "clip.csv").read_text().splitlines()
    lines[7] = lines[7].rsplit(",", 1)[0]
    (tmp_path / "clip.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(FileFormatError) as error:
        read_sequence("clip.csv")
    assert str(error.value) == (
        "clip.csv, line 8: expected 174 values (rig metahuman-174), found 173: "
        "every row needs one value per control"
    )


def _json(tmp_path, document):
    (tmp_path / "s.json").write_text(json.dumps(document) if not isinstance(document, str) else document)
    return "s.json"


def _arkit_document(frames=2):
    rig = get_registry("rig").get("arkit-52")
    return {
        "format": "medtalk.rig-sequence",
        "version": 1,
        "rig": "arkit-52",
        "fps": 30,
        "curves": [{"control": name, "values": [0.25] * frames} for name in rig.controls],
    }


def test_a_hand_written_json_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sequence = read_sequence(_json(tmp_path, _arkit_document(3)))
    assert (sequence.rig, sequence.fps, sequence.num_frames) == ("arkit-52", 30.0, 3)
    assert float(sequence.values.mean()) == 0.25


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: "{oops",
            "s.json, line 1: not valid JSON (Expecting property name enclosed in double quotes): "
            "write it with 'medtalk export --to json'",
        ),
        (
            lambda d: d.__delitem__("format"),
            's.json: not a medtalk rig-sequence JSON (no "format": '
            "\"medtalk.rig-sequence\"): write it with 'medtalk export --to json'",
        ),
        (
            lambda d: d.__setitem__("fps", "fast"),
            "s.json: key 'fps' is missing or of the wrong type: see docs/formats.md",
        ),
        (lambda d: d.__setitem__("fps", 0), "s.json: fps is 0: give a positive frame rate"),
        (
            lambda d: d["curves"].pop(),
            "s.json: 51 curves, but rig arkit-52 has 52 controls: give one curve per control, in rig order",
        ),
        (
            lambda d: d["curves"].reverse(),
            "s.json: curve 0 should be control 'eyeBlinkLeft': keep the curves in rig order",
        ),
        (
            lambda d: d["curves"][3]["values"].__setitem__(1, "x"),
            "s.json: curve 3 (eyeLookOutLeft), frame 1: "
            "'x' is not a finite number: replace it with a real value",
        ),
        (
            lambda d: d["curves"][3]["values"].__setitem__(0, float("nan")),
            "s.json: curve 3 (eyeLookOutLeft), "
            "frame 0: nan is not a finite number: replace it with a real value",
        ),
        (
            lambda d: d["curves"][5]["values"].pop(),
            "s.json: curves have different lengths [1, 2]: give every curve every frame",
        ),
        (
            lambda d: d.__setitem__("rig", "arkit52"),
            "s.json: unknown rig 'arkit52': valid names are arkit-52, "
            "metahuman-174; did you mean 'arkit-52'?",
        ),
    ],
)
def test_bad_json_files(change, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    document = _arkit_document()
    result = change(document)
    with pytest.raises(FileFormatError) as error:
        read_sequence(_json(tmp_path, result if isinstance(result, str) else document))
    assert str(error.value) == expected


def test_an_unknown_extension_asks_for_the_format(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip.fbx").write_text("x")
    with pytest.raises(InputError) as error:
        read_sequence("clip.fbx")
    assert (
        str(error.value) == "clip.fbx: no format matches the extension '.fbx': "
        "pass --from FORMAT (one of csv, json, livelink, txt)"
    )


def test_a_sequence_refuses_nan_and_wrong_shapes():
    with pytest.raises(InputError) as error:
        RigSequence(np.array([[0.0, np.nan]]), fps=60, rig="x")
    assert str(error.value) == "a rig sequence holds NaN or infinite values: replace them with real numbers"
    with pytest.raises(InputError) as error:
        RigSequence(np.zeros(3), fps=60, rig="x")
    assert str(error.value) == "a rig sequence needs a 2-D array (frames x controls), got shape (3,)"


def test_writing_checks_the_width_against_the_rig(tmp_path):
    with pytest.raises(InputError) as error:
        write_sequence(RigSequence(np.zeros((2, 51)), fps=60, rig="arkit-52"), tmp_path / "x.csv")
    assert str(error.value) == (
        "this sequence has 51 controls for rig 'arkit-52', but rig 'arkit-52' has 52: retarget it first"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_sequence_is_read_only_but_leaves_the_callers_array_writable():
    values = np.zeros((2, 52), dtype=np.float32)
    sequence = RigSequence(values, fps=60, rig="arkit-52")
    values[0, 0] = 1.0
    with pytest.raises(ValueError):
        sequence.values[0, 0] = 2.0


def test_json_values_are_the_correctly_rounded_six_decimals(tmp_path):
    values = np.random.default_rng(7).uniform(-1, 1, size=(2000, 52)).astype(np.float32)
    path = write_sequence(RigSequence(values, fps=60, rig="arkit-52"), tmp_path / "r.json")
    written = [curve["values"] for curve in json.loads(path.read_text())["curves"]]
    assert written == [[round(v, 6) for v in column] for column in values.T.tolist()]
