"""The `medtalk preview` command: a rendered 2D face driven by the rig controls, or a curves plot.

Only the command's signature lives here; the work is in ``medtalk.render``, imported when the command
runs so that CLI start-up does not load numpy, Pillow or PyAV.

No ``from __future__ import annotations`` here: Typer reads the options from the annotations, which must be
evaluated where the command is defined, inside the hook, where ``typer`` is imported.
"""

from pathlib import Path
from typing import Annotated

from medtalk import hookimpl


@hookimpl
def register_commands(app) -> None:
    import typer

    @app.command()
    def preview(
        source: Annotated[
            Path, typer.Argument(metavar="IN", help="A rig sequence file (txt, csv, json, ...).")
        ],
        output: Annotated[
            Path,
            typer.Option(
                "--output", "-o", metavar="OUT", help="The file to write: .mp4, .gif or .png (a still)."
            ),
        ],
        audio: Annotated[
            Path | None, typer.Option(metavar="A", help="Sound to mux into the .mp4 (the take's speech).")
        ] = None,
        compare: Annotated[
            Path | None,
            typer.Option(metavar="IN2", help="A second sequence, drawn beside IN (e.g. ground truth)."),
        ] = None,
        curves: Annotated[
            str | None,
            typer.Option(
                metavar="LIST",
                help="Plot these index sets and/or control names over time (e.g. lip,upper) as a .png.",
            ),
        ] = None,
        frame: Annotated[
            int | None, typer.Option(metavar="N", help="The frame of a .png still; default the middle one.")
        ] = None,
        size: Annotated[
            int | None,
            typer.Option(metavar="PIXELS", help="Face panel side (default 512), or curves plot width (960)."),
        ] = None,
        labels: Annotated[
            str | None,
            typer.Option(metavar="A,B", help="Panel labels; default the file names when comparing."),
        ] = None,
        mapping: Annotated[
            Path | None,
            typer.Option(metavar="FILE", help="Retarget IN to metahuman-174 through this mapping file."),
        ] = None,
        smooth: Annotated[
            bool, typer.Option("--smooth", help="Smooth edges (2x supersampling; ~40% slower mp4).")
        ] = False,
        force: Annotated[bool, typer.Option("--force", "-f", help="Replace OUT if it exists.")] = False,
    ) -> None:
        """Render a rig sequence as a 2D face (.mp4 with sound, .gif, .png still), or plot its curves."""
        from medtalk.render.preview import write_preview

        result = write_preview(
            source,
            output,
            audio=audio,
            compare=compare,
            curves=curves,
            frame=frame,
            size=size,
            labels=labels,
            mapping=mapping,
            smooth=smooth,
            overwrite=force,
        )
        typer.echo(result.summary())
