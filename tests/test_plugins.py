"""The plugin manager: built-ins load like plugins, loading is lazy and idempotent."""

from __future__ import annotations

import subprocess
import sys

from medtalk.core.plugins import (
    DEFAULT_PLUGINS,
    create_plugin_manager,
    get_plugin_manager,
    get_registry,
    load_plugins,
)


def _names(pm) -> list[str]:
    return sorted(pm.get_name(plugin) for plugin in pm.get_plugins())


def test_built_ins_are_registered_as_plugins_under_their_module_names():
    assert set(DEFAULT_PLUGINS) <= set(_names(create_plugin_manager()))


def test_loading_again_registers_nothing_twice():
    pm = create_plugin_manager()
    before = _names(pm)
    load_plugins(pm)
    load_plugins(pm)
    assert _names(pm) == before
    assert get_registry("rig", pm).names() == ["arkit-52", "metahuman-174"]


def test_a_manager_created_without_loading_has_hooks_but_no_plugins():
    pm = create_plugin_manager(load=False)
    assert _names(pm) == []
    assert get_registry("exporter", pm).names() == []


def test_the_process_wide_manager_is_made_once():
    assert get_plugin_manager() is get_plugin_manager()


def test_importing_medtalk_loads_no_plugin():
    code = (
        "import sys, medtalk;"
        "print('medtalk.plugins.rigs' in sys.modules, 'medtalk.core.plugins' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
