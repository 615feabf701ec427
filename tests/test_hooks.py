"""Every hook: a fake plugin registers through it, and its signature is documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import typer

from medtalk import hookimpl
from medtalk.cli import run_cli
from medtalk.core import hookspecs
from medtalk.core.components import Component
from medtalk.core.plugins import get_registry
from medtalk.core.registry import KINDS
from medtalk.core.rig import RigSpec

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugin-hooks.md"
HOOK_NAMES = sorted(
    name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")
)


def fake_component(kind_name: str) -> type | RigSpec:
    """A minimal concrete entry for one kind, with every abstract member implemented."""
    kind = KINDS[kind_name]
    if kind_name == "rig":
        return RigSpec(name="fake-rig", controls=("a", "b"), ranges=((0, 1), (-1, 1)), sets={"lip": (0,)})
    members = {"name": f"fake-{kind_name}", "__doc__": f"A fake {kind_name}."}
    for attr in getattr(kind.base, "__abstractmethods__", ()):
        is_property = isinstance(inspect.getattr_static(kind.base, attr), property)
        members[attr] = property(lambda self: 1) if is_property else (lambda self, *a, **k: None)
    for attr, value in (("extensions", (".fake",)), ("role", "content"), ("modality", "label")):
        if hasattr(kind.base, "__annotations__") and attr in kind.base.__annotations__:
            members[attr] = value
    return type(f"Fake{kind.base.__name__}", (kind.base,), members)


def test_every_kind_has_a_hook_and_every_hook_a_kind():
    assert sorted([*(kind.hook for kind in KINDS.values()), "register_commands"]) == HOOK_NAMES


@pytest.mark.parametrize("kind_name", sorted(KINDS))
def test_register_hook_adds_the_component_under_the_plugin_name(kind_name, register_plugin):
    entry = fake_component(kind_name)
    plugin_name = register_plugin(_plugin_with(KINDS[kind_name].hook, entry))
    registry = get_registry(kind_name)
    registration = registry.registration(entry.name)
    assert registration.entry is entry
    assert registration.plugin == plugin_name
    if kind_name != "rig":
        built = registry.build({"type": entry.name})
        assert isinstance(built, entry)
        assert isinstance(built, Component)


def _plugin_with(hook_name: str, entry):
    """A plugin class implementing ``hook_name`` (pluggy finds hooks by function name)."""
    namespace: dict = {}
    exec(f"def {hook_name}(register):\n    register(entry)\n", {"entry": entry}, namespace)
    return type("FakePlugin", (), {hook_name: staticmethod(hookimpl(namespace[hook_name]))})


def test_register_commands_adds_a_working_sub_command(register_plugin, capsys):
    class CommandPlugin:
        @staticmethod
        @hookimpl
        def register_commands(app: typer.Typer):
            @app.command()
            def hello_fake(name: str = "world"):
                """Say hello."""
                typer.echo(f"hello {name}")

    register_plugin(CommandPlugin, name="fake-commands")
    assert run_cli(["hello-fake", "--name", "rig"]) == 0
    assert capsys.readouterr().out == "hello rig\n"


def test_a_plugin_command_may_not_shadow_a_built_in(register_plugin, capsys):
    class Shadowing:
        @staticmethod
        @hookimpl
        def register_commands(app):
            @app.command("export")
            def other_export():
                """Not the real one."""

    register_plugin(Shadowing, name="shadowing-plugin")
    assert run_cli(["--help"]) == 2
    assert capsys.readouterr().err == (
        "error: duplicate command 'export': registered by both 'medtalk' and 'shadowing-plugin'; "
        "uninstall one, or leave one out with MEDTALK_LOAD_PLUGINS\n"
    )


def test_check_pending_passes_with_every_built_in_loaded(pm):
    pm.check_pending()


@pytest.mark.parametrize("hook_name", HOOK_NAMES)
def test_every_hook_signature_is_documented(hook_name):
    signature = f"{hook_name}({', '.join(inspect.signature(getattr(hookspecs, hook_name)).parameters)})"
    headings = re.findall(r"^## `(.+)`$", DOCS.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert signature in headings, f"docs/plugin-hooks.md needs a heading: ## `{signature}`"


def test_docs_document_no_hook_that_does_not_exist():
    headings = re.findall(r"^## `(\w+)\(", DOCS.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert sorted(headings) == HOOK_NAMES


def test_hookimpl_is_re_exported_from_medtalk():
    import medtalk

    assert medtalk.hookimpl is hookspecs.hookimpl


def test_the_complete_plugin_example_in_the_docs_works(register_plugin, real_txt, tmp_path):
    import types

    from medtalk.core.fileio import read_sequence, write_sequence

    text = DOCS.read_text(encoding="utf-8")
    source = re.search(r"A complete plugin, registering an exporter:\n\n```python\n(.*?)```", text, re.DOTALL)
    module = types.ModuleType("medtalk_semicolon")
    exec(compile(source.group(1), "docs/plugin-hooks.md", "exec"), module.__dict__)
    register_plugin(module, name="medtalk_semicolon")
    out = write_sequence(read_sequence(real_txt), tmp_path / "take.ssv")
    lines = out.read_text().splitlines()
    assert lines[0].startswith("CTRL_C_eye-translateX;CTRL_C_eye-translateY;")
    assert lines[1].split(";")[:2] == ["0,0271", "0,0270"]
    assert len(lines) == 203


def test_a_plugin_command_goes_away_with_its_plugin(register_plugin, pm, capsys):
    class Passing:
        @staticmethod
        @hookimpl
        def register_commands(app):
            @app.command()
            def passing():
                """Here for a moment."""
                typer.echo("here")

    register_plugin(Passing, name="passing-plugin")
    assert run_cli(["passing"]) == 0
    assert run_cli(["passing"]) == 0  # built again for the second run, without a clash
    pm.unregister(name="passing-plugin")
    pm.register(type("Empty", (), {}), name="passing-plugin")  # the fixture unregisters this one
    assert run_cli(["passing"]) == 2
    assert capsys.readouterr().err.startswith("error: No such command 'passing'.")
