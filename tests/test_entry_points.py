"""MEDTALK_LOAD_PLUGINS end to end, through throwaway plugin packages installed with pip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from medtalk.core.plugins import DEFAULT_PLUGINS

GOOD_PLUGIN = '''
import typer
from medtalk import Exporter, hookimpl


class ShoutExporter(Exporter):
    """Upper-case CSV, to prove a third-party exporter loads."""

    name = "shout"
    extensions = (".shout",)

    def write(self, sequence, rig, path):
        path.write_text(",".join(rig.controls).upper() + "\\n")


@hookimpl
def register_exporters(register):
    register(ShoutExporter)


@hookimpl
def register_commands(app):
    @app.command()
    def shout():
        """Say it loud."""
        typer.echo("LOUD")
'''

BROKEN_PLUGIN = "raise ImportError('needs libfoo 2')\n"


def _package(root: Path, dist: str, module: str, entry_point: str, source: str) -> Path:
    package = root / dist
    package.mkdir()
    (package / f"{module}.py").write_text(source)
    (package / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=64"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist}"
            version = "1.2.3"

            [tool.setuptools]
            py-modules = ["{module}"]

            [project.entry-points.medtalk]
            {entry_point} = "{module}"
            """
        )
    )
    return package


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder holding two installed plugin packages: one good, one that fails to import."""
    root = tmp_path_factory.mktemp("plugins")
    target = root / "site"
    packages = [
        _package(root, "medtalk-shout", "medtalk_shout", "shout", GOOD_PLUGIN),
        _package(root, "medtalk-broken", "medtalk_broken", "broken", BROKEN_PLUGIN),
    ]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            *map(str, packages),
        ],
        check=True,
        capture_output=True,
    )
    return target


def medtalk(site: Path, load: str | None, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MEDTALK_LOAD_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    if load is not None:
        env["MEDTALK_LOAD_PLUGINS"] = load
    return subprocess.run([sys.executable, "-m", "medtalk", *args], capture_output=True, text=True, env=env)


def plugin_names(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 0, result.stderr
    return sorted(row["name"] for row in json.loads(result.stdout))


BUILT_INS = sorted(DEFAULT_PLUGINS)


def test_unset_loads_every_plugin_so_a_broken_one_is_reported(site):
    result = medtalk(site, None, "plugins")
    assert result.returncode == 2
    assert result.stderr == (
        "error: plugin 'broken' failed to load (ImportError: needs libfoo 2): upgrade or uninstall it, "
        "or leave it out with MEDTALK_LOAD_PLUGINS\n"
    )


@pytest.mark.parametrize("load", ["shout", "medtalk-shout", "medtalk_shout", " shout , "])
def test_a_list_loads_only_the_named_plugins(site, load):
    assert plugin_names(medtalk(site, load, "plugins", "--json")) == sorted(["shout", *BUILT_INS])


def test_an_empty_value_loads_no_third_party_plugin(site):
    assert plugin_names(medtalk(site, "", "plugins", "--json")) == BUILT_INS


def test_a_loaded_plugin_reports_its_package_and_hooks(site):
    rows = json.loads(medtalk(site, "shout", "plugins", "--json").stdout)
    shout = next(row for row in rows if row["name"] == "shout")
    assert (shout["package"], shout["version"]) == ("medtalk-shout", "1.2.3")
    assert shout["hooks"] == ["register_commands", "register_exporters"]


def test_a_loaded_plugin_adds_its_exporter_and_command(site, real_txt, tmp_path):
    components = json.loads(medtalk(site, "shout", "components", "--kind", "exporter", "--json").stdout)
    assert {"name": "shout", "plugin": "shout"}.items() <= next(
        c for c in components if c["name"] == "shout"
    ).items()
    out = tmp_path / "clip.shout"
    assert medtalk(site, "shout", "export", str(real_txt), "-o", str(out)).returncode == 0
    assert out.read_text().startswith("CTRL_C_EYE-TRANSLATEX,")
    assert medtalk(site, "shout", "shout").stdout == "LOUD\n"


def test_a_plugin_left_out_adds_nothing(site):
    result = medtalk(site, "", "components", "--kind", "exporter", "--json")
    assert [c["name"] for c in json.loads(result.stdout)] == [
        "blender-py",
        "csv",
        "json",
        "livelink",
        "maya-anim",
        "maya-py",
        "txt",
        "unreal-curves",
    ]
    assert medtalk(site, "", "shout").returncode == 2


def test_a_name_that_matches_nothing_warns_in_one_line(site):
    result = medtalk(site, "shout,shuot", "plugins", "--json")
    assert plugin_names(result) == sorted(["shout", *BUILT_INS])
    assert result.stderr == (
        "warning: MEDTALK_LOAD_PLUGINS names 'shuot', but no installed plugin has that name: "
        "see 'medtalk plugins' for what is installed\n"
    )
