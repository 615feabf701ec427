"""The CLI as a user meets it: exit codes, one-line errors on stderr, nothing written on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from medtalk import hookimpl
from medtalk.cli import run_cli
from medtalk.core.components import Exporter
from medtalk.core.fileio import read_sequence

EXPORTERS = "blender-py, csv, json, livelink, maya-anim, maya-py, txt, unreal-curves"


def medtalk(*args: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    """Run the installed CLI in a fresh process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "medtalk", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def test_help_lists_the_commands():
    result = medtalk("--help")
    assert result.returncode == 0
    for command in ("plugins", "components", "config", "export"):
        assert command in result.stdout


def test_version(capsys):
    from medtalk import __version__

    assert run_cli(["--version"]) == 0
    assert capsys.readouterr().out == f"medtalk {__version__}\n"


def test_export_of_a_173_value_row_exits_2_with_one_line_and_writes_nothing(real_txt, tmp_path):
    lines = real_txt.read_text().splitlines()
    lines[41] = lines[41].rsplit(",", 1)[0]
    (tmp_path / "take.txt").write_text("\n".join(lines) + "\n")
    result = medtalk("export", "take.txt", "--to", "csv", "-o", "take.csv", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "error: take.txt, line 42: expected 174 values (rig metahuman-174), found 173: "
        "every row needs one value per control\n"
    )
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.txt"]


