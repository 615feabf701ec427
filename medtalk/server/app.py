"""The ``medtalk serve`` application: HTTP endpoints and the ``/v1/stream`` WebSocket (docs/server.md).

Every refusal is a 4xx with a JSON body ``{"error": "one line"}`` (HTTP), or a JSON message
``{"type": "error", "status": 4xx, "error": "one line"}`` followed by a close with code 4000 + status
(WebSocket). Uploads are held in memory up to ``max_upload_mb``; the only files written are the
decoded-audio and export temporaries inside ``work_dir``, removed when the request ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medtalk.core.errors import MedtalkError
from medtalk.server import check_bind, is_loopback

if TYPE_CHECKING:
    from medtalk.core.pipeline import Pipeline

log = logging.getLogger("medtalk.server")

SUPPORTED_SAMPLE_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
MAX_CHUNK_BYTES = 1 << 20  # one WebSocket audio message: 1 MiB, 32 s of 16 kHz PCM16
MAX_CONTROL_MESSAGE_BYTES = 64 * 1024
# 60 frames of 174 controls: about 100 kB of JSON, well under the 1 MiB message cap of most clients.
FRAMES_PER_MESSAGE = 60
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
CLOSE_NORMAL = 1000


class ServeSettings(BaseModel):
    """What ``medtalk serve`` is started with (its options, docs/server.md)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="Address to bind; anything but loopback needs a token")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port (0: any free port)")
    token: str | None = Field(default=None, description="Bearer token every request must carry")
    model: str = Field(default="embedded", description="Model name or bundle folder")
    livelink: str | None = Field(default=None, description="HOST:PORT every stream also sends Live Link to")
    max_upload_mb: float = Field(default=50.0, gt=0, le=4096, description="Largest POST body, MiB")
    max_duration_s: float = Field(default=600.0, gt=0, le=86400, description="Longest audio, seconds")
    max_streams: int = Field(default=8, ge=1, le=1024, description="Concurrent streams and animate jobs")
    idle_timeout_s: float = Field(default=30.0, gt=0, le=3600, description="Seconds a stream may stay silent")
    lookahead_ms: float = Field(default=100.0, ge=0, le=10000, description="Streaming look-ahead, ms")
    work_dir: Path = Field(description="The only folder the server writes to (temporaries)")


class StartMessage(BaseModel):
    """The first message of a stream."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["start"] = Field(description="Always 'start'")
    guidance: str = Field(default="label:neutral", description="label:NAME or text:DESCRIPTION")
    sample_rate: int = Field(default=16000, description="Rate of the PCM16 mono audio that follows")
    fps: float | None = Field(default=None, description="Output frames per second (default: the model's)")
    format: Literal["json", "f32"] = Field(default="json", description="How frames are sent back")
    livelink: str | None = Field(
        default=None, description="HOST:PORT to also send Live Link Face packets to (loopback or the client)"
    )
    livelink_subject: str = Field(default="medtalk", max_length=200, description="Live Link subject name")


class ApiError(Exception):
    """A refusal: HTTP status and one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _one_line(text: object) -> str:
    return " ".join(str(text).split())[:500]


