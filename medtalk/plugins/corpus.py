"""`medtalk data synth`: the synthetic training corpus rendered by the procedural teacher.

The work is ``medtalk.synth.corpus`` (docs/synthetic-corpus.md); this module only turns its progress
events into a rich progress bar. Nothing heavy is imported at module load.

No ``from __future__ import annotations`` here: Typer reads the command's options from the annotations,
which must be evaluated where the command is defined, inside the hook, where ``typer`` is imported.
"""

from pathlib import Path
from typing import Annotated

from medtalk import hookimpl


@hookimpl
def register_commands(app) -> None:
    import typer

    data_app = typer.Typer(help="Training data: the synthetic corpus.", no_args_is_help=True)
    app.add_typer(data_app, name="data")

    @data_app.command()
    def synth(
        out: Annotated[
            Path, typer.Argument(metavar="OUT", help="Corpus folder (created; a rerun continues it).")
        ],
        utterances: Annotated[
            int, typer.Option("--utterances", "-n", metavar="N", help="Sentences to render (x7 emotions).")
        ],
        seed: Annotated[int, typer.Option(metavar="S", help="Seed of every random draw.")] = 0,
        engine: Annotated[
            str, typer.Option(metavar="piper|espeak|both", help="Speech engine(s) for the voices.")
        ] = "both",
        piper_share: Annotated[
            float,
            typer.Option(metavar="F", help="With --engine both: share of utterances spoken by piper (joe)."),
        ] = 0.5,
        holdout: Annotated[
            bool,
            typer.Option("--holdout", help="Held-out split: other sentences and voices, never in training."),
        ] = False,
        jobs: Annotated[
            int, typer.Option("--jobs", "-j", metavar="J", help="Processes rendering utterances at once.")
        ] = 1,
        force: Annotated[
            bool, typer.Option("--force", "-f", help="Replace a corpus in OUT made with other settings.")
        ] = False,
    ) -> None:
        """Synthesize speech and render it with the procedural teacher under all seven emotions."""
        from medtalk.cli import console
        from medtalk.synth.corpus import CorpusSettings, open_corpus

        settings = CorpusSettings(seed=seed, engine=engine, piper_share=piper_share, holdout=holdout)  # type: ignore[arg-type]
        writer = open_corpus(out, utterances, settings, force=force, jobs=jobs)
        rendered, seconds = _run_with_progress(writer)
        timing = f", {seconds / rendered:.2f} s per utterance" if rendered else ""
        console().print(f"wrote {rendered} utterance(s){timing}; manifest: {writer.manifest}")


def _run_with_progress(writer) -> tuple[int, float]:
    """Drive ``writer.run()`` under a progress bar; (utterances rendered, wall-clock seconds they took)."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from medtalk.cli import console

    progress = Progress(
        TextColumn("synth"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[last]}"),
        console=console(stderr=True),
        transient=False,
    )
    rendered, started, task = 0, 0.0, None
    try:
        for event in writer.run():
            if task is None:
                # Started on the first event, so an error before it prints its one line alone.
                progress.start()
                task = progress.add_task("synth", total=event.total, completed=event.done, last="")
                started = time.perf_counter()
                continue
            rendered += 1
            progress.update(task, completed=event.done, last=f"{event.utterance} {event.seconds:.1f} s")
    finally:
        if task is not None:
            progress.stop()
    return rendered, time.perf_counter() - started
