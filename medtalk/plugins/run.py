"""The `embedded` model, `medtalk run` (speech in, rig curves out) and `medtalk models`.

The embedded model is a bundle that ships inside the package (``medtalk/data/models/embedded``),
trained by medtalk on its procedural teacher's synthetic corpus (docs/model-card.md).

The command's work is ``medtalk.core.pipeline``; torch and the backends load only when it runs, so CLI
start-up stays fast. No ``from __future__ import annotations`` here: Typer reads the options from the
annotations, which must be evaluated where the command is defined, inside the hook.
"""

from pathlib import Path
from typing import Annotated, Any

from medtalk import hookimpl
from medtalk.core.components import Model
from medtalk.core.errors import InputError
from medtalk.core.pipeline import BundleModel

EMBEDDED_BUNDLE = Path(__file__).resolve().parent.parent / "data" / "models" / "embedded"
DEFAULT_MODEL = "embedded"
DEFAULT_FORMAT = "txt"


class EmbeddedModel(BundleModel, Model):
    """The default model: trained by medtalk on its procedural teacher's corpus; ships inside medtalk."""

    name = "embedded"
    bundle_path = EMBEDDED_BUNDLE

    def check_installed(self) -> None:
        if not self.installed():
            raise InputError(
                f"the embedded model is missing from this installation ({self.bundle_path} has no "
                "model.json): reinstall medtalk, or rebuild the model as docs/model-card.md describes"
            )


@hookimpl
def register_models(register) -> None:
    register(EmbeddedModel)


@hookimpl
def register_commands(app) -> None:
    import typer

    @app.command()
    def run(
        audio: Annotated[
            Path, typer.Argument(metavar="AUDIO", help="Speech to animate: wav, flac, ogg or mp3.")
        ],
        guidance: Annotated[
            str | None,
            typer.Option(
                "--guidance",
                "-g",
                metavar="GUIDANCE",
                help='label:NAME, text:"a description" or image:FACE.jpg (default: label:neutral).',
            ),
        ] = None,
        emotion_track: Annotated[
            str | None,
            typer.Option(
                metavar="TRACK",
                help="Emotion keyframes instead of --guidance, e.g. 0:neutral,1.5:angry@0.8,3:happy.",
            ),
        ] = None,
        transcript: Annotated[
            str | None,
            typer.Option(metavar="TEXT", help="What is said; skips speech recognition."),
        ] = None,
        model: Annotated[
            str, typer.Option("--model", "-m", metavar="NAME|PATH", help="A model name or bundle folder.")
        ] = DEFAULT_MODEL,
        fps: Annotated[
            float | None,
            typer.Option(metavar="F", help="Frames per second of the output (default: the model's, 60)."),
        ] = None,
        output: Annotated[
            Path | None,
            typer.Option(
                "--output", "-o", metavar="OUT", help="The file to write (default: AUDIO's name, here)."
            ),
        ] = None,
        output_format: Annotated[
            str | None,
            typer.Option(
                "--format",
                metavar="FORMAT",
                help="Output format (txt, csv, json, ...); default from OUT's extension, else txt.",
            ),
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
        """Animate speech: per-frame rig controls (the authors' txt by default) from AUDIO and an emotion."""
        import time

        started = time.perf_counter()
        from medtalk.cli import console, parse_options
        from medtalk.core.audio import load_audio
        from medtalk.core.fileio import check_output, write_sequence
        from medtalk.core.pipeline import Pipeline, check_fps, parse_guidance, parse_track
        from medtalk.core.plugins import get_registry

        # What the user typed is checked before the model loads, so a typo costs no waiting.
        if fps is not None:
            check_fps(fps)
        if guidance is not None:
            parse_guidance(guidance)
        if emotion_track is not None:
            parse_track(emotion_track)
        exporter_name, target = output_target(audio, output, output_format)
        exporter_options = parse_options(option or [])
        get_registry("exporter").build({"type": exporter_name, **exporter_options})
        check_output(target, overwrite=force)
        speech = load_audio(audio)
        # A bundle's Pipeline, or another animator with its animate() contract (the procedural teacher).
        animator = Pipeline.from_pretrained(model)
        result = animator.animate(speech, guidance, transcript, emotion_track=emotion_track, fps=fps)
        sequence, heard = result.sequence, result.transcript if result.transcribed else None
        written = write_sequence(sequence, target, exporter_name, exporter_options, overwrite=force)
        if heard is not None:
            console().print(f"heard: {heard!r}", markup=False)
        console().print(
            f"wrote {written} ({sequence.num_frames} frames, {speech.duration:.2f} s of audio at "
            f"{sequence.fps:g} fps) in {time.perf_counter() - started:.1f} s",
            markup=False,
        )

    @app.command()
    def models(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
        """List the registered models (the names --model and Pipeline.from_pretrained take)."""
        from medtalk.cli import _print_json, console
        from medtalk.core.plugins import get_registry

        rows = [model_row(registration) for registration in get_registry("model")]
        if as_json:
            _print_json(rows)
            return
        from rich.table import Table

        table = Table("name", "plugin", "installed", "description")
        for row in rows:
            installed = {True: "yes", False: "no", None: "-"}[row["installed"]]
            table.add_row(row["name"], row["plugin"], installed, row["description"])
        console().print(table)


def output_target(audio: Path, output: Path | None, output_format: str | None) -> tuple[str, Path]:
    """The exporter and the file to write: OUT as given, or AUDIO's stem with the format's extension."""
    from medtalk.core.fileio import format_for
    from medtalk.core.plugins import get_registry

    if output is not None:
        return format_for("exporter", output, output_format), output
    name = output_format or DEFAULT_FORMAT
    exporter = get_registry("exporter").get(name)
    return name, Path(audio.stem + exporter.extensions[0])


def model_row(registration: Any) -> dict[str, Any]:
    entry = registration.entry
    bundle = getattr(entry, "bundle_path", None)
    return {
        "name": registration.name,
        "plugin": registration.plugin,
        "description": entry.describe(),
        "bundle": str(bundle) if bundle is not None else None,
        "installed": entry.installed() if issubclass(entry, BundleModel) else None,
    }
