"""The ``medtalk`` command line. The only module that prints.

Exit codes: 0 ok, 2 bad input or usage (one line on stderr naming the problem and the fix), 1 internal
error (a traceback only with ``--debug``).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from medtalk.core.plugins import MedtalkPluginManager

DEBUG_FLAG = "--debug"

_APP_SETTINGS: dict[str, Any] = {
    "name": "medtalk",
    "help": "Speech to emotional 3D facial animation for MetaHuman rigs. Offline, pluggable.",
    "no_args_is_help": True,
    "add_completion": False,
    "context_settings": {"help_option_names": ["-h", "--help"]},
}
# The built-in commands. Each run adds the plugins' commands to a fresh copy (build_app), so plugins
# that come and go within one process (tests, notebooks) never leave commands behind.
app = typer.Typer(**_APP_SETTINGS)
config_app = typer.Typer(help="Component configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")

_consoles: dict[bool, Console] = {}


def console(stderr: bool = False) -> Console:
    if stderr not in _consoles:
        from rich.console import Console

        _consoles[stderr] = Console(stderr=stderr, highlight=False, soft_wrap=True)
    return _consoles[stderr]


def _version(value: bool) -> None:
    if value:
        from medtalk import __version__

        console().print(f"medtalk {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show a traceback when something fails.")] = False,
) -> None:
    """Speech to emotional 3D facial animation for MetaHuman rigs. Offline, pluggable."""


@app.command()
def plugins(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the loaded plugins and the hooks each implements."""
    from medtalk.core.plugins import get_plugin_manager

    pm = get_plugin_manager()
    distributions = {pm.get_name(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    rows = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin)
        dist = distributions.get(name)
        rows.append(
            {
                "name": name,
                "package": dist.metadata["Name"] if dist is not None else "medtalk (built-in)",
                "version": dist.version if dist is not None else _own_version(),
                "hooks": sorted(caller.name for caller in pm.get_hookcallers(plugin) or []),
            }
        )
    rows.sort(key=lambda row: (row["package"] == "medtalk (built-in)", row["name"]))
    if as_json:
        _print_json(rows)
        return
    from rich.table import Table

    table = Table("plugin", "package", "version", "hooks")
    for row in rows:
        table.add_row(row["name"], row["package"], row["version"], ", ".join(row["hooks"]))
    console().print(table)


def _own_version() -> str:
    from medtalk import __version__

    return __version__


@app.command()
def components(
    kind: Annotated[
        str | None, typer.Option("--kind", "-k", help="Only this kind (exporter, rig, ...).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON, with each component's config fields.")
    ] = False,
) -> None:
    """List the registered components of every kind (or one kind)."""
    from medtalk.core.plugins import get_registry
    from medtalk.core.registry import KINDS, kind_named

    kinds = [kind_named(kind).name] if kind else list(KINDS)
    rows = [_component_row(k, reg) for k in kinds for reg in get_registry(k)]
    if as_json:
        _print_json(rows)
        return
    from rich.table import Table

    table = Table("kind", "name", "plugin", "description")
    for row in rows:
        table.add_row(row["kind"], row["name"], row["plugin"], row["description"])
    console().print(table)


def _component_row(kind: str, registration: Any) -> dict[str, Any]:
    entry = registration.entry
    row: dict[str, Any] = {"kind": kind, "name": registration.name, "plugin": registration.plugin}
    if kind == "rig":
        row["description"] = entry.description
        row["controls"] = entry.num_controls
        row["sets"] = {name: len(indices) for name, indices in entry.sets.items()}
        return row
    row["description"] = entry.describe()
    if hasattr(entry, "extensions"):
        row["extensions"] = list(entry.extensions)
    row["config"] = {
        name: {
            "type": _type_name(field.annotation),
            "required": field.is_required(),
            "default": None if field.is_required() else _plain(field.get_default(call_default_factory=True)),
            "description": field.description,
        }
        for name, field in entry.Config.model_fields.items()
    }
    return row


def _type_name(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


@config_app.command("default")
def config_default(
    type_name: Annotated[str, typer.Argument(metavar="TYPE", help="Component name, e.g. csv.")],
    kind: Annotated[
        str | None, typer.Option("--kind", "-k", help="Its kind, where several kinds use the name.")
    ] = None,
) -> None:
    """Print a component's default config as YAML, each field with its description."""
    from medtalk.core.config import default_config_yaml
    from medtalk.core.errors import ConfigError
    from medtalk.core.plugins import get_registry
    from medtalk.core.registry import KINDS, kind_named, unknown_name_message

    kinds = [kind_named(kind).name] if kind else [k for k in KINDS if type_name in get_registry(k)]
    if kind is None and len(kinds) > 1:
        raise ConfigError(
            f"'{type_name}' names a component of several kinds ({', '.join(kinds)}): pass --kind KIND"
        )
    if not kinds:
        every = sorted({name for k in KINDS for name in get_registry(k).names()})
        raise ConfigError(unknown_name_message("component", type_name, every))
    entry = get_registry(kinds[0]).get(type_name)
    if kinds[0] == "rig":
        typer.echo(f"type: {type_name}\n", nl=False)
        return
    typer.echo(default_config_yaml(type_name, entry.Config), nl=False)


@app.command()
def export(
    source: Annotated[Path, typer.Argument(metavar="IN", help="A rig sequence file (txt, csv, json, ...).")],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="OUT", help="The file to write.")],
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="FORMAT", help="Output format; by default from OUT's extension."),
    ] = None,
    from_format: Annotated[
        str | None,
        typer.Option("--from", metavar="FORMAT", help="Input format; by default from IN's extension."),
    ] = None,
    rig: Annotated[
        str | None, typer.Option(help="Rig of IN's columns, for formats that do not name it.")
    ] = None,
    fps: Annotated[
        float | None, typer.Option(help="Frame rate of IN, for formats that do not store it.")
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Retarget through this mapping file first (docs/retargeting.md)."),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-O",
            metavar="KEY=VALUE",
            help="An option of the output format, repeatable (see 'medtalk config default FORMAT').",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace OUT if it exists.")] = False,
) -> None:
    """Convert a rig sequence from one format (and rig) to another."""
    from medtalk.core.errors import ConfigError
    from medtalk.core.fileio import check_readable, format_for, output_rig, read_sequence, write_sequence
    from medtalk.core.plugins import get_registry
    from medtalk.core.retarget import load_mapping

    check_readable(source)
    options = {key: value for key, value in (("rig", rig), ("fps", fps)) if value is not None}
    importer_name = format_for("importer", source, from_format)
    accepted = get_registry("importer").get(importer_name).Config.model_fields
    unsupported = [key for key in options if key not in accepted]
    if unsupported:
        raise ConfigError(
            f"--{unsupported[0]} does not apply to the {importer_name} format: "
            "the file states it; drop the option"
        )
    rig_mapping = load_mapping(mapping) if mapping is not None else None
    exporter_name = format_for("exporter", output, to)
    exporter_options = parse_options(option or [])
    get_registry("exporter").build({"type": exporter_name, **exporter_options})  # refuse bad options early
    sequence = read_sequence(source, importer_name, options)
    written = write_sequence(
        sequence, output, exporter_name, exporter_options, overwrite=force, mapping=rig_mapping
    )
    mapped_rig = rig_mapping.target if rig_mapping is not None else sequence.rig
    written_rig = output_rig(get_registry("exporter").get(exporter_name), mapped_rig)
    rigs = sequence.rig if written_rig == sequence.rig else f"{sequence.rig} retargeted to {written_rig}"
    console().print(
        f"wrote {written} ({sequence.num_frames} frames, {sequence.duration:.2f} s at {sequence.fps:g} fps, "
        f"rig {rigs})"
    )


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> a dict, values read as YAML scalars (``3`` a number, ``true`` a bool)."""
    import yaml

    from medtalk.core.errors import ConfigError

    options: dict[str, Any] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"--option needs KEY=VALUE, got '{pair}': e.g. --option start_frame=0")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        # Only scalars are read as YAML: "hero:" is a namespace, not a mapping.
        options[key.strip()] = parsed if isinstance(parsed, (bool, int, float)) else value
    return options


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def build_app(pm: MedtalkPluginManager) -> typer.Typer:
    """The built-in commands plus those of every plugin, each plugin given a Typer of its own.

    A command name taken twice (by medtalk or another plugin) is refused, naming both.
    """
    from typer.main import get_command_name

    from medtalk.core.errors import DuplicateComponentError
    from medtalk.core.plugins import call_each_plugin

    full = typer.Typer(**_APP_SETTINGS)
    full.registered_callback = app.registered_callback
    full.registered_commands = list(app.registered_commands)
    full.registered_groups = list(app.registered_groups)
    owners = {_command_name(info, get_command_name): "medtalk" for info in full.registered_commands}
    owners.update({info.name: "medtalk" for info in full.registered_groups})
    staged: list[tuple[str, typer.Typer]] = []
    call_each_plugin(pm, "register_commands", lambda plugin: {"app": _stage(staged, plugin)})
    for plugin, sub_app in staged:
        for group in sub_app.registered_groups:
            group_name = group.name or group.typer_instance.info.name
            _claim(owners, group_name, plugin, DuplicateComponentError)
            full.registered_groups.append(group)
        for info in sub_app.registered_commands:
            _claim(owners, _command_name(info, get_command_name), plugin, DuplicateComponentError)
            full.registered_commands.append(info)
    return full


def _stage(staged: list[tuple[str, typer.Typer]], plugin: str) -> typer.Typer:
    sub_app = typer.Typer()
    staged.append((plugin, sub_app))
    return sub_app


def _command_name(info: Any, get_command_name: Any) -> str:
    return info.name or get_command_name(info.callback.__name__)


def _claim(owners: dict[str, str], name: str, plugin: str, error: type[Exception]) -> None:
    if name in owners:
        raise error(
            f"duplicate command '{name}': registered by both '{owners[name]}' and '{plugin}'; "
            "uninstall one, or leave one out with MEDTALK_LOAD_PLUGINS"
        )
    owners[name] = plugin


def _print_warning(message: Any, category: type[Warning], filename: str, lineno: int, *args: Any) -> None:
    from medtalk.core.errors import MedtalkWarning

    if issubclass(category, MedtalkWarning):
        console(stderr=True).print(f"warning: {message}", markup=False)
    else:
        _default_showwarning(message, category, filename, lineno, *args)


_default_showwarning = warnings.showwarning


INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C (128 + SIGINT)


def run_cli(argv: list[str]) -> int:
    """Run the CLI on ``argv`` (without the program name) and return the exit code."""
    from medtalk.core.errors import MedtalkError

    debug = DEBUG_FLAG in argv
    errors = console(stderr=True)
    warnings.showwarning = _print_warning
    try:
        from medtalk.core.plugins import get_plugin_manager

        command = typer.main.get_command(build_app(get_plugin_manager()))
        result = command.main(args=argv, prog_name="medtalk", standalone_mode=False)
        if result == INTERRUPTED:
            # Typer turns Ctrl-C into a silent exit code; the user should see why the command stopped.
            errors.print("aborted", markup=False)
        return result if isinstance(result, int) else 0
    except MedtalkError as error:
        if debug:
            errors.print_exception()
        errors.print(f"error: {error}", markup=False)
        return error.exit_code
    except typer.Abort:
        errors.print("aborted", markup=False)
        return INTERRUPTED
    except Exception as error:
        if _is_usage_error(error):
            hint = f" (see '{error.ctx.command_path} --help')" if getattr(error, "ctx", None) else ""
            errors.print(f"error: {error.format_message()}{hint}", markup=False)
            return 2
        if debug:
            errors.print_exception()
        else:
            errors.print(
                f"internal error: {type(error).__name__}: {error} (rerun with --debug for the traceback, "
                "and report it)",
                markup=False,
            )
        return 1
    finally:
        warnings.showwarning = _default_showwarning


def _is_usage_error(error: Exception) -> bool:
    """Typer's bundled click raises these for bad usage; they carry a message and an exit code."""
    return callable(getattr(error, "format_message", None)) and getattr(error, "exit_code", None) == 2


def main() -> None:
    sys.exit(run_cli(sys.argv[1:]))