class _Slots:
    """Counts running streams and animate jobs against ``max_streams``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @contextlib.contextmanager
    def take(self) -> Iterator[None]:
        if self.active >= self.limit:
            raise ApiError(
                429, f"the server is running {self.limit} streams or jobs, its maximum: retry later"
            )
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


def _model_info(pipeline: Any, name: str, streaming_error: str | None) -> dict[str, Any]:
    from medtalk.core.data.samples import EMOTIONS

    card = getattr(pipeline, "card", {})
    model = getattr(pipeline, "model", None)
    # A registered animator that is not a bundle (the procedural teacher) has a rig and fps only.
    guidance = sorted(dict(model.guidance.items())) if model is not None else ["label"]
    return {
        "name": name,
        "rig": pipeline.rig.name,
        "controls": list(pipeline.rig.controls),
        "fps": pipeline.fps,
        "guidance": guidance,
        "labels": list(EMOTIONS),
        "features": card.get("pipeline", {}).get("features", {}),
        "streaming": streaming_error is None,
        "streaming_error": streaming_error,
    }


def create_app(settings: ServeSettings, pipeline: Pipeline | None = None) -> FastAPI:
    """The FastAPI application for ``settings``; loads the model unless ``pipeline`` is given."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from medtalk import __version__
    from medtalk.core.pipeline import Pipeline
    from medtalk.core.streaming import StreamingSession, check_streaming

    check_bind(settings.host, settings.token)
    if settings.livelink is not None:
        from medtalk.server.livelink import LiveLinkSender

        LiveLinkSender(settings.livelink).close()  # a bad or unresolvable address fails at start
    if pipeline is None:
        pipeline = Pipeline.from_pretrained(settings.model)
    streaming_error: str | None = None
    if not isinstance(pipeline, Pipeline):
        streaming_error = (
            f"the model '{settings.model}' is not a trained bundle (it has no featurizers): it cannot "
            "stream; POST /v1/animate animates whole files with it"
        )
    else:
        try:
            check_streaming(pipeline)
        except MedtalkError as error:
            streaming_error = str(error)
    model_info = _model_info(pipeline, settings.model, streaming_error)
    settings.work_dir.mkdir(parents=True, exist_ok=True)  # last: a refused start leaves no folder
    slots = _Slots(settings.max_streams)
    max_upload_bytes = int(settings.max_upload_mb * 1024 * 1024)

    app = FastAPI(
        title="medtalk",
        version=__version__,
        description="Speech + emotion guidance -> per-frame rig controls. See docs/server.md.",
    )
    app.state.settings = settings
    app.state.pipeline = pipeline
    app.state.slots = slots

    def error_response(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.message)

    @app.exception_handler(MedtalkError)
    async def _medtalk_error(request: Request, error: MedtalkError) -> JSONResponse:
        return error_response(400, str(error))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return error_response(422, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(error.status_code, _one_line(error.detail))

    def check_token(authorization: str | None, query_token: str | None = None) -> None:
        if not settings.token:
            return
        given = None
        if authorization and authorization.lower().startswith("bearer "):
            given = authorization[7:].strip()
        elif query_token:
            given = query_token
        if given is None:
            raise ApiError(401, "this server needs a token: send 'Authorization: Bearer TOKEN'")
        if not hmac.compare_digest(given.encode("utf-8"), settings.token.encode("utf-8")):
            raise ApiError(401, "the token is wrong: send the one the server was started with")

    @app.get("/v1/health", summary="Liveness and load")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "model": settings.model,
            "active": slots.active,
            "max_streams": settings.max_streams,
        }

    @app.get("/v1/models", summary="The loaded model: rig, controls, fps, guidance, streaming")
    async def models(request: Request) -> dict[str, Any]:
        check_token(request.headers.get("authorization"))
        return {"models": [model_info]}

    animate_body = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["audio"],
                    "properties": {
                        "audio": {
                            "type": "string",
                            "format": "binary",
                            "description": "Speech: wav, flac, ogg or mp3",
                        },
                        "guidance": {
                            "type": "string",
                            "default": "label:neutral",
                            "description": "label:NAME, text:DESCRIPTION, or image (with the image field)",
                        },
                        "image": {
                            "type": "string",
                            "format": "binary",
                            "description": "A face image or .npy/.json vector, for guidance 'image'",
                        },
                        "format": {
                            "type": "string",
                            "default": "json",
                            "description": "An export format: txt, csv, json, livelink, ...",
                        },
                    },
                }
            }
        },
    }

    @app.post(
        "/v1/animate",
        summary="Animate an uploaded audio file; the response is the file in the asked format",
        openapi_extra={"requestBody": animate_body},
        response_model=None,
        responses={200: {"content": {"application/octet-stream": {}}, "description": "The animation file"}},
    )
    async def animate(request: Request) -> Response:
        check_token(request.headers.get("authorization"))
        fields = await _read_form(request, max_upload_bytes)
        with slots.take():
            content, filename, media_type = await asyncio.to_thread(
                _animate_files, pipeline, settings, fields
            )
        return Response(
            content,
            media_type=media_type,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket) -> None:
        await _serve_stream(
            websocket, settings, pipeline, slots, check_token, StreamingSession, streaming_error
        )

    return app


# --------------------------------------------------------------------------------------------- animate


