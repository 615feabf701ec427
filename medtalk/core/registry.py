"""One registry per component kind, filled from the plugins' ``register_<kind>s`` hooks.

A registry is rebuilt whenever a plugin is registered or unregistered, so fixtures that add a fake
plugin see it at once. Entries are component classes, except for rigs, whose entries are ``RigSpec``s.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from pydantic import BaseModel, ValidationError

from medtalk.core import components as c
from medtalk.core.config import format_validation_error
from medtalk.core.errors import ConfigError, DuplicateComponentError, PluginError, UnknownComponentError
from medtalk.core.rig import RigSpec


@dataclass(frozen=True)
class Kind:
    """A component kind: its hook and what an entry must be."""

    name: str
    plural: str
    base: type

    @property
    def hook(self) -> str:
        return f"register_{self.plural}"


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("rig", "rigs", RigSpec),
        Kind("featurizer", "featurizers", c.Featurizer),
        Kind("transcriber", "transcribers", c.Transcriber),
        Kind("text_encoder", "text_encoders", c.TextEncoder),
        Kind("content_mapper", "content_mappers", c.ContentMapper),
        Kind("intensity_predictor", "intensity_predictors", c.IntensityPredictor),
        Kind("guidance_encoder", "guidance_encoders", c.GuidanceEncoder),
        Kind("motion_model", "motion_models", c.MotionModel),
        Kind("metric", "metrics", c.Metric),
        Kind("exporter", "exporters", c.Exporter),
        Kind("importer", "importers", c.Importer),
        Kind("postprocessor", "postprocessors", c.Postprocessor),
        Kind("dataset", "datasets", c.Dataset),
        Kind("trainer", "trainers", c.Trainer),
        Kind("model", "models", c.Model),
    )
}


def kind_named(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownComponentError(unknown_name_message("kind", name, sorted(KINDS))) from None


def unknown_name_message(what: str, name: str, valid: list[str]) -> str:
    if not valid:
        return f"unknown {what} '{name}': none is registered (is a plugin missing? see 'medtalk plugins')"
    message = f"unknown {what} '{name}': valid names are {', '.join(valid)}"
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    return message + (f"; did you mean '{close[0]}'?" if close else "")


@dataclass(frozen=True)
class Registration:
    name: str
    entry: Any
    plugin: str


class Registry:
    """The components of one kind, by name."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self._entries: dict[str, Registration] = {}

    def add(self, entry: Any, plugin: str) -> None:
        _check_entry(self.kind, entry, plugin)
        name = entry.name
        if name in self._entries:
            first = self._entries[name].plugin
            raise DuplicateComponentError(
                f"duplicate {self.kind.name} '{name}': registered by both '{first}' and '{plugin}'; "
                "uninstall one, or leave one out with MEDTALK_LOAD_PLUGINS"
            )
        self._entries[name] = Registration(name, entry, plugin)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Registration]:
        return iter(sorted(self._entries.values(), key=lambda r: r.name))

    def registration(self, name: str) -> Registration:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownComponentError(unknown_name_message(self.kind.name, name, self.names())) from None

    def get(self, name: str) -> Any:
        """The registered entry: a component class, or a ``RigSpec`` for rigs."""
        return self.registration(name).entry

    def build(self, spec: str | Mapping[str, Any]) -> Any:
        """Validate ``{"type": name, **params}`` against the component's Config, then construct it."""
        if isinstance(spec, str):
            spec = {"type": spec}
        if not isinstance(spec, Mapping):
            raise ConfigError(
                f"a {self.kind.name} config must be a mapping with a 'type' key, got {type(spec).__name__}"
            )
        params = dict(spec)
        name = params.pop("type", None)
        if not isinstance(name, str) or not name:
            raise ConfigError(
                f"the {self.kind.name} config has no 'type': add type: NAME "
                f"(one of {', '.join(self.names()) or 'none registered'})"
            )
        entry = self.get(name)
        if self.kind.name == "rig":
            if params:
                raise ConfigError(f"rig '{name}' takes no options, got {', '.join(sorted(params))}")
            return entry
        try:
            config = entry.Config.model_validate(params)
        except ValidationError as error:
            raise ConfigError(
                format_validation_error(f"{self.kind.name} '{name}'", entry.Config, error)
            ) from None
        return entry(config)


def _check_entry(kind: Kind, entry: Any, plugin: str) -> None:
    """Refuse what breaks the contract, at registration, naming the plugin."""
    where = f"plugin '{plugin}' registered {entry!r} as a {kind.name}"
    if kind.name == "rig":
        if not isinstance(entry, RigSpec):
            raise PluginError(f"{where}, but rigs are registered as RigSpec instances")
        return
    if not (inspect.isclass(entry) and issubclass(entry, kind.base)):
        raise PluginError(f"{where}, but it is not a subclass of medtalk.{kind.base.__name__}")
    if inspect.isabstract(entry):
        missing = ", ".join(sorted(entry.__abstractmethods__))
        raise PluginError(f"{where}, but it does not implement {missing}")
    name = getattr(entry, "name", None)
    if not isinstance(name, str) or not name:
        raise PluginError(f"{where}, but it has no 'name': set name = \"...\" on the class")
    config = entry.Config
    if not (inspect.isclass(config) and issubclass(config, BaseModel)):
        raise PluginError(
            f"{where}, but its Config is not a pydantic model: subclass medtalk.ComponentConfig"
        )
    if config.model_config.get("extra") != "forbid":
        raise PluginError(f"{where}, but its Config accepts unknown fields: subclass medtalk.ComponentConfig")
    undescribed = [n for n, f in config.model_fields.items() if not f.description]
    if undescribed:
        raise PluginError(
            f"{where}, but Config field '{undescribed[0]}' has no description: use Field(description=...)"
        )


def collect(kind: Kind, pm: Any) -> Registry:
    """Fill a registry by calling every implementation of the kind's hook with its own ``register``."""
    from medtalk.core.plugins import call_each_plugin

    registry = Registry(kind)
    call_each_plugin(pm, kind.hook, lambda plugin: {"register": partial(registry.add, plugin=plugin)})
    return registry