@pytest.mark.parametrize("to", ["csv", "json", "txt"])
def test_export_converts_the_real_clip(to, real_txt, tmp_path, capsys):
    out = tmp_path / f"clip.{to}"
    assert run_cli(["export", str(real_txt), "--to", to, "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out} (202 frames, 3.37 s at 60 fps, rig metahuman-174)\n"
    np.testing.assert_array_equal(read_sequence(out).values, read_sequence(real_txt).values)


def test_export_infers_the_format_from_the_output_extension(real_txt, tmp_path):
    assert run_cli(["export", str(real_txt), "-o", str(tmp_path / "clip.json")]) == 0
    assert json.loads((tmp_path / "clip.json").read_text())["rig"] == "metahuman-174"


def test_export_refuses_to_replace_a_file_without_force(real_txt, tmp_path, capsys):
    out = tmp_path / "clip.csv"
    out.write_text("mine\n")
    assert run_cli(["export", str(real_txt), "-o", str(out)]) == 2
    assert (
        capsys.readouterr().err
        == f"error: {out}: already exists: choose another name, or pass --force to replace it\n"
    )
    assert out.read_text() == "mine\n"
    assert run_cli(["export", str(real_txt), "-o", str(out), "--force"]) == 0
    assert out.read_text().startswith("CTRL_C_eye-translateX,")


def test_export_options_for_headerless_formats(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("0.1," * 51 + "0.2\n" + "0.3," * 51 + "0.4\n")
    assert run_cli(["export", str(tmp_path / "a.txt"), "--fps", "30", "-o", str(tmp_path / "a.json")]) == 0
    document = json.loads((tmp_path / "a.json").read_text())
    assert (document["rig"], document["fps"], document["num_frames"]) == ("arkit-52", 30.0, 2)
    capsys.readouterr()
    assert (
        run_cli(["export", str(tmp_path / "a.json"), "--rig", "arkit-52", "-o", str(tmp_path / "b.csv")]) == 2
    )
    assert capsys.readouterr().err == (
        "error: --rig does not apply to the json format: the file states it; drop the option\n"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["export", "missing.txt", "-o", "x.csv"], "error: missing.txt: no such file: check the path\n"),
        (
            ["export", "in.txt", "-o", "x.fbx"],
            f"error: x.fbx: no format matches the extension '.fbx': pass --to FORMAT (one of {EXPORTERS})\n",
        ),
        (
            ["export", "in.txt", "--to", "jsn", "-o", "x.json"],
            f"error: unknown exporter 'jsn': valid names are {EXPORTERS}; did you mean 'json'?\n",
        ),
        (
            ["export", "in.txt", "-o", "no/such/dir/x.csv"],
            "error: no/such/dir/x.csv: the folder no/such/dir does not exist: create it first\n",
        ),
        (["export", "in.txt"], "error: Missing option '--output' / '-o'. (see 'medtalk export --help')\n"),
        (["exprot"], "error: No such command 'exprot'. Did you mean 'export'? (see 'medtalk --help')\n"),
        (["components", "--kind", "exporters"], None),
    ],
)
def test_bad_usage_gives_one_line_and_exit_2(args, expected, tmp_path):
    (tmp_path / "in.txt").write_text("0," * 51 + "0\n")
    result = medtalk(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    if expected is not None:
        assert result.stderr == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


def test_components_lists_every_built_in(capsys):
    assert run_cli(["components", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {(row["kind"], row["name"]) for row in rows}
    assert {("rig", "metahuman-174"), ("rig", "arkit-52"), ("exporter", "csv"), ("importer", "json")} <= names
    txt = next(row for row in rows if (row["kind"], row["name"]) == ("importer", "txt"))
    assert txt["plugin"] == "medtalk.plugins.formats"
    assert txt["extensions"] == [".txt"]
    assert txt["config"]["fps"] == {
        "type": "float",
        "required": False,
        "default": 60.0,
        "description": "Frames per second (the file does not say)",
    }


def test_components_of_one_kind(capsys):
    assert run_cli(["components", "--kind", "rig", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(row["name"], row["controls"]) for row in rows] == [("arkit-52", 52), ("metahuman-174", 174)]


def test_plugins_lists_the_built_ins_and_their_hooks(capsys):
    assert run_cli(["plugins", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["medtalk.plugins.formats"]["hooks"] == ["register_exporters", "register_importers"]
    assert rows["medtalk.plugins.rigs"]["package"] == "medtalk (built-in)"


def test_config_default_prints_yaml_that_builds(capsys):
    assert run_cli(["config", "default", "txt", "--kind", "importer"]) == 0
    text = capsys.readouterr().out
    assert text == (
        "type: txt\n"
        "# Rig of the columns; by default the registered rig with that many columns\n"
        "rig: null\n"
        "# Frames per second (the file does not say)\n"
        "fps: 60.0\n"
    )
    from medtalk.core.plugins import build

    assert build("importer", yaml.safe_load(text)).config.fps == 60.0


def test_config_default_asks_for_the_kind_when_a_name_is_shared(capsys):
    assert run_cli(["config", "default", "csv"]) == 2
    assert capsys.readouterr().err == (
        "error: 'csv' names a component of several kinds (exporter, importer): pass --kind KIND\n"
    )


class BuggyExporter(Exporter):
    """Has a bug."""

    name = "buggy"
    extensions = (".bug",)

    def write(self, sequence, rig, path):
        raise ZeroDivisionError("division by zero")


class BuggyPlugin:
    @staticmethod
    @hookimpl
    def register_exporters(register):
        register(BuggyExporter)


def test_an_internal_error_exits_1_with_one_line_and_no_traceback(
    real_txt, tmp_path, register_plugin, capsys
):
    register_plugin(BuggyPlugin)
    assert run_cli(["export", str(real_txt), "-o", str(tmp_path / "x.bug")]) == 1
    assert capsys.readouterr().err == (
        "internal error: ZeroDivisionError: division by zero "
        "(rerun with --debug for the traceback, and report it)\n"
    )
    assert list(tmp_path.iterdir()) == []


class InterruptedExporter(Exporter):
    """Is interrupted half way, as by Ctrl-C."""

    name = "interrupted"
    extensions = (".int",)

    def write(self, sequence, rig, path):
        path.write_text("half")
        raise KeyboardInterrupt


class InterruptedPlugin:
    @staticmethod
    @hookimpl
    def register_exporters(register):
        register(InterruptedExporter)


def test_ctrl_c_prints_aborted_exits_130_and_leaves_no_file(real_txt, tmp_path, register_plugin, capsys):
    register_plugin(InterruptedPlugin)
    assert run_cli(["export", str(real_txt), "-o", str(tmp_path / "x.int")]) == 130
    assert capsys.readouterr().err == "aborted\n"
    assert list(tmp_path.iterdir()) == []


def test_debug_shows_the_traceback(real_txt, tmp_path, register_plugin, capsys):
    register_plugin(BuggyPlugin)
    assert run_cli(["--debug", "export", str(real_txt), "-o", str(tmp_path / "x.bug")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError" in err and "in write" in err


def test_export_passes_format_options(real_txt, tmp_path):
    out = tmp_path / "take.py"
    args = ["export", str(real_txt), "--to", "maya-py", "-O", "start_frame=101", "-O", "namespace=hero:"]
    assert run_cli([*args, "-o", str(out)]) == 0
    script = out.read_text()
    assert "START_FRAME = 101" in script and "NAMESPACE = 'hero:'" in script


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("start_frame", "error: --option needs KEY=VALUE, got 'start_frame': e.g. --option start_frame=0\n"),
        (
            "strat_frame=1",
            "error: invalid config for exporter 'maya-py': unknown field 'strat_frame' (did you mean "
            "'start_frame'?); its fields are: start_frame, namespace\n",
        ),
    ],
)
def test_bad_format_options_are_refused_before_reading(option, expected, real_txt, tmp_path, capsys):
    assert (
        run_cli(["export", str(real_txt), "--to", "maya-py", "-O", option, "-o", str(tmp_path / "t.py")]) == 2
    )
    assert capsys.readouterr().err == expected
    assert list(tmp_path.iterdir()) == []
