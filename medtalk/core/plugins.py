"""The one plugin manager: third-party plugins from entry points, then the built-ins.

``MEDTALK_LOAD_PLUGINS`` limits the third-party plugins: unset loads all of them, a comma list loads only
those named (entry-point or distribution names), an empty value loads none. Built-ins always load.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import threading
import warnings
from collections.abc import Callable
from typing import Any

import pluggy

from medtalk.core import hookspecs
from medtalk.core.errors import MedtalkWarning, PluginError

ENTRY_POINT_GROUP = "medtalk"
LOAD_PLUGINS_ENV = "MEDTALK_LOAD_PLUGINS"

DEFAULT_PLUGINS: tuple[str, ...] = (
    "medtalk.plugins.rigs",
    "medtalk.plugins.formats",
    "medtalk.plugins.dcc",
    "medtalk.plugins.preview",
    "medtalk.plugins.featurizers",
    "medtalk.plugins.whisper",
    "medtalk.plugins.emotion_features",
    "medtalk.plugins.alignment",
    "medtalk.plugins.hf",
    "medtalk.plugins.face",
    "medtalk.plugins.model_parts",
    "medtalk.plugins.datasets",
    "medtalk.plugins.metrics",
    "medtalk.plugins.training",
    "medtalk.plugins.postprocessors",
    "medtalk.plugins.teacher",
    "medtalk.plugins.corpus",
    "medtalk.plugins.run",
    "medtalk.plugins.server",
)


class MedtalkPluginManager(pluggy.PluginManager):
    """A pluggy manager whose registries are rebuilt after any plugin comes or goes."""

    def __init__(self) -> None:
        super().__init__(ENTRY_POINT_GROUP)
        self.add_hookspecs(hookspecs)
        self.registries: dict[str, Any] = {}

    def register(self, plugin: object, name: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        self.registries.clear()
        return registered

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        removed = super().unregister(plugin, name)
        self.registries.clear()
        return removed


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _selected_entry_point_names() -> list[str] | None:
    """Entry-point names to load, or None for all of them."""
    requested = os.environ.get(LOAD_PLUGINS_ENV)
    if requested is None:
        return None
    wanted = {_normalize(n) for n in requested.split(",") if n.strip()}
    found: list[str] = []
    matched: set[str] = set()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = _normalize(ep.dist.name) if ep.dist is not None else ""
        for key in (_normalize(ep.name), dist):
            if key in wanted:
                found.append(ep.name)
                matched.add(key)
    for name in sorted(wanted - matched):
        warnings.warn(
            f"{LOAD_PLUGINS_ENV} names '{name}', but no installed plugin has that name: "
            "see 'medtalk plugins' for what is installed",
            MedtalkWarning,
            stacklevel=3,
        )
    return found


def load_plugins(pm: MedtalkPluginManager) -> MedtalkPluginManager:
    """Register entry-point plugins, then the built-ins. Calling it again registers nothing twice."""
    selected = _selected_entry_point_names()
    names = (
        [ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
        if selected is None
        else selected
    )
    for name in names:
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
        except Exception as error:
            raise PluginError(
                f"plugin '{name}' failed to load ({type(error).__name__}: {error}): upgrade or uninstall it, "
                f"or leave it out with {LOAD_PLUGINS_ENV}"
            ) from error
    for module_name in DEFAULT_PLUGINS:
        if pm.get_plugin(module_name) is None:
            pm.register(importlib.import_module(module_name), name=module_name)
    return pm


def create_plugin_manager(load: bool = True) -> MedtalkPluginManager:
    """A new manager with medtalk's hook specs, and its plugins loaded unless ``load`` is False."""
    pm = MedtalkPluginManager()
    return load_plugins(pm) if load else pm


_pm: MedtalkPluginManager | None = None
_pm_lock = threading.Lock()


def get_plugin_manager() -> MedtalkPluginManager:
    """The process-wide manager, created and loaded on first use."""
    global _pm
    with _pm_lock:
        if _pm is None:
            _pm = create_plugin_manager()
        return _pm


def call_each_plugin(
    pm: pluggy.PluginManager, hook_name: str, kwargs_for: Callable[[str], dict[str, Any]]
) -> None:
    """Call every implementation of a hook in pluggy's order, each with arguments made for its plugin.

    This lets a registration know which plugin made it, so a duplicate can name both plugins.
    """
    for impl in reversed(getattr(pm.hook, hook_name).get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            raise PluginError(
                f"plugin '{impl.plugin_name}' implements {hook_name} as a wrapper: registration hooks "
                "take plain implementations"
            )
        kwargs = kwargs_for(impl.plugin_name)
        impl.function(**{arg: kwargs[arg] for arg in impl.argnames})


def get_registry(kind: str, pm: MedtalkPluginManager | None = None) -> Any:
    """The registry of one kind (``"exporter"``, ``"rig"`` ...), built from the hooks on first use."""
    from medtalk.core.registry import collect, kind_named

    pm = pm if pm is not None else get_plugin_manager()
    if kind not in pm.registries:
        pm.registries[kind] = collect(kind_named(kind), pm)
    return pm.registries[kind]


def build(kind: str, spec: Any, pm: MedtalkPluginManager | None = None) -> Any:
    """Build a component from ``{"type": name, **params}`` (or just its name)."""
    return get_registry(kind, pm).build(spec)