async def _read_form(request: Any, limit: int) -> dict[str, tuple[bytes, str | None]]:
    """The multipart fields of ``request`` as name -> (bytes, filename), read into memory up to ``limit``."""
    import email.parser
    import email.policy

    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(415, "send the audio as multipart/form-data with an 'audio' file field")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "the Content-Length header is not a number")
        if int(declared) > limit:
            raise ApiError(413, f"the upload is larger than {limit / 1048576:g} MiB, the server's limit")
    body = bytearray()
    async for piece in request.stream():
        body.extend(piece)
        if len(body) > limit:
            raise ApiError(413, f"the upload is larger than {limit / 1048576:g} MiB, the server's limit")
    header = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + bytes(body))
    if not message.is_multipart():
        raise ApiError(400, "the body is not valid multipart/form-data: check the boundary")
    fields: dict[str, tuple[bytes, str | None]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        fields[name] = (payload if isinstance(payload, bytes) else b"", part.get_filename())
    return fields


def _text_field(fields: dict[str, tuple[bytes, str | None]], name: str, default: str) -> str:
    if name not in fields:
        return default
    try:
        return fields[name][0].decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ApiError(400, f"the '{name}' field is not UTF-8 text") from None


def _animate_files(
    pipeline: Pipeline, settings: ServeSettings, fields: dict[str, tuple[bytes, str | None]]
) -> tuple[bytes, str, str]:
    """(file bytes, file name, media type) of the animation of the uploaded audio."""
    from medtalk.core.audio import load_audio
    from medtalk.core.errors import MedtalkWarning
    from medtalk.core.fileio import write_sequence
    from medtalk.core.pipeline import parse_guidance
    from medtalk.core.plugins import get_registry

    if "audio" not in fields or not fields["audio"][0]:
        raise ApiError(400, "the request has no 'audio' file: send the speech in a multipart field 'audio'")
    guidance = _text_field(fields, "guidance", "label:neutral")
    format_name = _text_field(fields, "format", "json")
    exporters = get_registry("exporter")
    if format_name not in exporters.names():
        raise ApiError(400, f"unknown format '{format_name}': use one of {', '.join(exporters.names())}")
    modality, value = parse_guidance(guidance if guidance != "image" else "image:upload")
    if modality == "image" and value != "upload":
        raise ApiError(
            400, "image guidance takes an uploaded file: send guidance=image and the face in an 'image' field"
        )
    audio_bytes, audio_name = fields["audio"]
    suffix = Path(audio_name or "").suffix.lower()
    token = secrets.token_hex(8)
    audio_path = settings.work_dir / f"upload-{token}{suffix if suffix in AUDIO_SUFFIXES else ''}"
    exporter = exporters.get(format_name)
    out_path = settings.work_dir / f"animation-{token}{exporter.extensions[0]}"
    image_path: Path | None = None
    try:
        if modality == "image":
            if "image" not in fields or not fields["image"][0]:
                raise ApiError(400, "guidance=image needs the face in an 'image' file field")
            image_suffix = Path(fields["image"][1] or "face.png").suffix.lower()
            if image_suffix not in (".png", ".jpg", ".jpeg", ".npy", ".json"):
                raise ApiError(400, "the 'image' file must be .png, .jpg, .npy or .json")
            _check_image(fields["image"][0], image_suffix)
            image_path = settings.work_dir / f"image-{token}{image_suffix}"
            image_path.write_bytes(fields["image"][0])
            guidance = f"image:{image_path}"
        audio_path.write_bytes(audio_bytes)
        with warnings.catch_warnings(record=True) as caught:
            # Warnings (a silent upload, a rough alignment) go to the server's log, never to the client
            # as a failure, whatever filters the embedding program set.
            warnings.simplefilter("always", MedtalkWarning)
            try:
                audio = load_audio(audio_path, max_duration_s=settings.max_duration_s)
            except MedtalkError as error:
                # The client knows its file by its own name, not by the server's temporary one.
                raise ApiError(400, str(error).replace(str(audio_path), audio_name or "audio")) from None
            sequence = pipeline(audio, guidance=guidance)
        for warning in caught:
            log.warning("animate: %s", warning.message)
        write_sequence(sequence, out_path, format_name)
        content = out_path.read_bytes()
    finally:
        for path in (audio_path, out_path, image_path):
            if path is not None:
                path.unlink(missing_ok=True)
    media_type = "application/json" if exporter.extensions[0] == ".json" else "application/octet-stream"
    return content, f"animation{exporter.extensions[0]}", media_type


def _check_image(data: bytes, suffix: str) -> None:
    """Refuse an image guidance upload that cannot be read, before the encoders see it."""
    import io

    import numpy as np

    try:
        if suffix == ".npy":
            vector = np.load(io.BytesIO(data), allow_pickle=False)
        elif suffix == ".json":
            vector = np.asarray(json.loads(data.decode("utf-8")), dtype=np.float32)
        else:
            from PIL import Image

            with Image.open(io.BytesIO(data)) as image:
                image.verify()
            return
    except Exception:  # every decoder's own failure: the upload is what is wrong
        raise ApiError(400, f"the 'image' file is not a readable {suffix} file") from None
    if vector.ndim != 1 or vector.size == 0 or not np.isfinite(vector).all():
        raise ApiError(400, f"the 'image' {suffix} file must hold one vector of finite numbers")


# ---------------------------------------------------------------------------------------------- stream


class _StreamRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _serve_stream(
    websocket: WebSocket,
    settings: ServeSettings,
    pipeline: Pipeline,
    slots: _Slots,
    check_token: Any,
    session_class: Any,
    streaming_error: str | None,
) -> None:
    from starlette.websockets import WebSocketDisconnect, WebSocketState

    await websocket.accept()
    sender = None
    try:
        try:
            check_token(websocket.headers.get("authorization"), websocket.query_params.get("token"))
            if streaming_error is not None:
                raise ApiError(400, streaming_error)
            with slots.take():
                sender = await _run_stream(websocket, settings, pipeline, session_class)
        except ApiError as error:
            raise _StreamRefused(error.status, error.message) from None
        except MedtalkError as error:
            raise _StreamRefused(400, str(error)) from None
    except _StreamRefused as refusal:
        if websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.send_json(
                    {"type": "error", "status": refusal.status, "error": refusal.message}
                )
                await websocket.close(code=4000 + refusal.status, reason=refusal.message[:120])
    except WebSocketDisconnect:
        pass
    except Exception:  # a bug: the client still gets a clean close, and the log the traceback
        log.exception("stream failed")
        if websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.send_json({"type": "error", "status": 500, "error": "internal error"})
                await websocket.close(code=1011)
    finally:
        if sender is not None:
            sender.close()


async def _receive(websocket: WebSocket, timeout: float) -> dict[str, Any]:
    from starlette.websockets import WebSocketDisconnect

    try:
        message = await asyncio.wait_for(websocket.receive(), timeout=timeout)
    except TimeoutError:
        raise _StreamRefused(
            408, f"no message for {timeout:g} s, the server's idle timeout: send audio or an end message"
        ) from None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    return message


def _parse_start(message: dict[str, Any]) -> StartMessage:
    text = message.get("text")
    if text is None:
        raise _StreamRefused(400, 'the first message must be the JSON start message: {"type": "start", ...}')
    if len(text) > MAX_CONTROL_MESSAGE_BYTES:
        raise _StreamRefused(413, "the start message is larger than 64 KiB")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise _StreamRefused(
            400, f"the start message is not JSON ({error.msg} at character {error.pos})"
        ) from None
    if not isinstance(document, dict) or document.get("type") != "start":
        raise _StreamRefused(400, 'the first message must be {"type": "start", ...}')
    try:
        start = StartMessage.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "start"
        raise _StreamRefused(400, f"start message field '{where}': {first['msg']}") from None
    if start.sample_rate not in SUPPORTED_SAMPLE_RATES:
        rates = ", ".join(str(rate) for rate in SUPPORTED_SAMPLE_RATES)
        raise _StreamRefused(400, f"sample_rate {start.sample_rate} is not supported: use one of {rates}")
    if start.guidance.startswith("image:"):
        raise _StreamRefused(
            400, "streams take label: or text: guidance; image guidance is for POST /v1/animate"
        )
    return start


def _livelink_sender(start: StartMessage, settings: ServeSettings, client_host: str | None) -> Any:
    from medtalk.server.livelink import LiveLinkSender, parse_address

    address = start.livelink or settings.livelink
    if address is None:
        return None
    if start.livelink is not None:
        host, _ = parse_address(start.livelink)
        # A stream may not turn the server into a UDP source aimed at third parties.
        if not (is_loopback(host) or host == client_host):
            raise _StreamRefused(
                403,
                f"livelink target {host} is refused: a stream may send Live Link to this machine or to "
                "its own address only (or start the server with --livelink)",
            )
    return LiveLinkSender(address, subject=start.livelink_subject, device_id="medtalk")


async def _send_frames(websocket: WebSocket, frames: Any, first: int, frame_format: str) -> None:
    """Frames as messages of at most ``FRAMES_PER_MESSAGE`` frames (clients cap their message size)."""
    import struct

    import numpy as np

    for start in range(0, frames.num_frames, FRAMES_PER_MESSAGE):
        block = frames.values[start : start + FRAMES_PER_MESSAGE]
        if frame_format == "f32":
            header = struct.pack("<II", first + start, len(block))
            await websocket.send_bytes(header + block.astype("<f4").tobytes())
        else:
            values = np.round(block.astype(np.float64), 6).tolist()
            message = {"type": "frames", "first": first + start, "count": len(block), "values": values}
            await websocket.send_text(json.dumps(message))


async def _run_stream(
    websocket: WebSocket, settings: ServeSettings, pipeline: Pipeline, session_class: Any
) -> Any:
    import numpy as np

    start = _parse_start(await _receive(websocket, settings.idle_timeout_s))
    session = await asyncio.to_thread(
        session_class, pipeline, start.guidance, settings.lookahead_ms, start.sample_rate, start.fps
    )
    client_host = websocket.client.host if websocket.client else None
    sender = _livelink_sender(start, settings, client_host)
    await websocket.send_json(
        {
            "type": "started",
            "rig": session.rig.name,
            "controls": list(session.rig.controls),
            "fps": session.fps,
            "lookahead_ms": session.lookahead_ms,
            "format": start.format,
            "livelink": sender is not None,
        }
    )
    max_samples = settings.max_duration_s * start.sample_rate
    inbox: asyncio.Queue[Any] = asyncio.Queue()

    async def read_messages() -> None:
        # Reading goes on while a chunk is computed, so chunks that arrive meanwhile are taken together
        # by the next computation: under load, frames come in bigger batches instead of falling behind.
        try:
            while True:
                message = await _receive(websocket, settings.idle_timeout_s)
                await inbox.put(message)
                if message.get("bytes") is None:
                    return
        except BaseException as error:  # handed to the stream loop, which owns the answer
            await inbox.put(error)

    reader = asyncio.create_task(read_messages())
    received = 0
    try:
        ended = False
        while not ended:
            messages = [await inbox.get()]
            while not inbox.empty():
                messages.append(inbox.get_nowait())
            audio = []
            for message in messages:
                if isinstance(message, BaseException):
                    raise message  # a timeout or a disconnect: the stream ends here
                data = message.get("bytes")
                if data is None:
                    _check_end(message)
                    ended = True
                    break
                _check_chunk(data)
                received += len(data) // 2
                if received > max_samples:
                    raise _StreamRefused(
                        413, f"the stream is longer than {settings.max_duration_s:g} s, the server's limit"
                    )
                audio.append(data)
            samples = np.frombuffer(b"".join(audio), dtype="<i2")
            for offset in range(0, len(samples), MAX_CHUNK_BYTES // 2):
                first = session.emitted
                frames = await asyncio.to_thread(
                    session.push, samples[offset : offset + MAX_CHUNK_BYTES // 2]
                )
                await _send_frames(websocket, frames, first, start.format)
                if sender is not None:
                    sender.send(frames, first)
        first = session.emitted
        frames, summary = await asyncio.to_thread(session.finish)
        await _send_frames(websocket, frames, first, start.format)
        if sender is not None:
            sender.send(frames, first)
        result = {"type": "summary", **summary.as_dict()}
        if sender is not None:
            result["livelink_packets"] = sender.sent
        await websocket.send_json(result)
        await websocket.close(code=CLOSE_NORMAL)
    except BaseException:
        if sender is not None:
            sender.close()
        raise
    finally:
        reader.cancel()
    return sender


def _check_end(message: dict[str, Any]) -> None:
    """A text message during a stream: it must be the end message."""
    text = message.get("text") or ""
    try:
        document = json.loads(text) if len(text) <= MAX_CONTROL_MESSAGE_BYTES else None
    except json.JSONDecodeError:
        raise _StreamRefused(400, "a text message is not JSON: send audio as binary messages") from None
    if not (isinstance(document, dict) and document.get("type") == "end"):
        raise _StreamRefused(400, 'after the start message send binary PCM16 audio, then {"type": "end"}')


def _check_chunk(data: bytes) -> None:
    if len(data) > MAX_CHUNK_BYTES:
        raise _StreamRefused(
            413, f"an audio message holds {len(data)} bytes, more than 1 MiB: send smaller chunks"
        )
    if len(data) % 2:
        raise _StreamRefused(
            400, f"an audio message holds {len(data)} bytes, an odd count: send whole 16-bit samples"
        )
