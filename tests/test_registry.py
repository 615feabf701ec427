"""Registry messages, asserted exactly, and the contract checks made at registration."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from medtalk import hookimpl
from medtalk.core.components import ComponentConfig, Exporter, Metric
from medtalk.core.errors import ConfigError, DuplicateComponentError, PluginError, UnknownComponentError
from medtalk.core.plugins import build, get_registry

EXPORTERS = "blender-py, csv, json, livelink, maya-anim, maya-py, txt, unreal-curves"


class WavyConfig(ComponentConfig):
    decimals: int = Field(default=6, ge=0, description="Decimals per value")
    delimiter: str = Field(default=",", description="Column separator")


class WavyExporter(Exporter):
    """A fake exporter with options."""

    name = "wavy"
    extensions = (".wavy",)
    Config = WavyConfig

    def write(self, sequence, rig, path):
        path.write_text("wavy")


def exporter_plugin(*classes):
    class Plugin:
        @staticmethod
        @hookimpl
        def register_exporters(register):
            for cls in classes:
                register(cls)

    return Plugin


def test_unknown_name_lists_valid_names_and_the_closest_match():
    with pytest.raises(UnknownComponentError) as error:
        build("exporter", {"type": "jsn"})
    assert str(error.value) == f"unknown exporter 'jsn': valid names are {EXPORTERS}; did you mean 'json'?"


def test_unknown_name_without_a_close_match_lists_valid_names():
    with pytest.raises(UnknownComponentError) as error:
        build("exporter", {"type": "fbx"})
    assert str(error.value) == f"unknown exporter 'fbx': valid names are {EXPORTERS}"


def test_unknown_kind_is_named_like_an_unknown_component():
    with pytest.raises(UnknownComponentError) as error:
        get_registry("exporters")
    assert str(error.value).startswith("unknown kind 'exporters': valid names are content_mapper, dataset,")
    assert str(error.value).endswith("; did you mean 'exporter'?")


def test_a_kind_with_nothing_registered_says_so():
    from medtalk.core.plugins import create_plugin_manager

    empty = create_plugin_manager(load=False)  # the hook specs, no plugin at all
    with pytest.raises(UnknownComponentError) as error:
        build("transcriber", {"type": "whisper"}, pm=empty)
    assert str(error.value) == (
        "unknown transcriber 'whisper': none is registered (is a plugin missing? see 'medtalk plugins')"
    )


def test_duplicate_name_names_both_plugins(register_plugin):
    class CsvAgain(WavyExporter):
        """Another csv."""

        name = "csv"

    register_plugin(exporter_plugin(CsvAgain), name="medtalk-other-csv")
    with pytest.raises(DuplicateComponentError) as error:
        get_registry("exporter")
    assert str(error.value) == (
        "duplicate exporter 'csv': registered by both 'medtalk-other-csv' and 'medtalk.plugins.formats'; "
        "uninstall one, or leave one out with MEDTALK_LOAD_PLUGINS"
    )


def test_config_with_an_unknown_field_is_refused_before_construction(register_plugin):
    register_plugin(exporter_plugin(WavyExporter))
    with pytest.raises(ConfigError) as error:
        build("exporter", {"type": "wavy", "delimeter": ";"})
    assert str(error.value) == (
        "invalid config for exporter 'wavy': unknown field 'delimeter' (did you mean 'delimiter'?); "
        "its fields are: decimals, delimiter"
    )


def test_config_with_a_bad_value_names_the_field(register_plugin):
    register_plugin(exporter_plugin(WavyExporter))
    with pytest.raises(ConfigError) as error:
        build("exporter", {"type": "wavy", "decimals": -1})
    assert str(error.value) == (
        "invalid config for exporter 'wavy': field 'decimals': input should be greater than or equal to 0; "
        "its fields are: decimals, delimiter"
    )


def test_valid_config_reaches_the_component(register_plugin):
    register_plugin(exporter_plugin(WavyExporter))
    exporter = build("exporter", {"type": "wavy", "decimals": 3})
    assert isinstance(exporter, WavyExporter)
    assert exporter.config == WavyConfig(decimals=3, delimiter=",")


def test_config_without_type_is_refused():
    with pytest.raises(ConfigError) as error:
        build("exporter", {"decimals": 3})
    assert str(error.value) == f"the exporter config has no 'type': add type: NAME (one of {EXPORTERS})"


def test_a_rig_takes_no_options():
    with pytest.raises(ConfigError) as error:
        build("rig", {"type": "arkit-52", "fps": 30})
    assert str(error.value) == "rig 'arkit-52' takes no options, got fps"
    assert build("rig", "arkit-52").num_controls == 52


class LooseConfig(BaseModel):
    decimals: int = Field(default=6, description="Decimals")


class UndescribedConfig(ComponentConfig):
    decimals: int = 6


@pytest.mark.parametrize(
    ("members", "expected_tail"),
    [
        ({"Config": LooseConfig}, "but its Config accepts unknown fields: subclass medtalk.ComponentConfig"),
        (
            {"Config": UndescribedConfig},
            "but Config field 'decimals' has no description: use Field(description=...)",
        ),
        ({"name": ""}, "but it has no 'name': set name = \"...\" on the class"),
    ],
)
def test_registration_enforces_the_component_contract(members, expected_tail, register_plugin):
    broken = type("Broken", (WavyExporter,), members)
    register_plugin(exporter_plugin(broken), name="broken-plugin")
    with pytest.raises(PluginError) as error:
        get_registry("exporter")
    assert str(error.value) == f"plugin 'broken-plugin' registered {broken!r} as a exporter, {expected_tail}"


def test_registration_refuses_a_class_of_another_kind(register_plugin):
    class NotAnExporter(Metric):
        """A metric."""

        name = "nope"

        def __call__(self, pred, gt, rig):
            return 0.0

    register_plugin(exporter_plugin(NotAnExporter), name="confused-plugin")
    with pytest.raises(PluginError) as error:
        get_registry("exporter")
    assert str(error.value) == (
        f"plugin 'confused-plugin' registered {NotAnExporter!r} as a exporter, "
        "but it is not a subclass of medtalk.Exporter"
    )


def test_registration_refuses_an_abstract_class(register_plugin):
    class Unfinished(Exporter):
        """No write."""

        name = "unfinished"
        extensions = (".u",)

    register_plugin(exporter_plugin(Unfinished), name="lazy-plugin")
    with pytest.raises(PluginError) as error:
        get_registry("exporter")
    assert str(error.value) == (
        f"plugin 'lazy-plugin' registered {Unfinished!r} as a exporter, but it does not implement write"
    )


def test_registries_follow_plugins_coming_and_going(register_plugin, pm):
    assert "wavy" not in get_registry("exporter")
    name = register_plugin(exporter_plugin(WavyExporter))
    assert "wavy" in get_registry("exporter")
    pm.unregister(name=name)
    assert "wavy" not in get_registry("exporter")
    pm.register(exporter_plugin(WavyExporter), name=name)  # the fixture unregisters it again
