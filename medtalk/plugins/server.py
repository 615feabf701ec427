"""The `medtalk serve` command: the HTTP and WebSocket API of ``medtalk.server`` (docs/server.md).

FastAPI, uvicorn and torch load only when the command runs (the ``serve`` extra). No ``from __future__
import annotations`` here: Typer reads the options from the annotations, evaluated inside the hook.
"""

from pathlib import Path
from typing import Annotated

from medtalk import hookimpl


@hookimpl
def register_commands(app) -> None:
    import typer

    @app.command()
    def serve(
        host: Annotated[
            str, typer.Option(help="Address to bind. Anything but loopback needs --token.")
        ] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
        token: Annotated[
            str | None,
            typer.Option(
                metavar="TOKEN",
                envvar="MEDTALK_SERVE_TOKEN",
                help="Bearer token clients must send (Authorization: Bearer TOKEN); env MEDTALK_SERVE_TOKEN.",
            ),
        ] = None,
        model: Annotated[
            str, typer.Option("--model", "-m", metavar="NAME|PATH", help="A model name or bundle folder.")
        ] = "embedded",
        livelink: Annotated[
            str | None,
            typer.Option(metavar="HOST:PORT", help="Also send every stream's frames as Live Link Face UDP."),
        ] = None,
        max_upload_mb: Annotated[float, typer.Option(help="Largest POST /v1/animate body, MiB.")] = 50.0,
        max_duration_s: Annotated[
            float, typer.Option(help="Longest audio of a request or stream, s.")
        ] = 600.0,
        max_streams: Annotated[int, typer.Option(help="Concurrent streams and animate jobs.")] = 8,
        idle_timeout_s: Annotated[
            float, typer.Option(help="Seconds a stream may go without a message before it is closed.")
        ] = 30.0,
        lookahead_ms: Annotated[
            float, typer.Option(help="Audio heard past a frame before it is sent (streaming).")
        ] = 100.0,
        work_dir: Annotated[
            Path | None,
            typer.Option(
                metavar="DIR", help="The only folder the server writes to (default: a new temp folder)."
            ),
        ] = None,
    ) -> None:
        """Serve the model over HTTP and WebSocket: /v1/animate, /v1/stream (live), Live Link output."""
        import contextlib
        import os
        import signal
        import tempfile

        from medtalk.cli import console
        from medtalk.core.config import format_validation_error
        from medtalk.core.errors import ConfigError
        from medtalk.server import check_bind

        # The cheap checks first: a refused bind costs no model loading.
        check_bind(host, token)
        try:
            import fastapi  # noqa: F401
            import uvicorn
        except ModuleNotFoundError as error:
            raise ConfigError(f"medtalk serve needs {error.name}: pip install 'medtalk[serve]'") from None
        from pydantic import ValidationError

        from medtalk.server.app import MAX_CHUNK_BYTES, ServeSettings, create_app

        default_folder = Path(tempfile.gettempdir()) / f"medtalk-serve-{os.getpid()}"
        folder = work_dir if work_dir is not None else default_folder
        try:
            settings = ServeSettings(
                host=host,
                port=port,
                token=token,
                model=model,
                livelink=livelink,
                max_upload_mb=max_upload_mb,
                max_duration_s=max_duration_s,
                max_streams=max_streams,
                idle_timeout_s=idle_timeout_s,
                lookahead_ms=lookahead_ms,
                work_dir=folder,
            )
        except ValidationError as error:
            raise ConfigError(format_validation_error("medtalk serve", ServeSettings, error)) from None
        import torch

        # Streams run side by side on threads; per-operation threads only fight over the same cores.
        torch.set_num_threads(1)
        application = create_app(settings)
        console().print(
            f"medtalk serve: model {model} on http://{host}:{port} (API docs /docs, schema /openapi.json); "
            f"work folder {folder}",
            markup=False,
        )

        def stop(signum: int, frame: object) -> None:
            raise SystemExit(0)

        # uvicorn shuts down on SIGTERM, then raises it again: exit through Python so the cleanup runs.
        signal.signal(signal.SIGTERM, stop)
        try:
            uvicorn.run(
                application,
                host=host,
                port=port,
                log_level="warning",
                ws_max_size=MAX_CHUNK_BYTES + 1024,
                timeout_graceful_shutdown=5,
            )
        finally:
            if work_dir is None:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when empty: every request removes its own temporaries
