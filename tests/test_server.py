"""`medtalk serve`: the HTTP API, the /v1/stream WebSocket and Live Link output, on a real loopback server."""

from __future__ import annotations

import io
import json
import socket
import struct
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_streaming import EXACT_EMOTION, make_bundle, speech_like
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from medtalk.cli import run_cli
from medtalk.core.audio import Audio
from medtalk.core.errors import ConfigError
from medtalk.core.pipeline import Pipeline
from medtalk.core.streaming import StreamingSession
from medtalk.server.app import ServeSettings, check_bind, create_app

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Pipeline:
    return Pipeline.from_pretrained(make_bundle(tmp_path_factory.mktemp("serve") / "b", *EXACT_EMOTION))


@contextmanager
def running(app):
    """A real uvicorn server on a free loopback port, in a thread; yields (http base, ws base)."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", ws_max_size=(1 << 20) + 1024)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def make_settings(tmp_path: Path, **overrides) -> ServeSettings:
    options = {"model": "test-bundle", "work_dir": tmp_path / "work", **overrides}
    return ServeSettings(**options)


@pytest.fixture(scope="module")
def exact_lookahead(pipeline) -> float:
    return StreamingSession(pipeline).exact_lookahead_ms


@pytest.fixture(scope="module")
def server(pipeline, tmp_path_factory, exact_lookahead):
    """A token-protected server whose look-ahead makes streams equal offline."""
    work = tmp_path_factory.mktemp("served")
    app = create_app(
        make_settings(work, token=TOKEN, max_upload_mb=1.0, max_duration_s=40, lookahead_ms=exact_lookahead),
        pipeline,
    )
    with running(app) as urls:
        yield urls, work / "work"


def wav_bytes(samples: np.ndarray, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def pcm16(samples: np.ndarray) -> bytes:
    return np.round(np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def run_stream(ws_url: str, start: dict, audio: bytes, chunk_bytes: int = 16000, headers=AUTH):
    """Send a whole stream; return (started message, frames by index, summary)."""
    frames: dict[int, np.ndarray] = {}
    with connect(f"{ws_url}/v1/stream", additional_headers=headers, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "start", **start}))
        started = json.loads(ws.recv(timeout=10))
        assert started["type"] == "started", started
        width = len(started["controls"])
        for offset in range(0, len(audio), chunk_bytes):
            ws.send(audio[offset : offset + chunk_bytes])
        ws.send(json.dumps({"type": "end"}))
        while True:
            message = ws.recv(timeout=30)
            if isinstance(message, bytes):
                first, count = struct.unpack("<II", message[:8])
                block = np.frombuffer(message[8:], dtype="<f4").reshape(count, width)
                frames.update({first + i: row for i, row in enumerate(block)})
                continue
            document = json.loads(message)
            if document["type"] == "frames":
                for i, row in enumerate(document["values"]):
                    frames[document["first"] + i] = np.asarray(row, dtype=np.float32)
            else:
                assert document["type"] == "summary", document
                summary = document
                break
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd.code == 1000
    return started, frames, summary


def refused_stream(ws_url: str, messages: list, headers=AUTH) -> tuple[dict, int]:
    """Send ``messages``; return the error message the server answers with and its close code."""
    with connect(f"{ws_url}/v1/stream", additional_headers=headers, open_timeout=10) as ws:
        for message in messages:
            try:
                ws.send(message)
            except ConnectionClosed:
                break  # refused early: what the server said is still waiting to be read
        answer = None
        for _ in range(100):
            try:
                document = json.loads(ws.recv(timeout=15))
            except ConnectionClosed as closed:
                assert closed.rcvd is not None, "the server dropped the connection without a close frame"
                return answer, closed.rcvd.code
            if document["type"] == "error":
                answer = document
    raise AssertionError("the connection was not closed")


# ---------------------------------------------------------------------------------------------- HTTP


def test_health_models_and_schema(server):
    (http, _), _ = server
    health = httpx.get(f"{http}/v1/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    models = httpx.get(f"{http}/v1/models", headers=AUTH).json()["models"]
    assert models[0]["rig"] == "metahuman-174" and len(models[0]["controls"]) == 174
    assert models[0]["streaming"] is True and models[0]["guidance"] == ["label"]
    schema = httpx.get(f"{http}/openapi.json").json()
    assert {"/v1/health", "/v1/models", "/v1/animate"} <= set(schema["paths"])
    body = schema["paths"]["/v1/animate"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"]["required"] == ["audio"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "this server needs a token: send 'Authorization: Bearer TOKEN'"),
        ({"Authorization": "Bearer nope"}, "the token is wrong: send the one the server was started with"),
    ],
)
def test_the_token_is_enforced_over_http(server, headers, expected):
    (http, _), _ = server
    response = httpx.get(f"{http}/v1/models", headers=headers)
    assert (response.status_code, response.json()) == (401, {"error": expected})


def test_animate_returns_the_file_and_leaves_nothing_behind(server, pipeline, tmp_path):
    (http, _), work = server
    samples = speech_like(1.5, seed=7)
    response = httpx.post(
        f"{http}/v1/animate",
        headers=AUTH,
        files={"audio": ("take.wav", wav_bytes(samples), "audio/wav")},
        data={"guidance": "label:angry", "format": "json"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == 'attachment; filename="animation.json"'
    path = tmp_path / "animation.json"
    path.write_bytes(response.content)
    from medtalk.core.fileio import read_sequence

    sequence = read_sequence(path)
    offline = pipeline(Audio(np.round(samples * 32767) / 32767), guidance="label:angry")
    assert sequence.values.shape == (90, 174)
    np.testing.assert_allclose(sequence.values, offline.values, atol=2e-3)
    assert list(work.iterdir()) == []


@pytest.mark.parametrize(
    ("files", "data", "status", "expected"),
    [
        (
            None,
            {"guidance": "label:happy"},
            415,
            "send the audio as multipart/form-data with an 'audio' file field",
        ),
        (
            {"other": ("x.txt", b"hello", "text/plain")},
            {},
            400,
            "the request has no 'audio' file: send the speech in a multipart field 'audio'",
        ),
        (
            "wav",
            {"format": "mp4"},
            400,
            "unknown format 'mp4': use one of {exporters}",
        ),
        (
            "wav",
            {"guidance": "label:joyful"},
            400,
            "unknown emotion label 'joyful': use one of angry, disgust, fear, happy, neutral, sad, surprise",
        ),
        (
            "wav",
            {"guidance": "image:/etc/passwd"},
            400,
            "image guidance takes an uploaded file: send guidance=image and the face in an 'image' field",
        ),
        (
            {"audio": ("take.wav", b"not audio at all", "audio/wav")},
            {},
            400,
            "take.wav: not a readable audio file: convert it to wav, flac, ogg or mp3",
        ),
        (
            {"audio": ("big.wav", b"\0" * (1024 * 1024 + 1), "audio/wav")},
            {},
            413,
            "the upload is larger than 1 MiB, the server's limit",
        ),
    ],
)
def test_bad_animate_requests_are_4xx_with_one_line(server, files, data, status, expected):
    (http, _), work = server
    if files == "wav":
        files = {"audio": ("take.wav", wav_bytes(speech_like(0.5)), "audio/wav")}
    if files is None:
        response = httpx.post(f"{http}/v1/animate", headers=AUTH, data=data)
    else:
        response = httpx.post(f"{http}/v1/animate", headers=AUTH, files=files, data=data, timeout=30)
    assert response.status_code == status
    body = response.json()
    assert list(body) == ["error"]
    from medtalk.core.plugins import get_registry

    assert body["error"] == expected.format(exporters=", ".join(get_registry("exporter").names()))
    assert list(work.iterdir()) == []


def test_an_upload_is_never_spooled_outside_the_work_folder(pipeline, tmp_path, monkeypatch):
    """Form parsers commonly spool uploads over 1 MB to the system's temp folder: this server does not."""
    import tempfile

    spool = tmp_path / "system-temp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    settings_ = make_settings(tmp_path, max_upload_mb=4)
    body = wav_bytes(speech_like(70.0, seed=8))
    assert len(body) > 2 * 1024 * 1024
    with running(create_app(settings_, pipeline)) as (http, _):
        response = httpx.post(
            f"{http}/v1/animate",
            files={"audio": ("t.wav", body, "audio/wav")},
            data={"format": "txt"},
            timeout=120,
        )
    assert response.status_code == 200, response.text
    assert len(response.content.decode().splitlines()) == 4200
    assert list(spool.iterdir()) == [] and list(settings_.work_dir.iterdir()) == []


# ------------------------------------------------------------------------------------------ streaming


def test_a_stream_gives_every_frame_equal_to_offline(server, pipeline):
    (_, ws), _ = server
    samples = speech_like(3.3, seed=9)
    audio = pcm16(samples)
    started, frames, summary = run_stream(ws, {"guidance": "label:sad", "format": "json"}, audio, 3200)
    assert started["fps"] == 60.0 and started["controls"][0] == pipeline.rig.controls[0]
    assert sorted(frames) == list(range(198)) and summary["frames"] == 198
    streamed = np.stack([frames[i] for i in range(198)])
    offline = pipeline(Audio(np.frombuffer(audio, "<i2") / np.float32(32768)), guidance="label:sad").values
    np.testing.assert_allclose(streamed, offline, atol=2e-5)


def test_f32_frames_and_a_48_khz_stream(server):
    (_, ws), _ = server
    import soxr

    samples = soxr.resample(speech_like(2.0, seed=10), 16000, 48000)
    _, frames, summary = run_stream(ws, {"format": "f32", "sample_rate": 48000}, pcm16(samples), 9600)
    assert sorted(frames) == list(range(120)) and summary["frames"] == 120


def test_eight_concurrent_streams_of_30_s_all_complete(pipeline, tmp_path, exact_lookahead):
    """Every stream gets every frame, equal to offline (at the exact look-ahead, however the server
    batches the chunks that arrive while it computes)."""
    settings_ = make_settings(tmp_path, max_streams=8, max_duration_s=60, lookahead_ms=exact_lookahead)
    app = create_app(settings_, pipeline)
    audio = pcm16(speech_like(30.0, seed=11))
    offline = pipeline(
        Audio(np.frombuffer(audio, "<i2") / np.float32(32768)), guidance="label:neutral"
    ).values
    results: dict[int, tuple] = {}
    failures: list[BaseException] = []

    def client(index: int) -> None:
        try:
            results[index] = run_stream(ws_url, {"format": "f32" if index % 2 else "json"}, audio, 32000, {})
        except BaseException as error:  # reported below, with the others
            failures.append(error)

    with running(app) as (_, ws_url):
        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=240)
    assert not failures, failures
    assert len(results) == 8
    for _, frames, summary in results.values():
        assert sorted(frames) == list(range(1800)) and summary["frames"] == 1800
        np.testing.assert_allclose(np.stack([frames[i] for i in range(1800)]), offline, atol=2e-5)


def start(**fields) -> str:
    return json.dumps({"type": "start", **fields})


@pytest.mark.parametrize(
    ("messages", "status", "expected"),
    [
        (
            ["{not json"],
            400,
            "the start message is not JSON (Expecting property name enclosed in double quotes "
            "at character 1)",
        ),
        ([b"\x00\x01"], 400, 'the first message must be the JSON start message: {"type": "start", ...}'),
        (
            [start(sample_rate=12345)],
            400,
            "sample_rate 12345 is not supported: use one of 8000, 16000, 22050, 24000, 32000, 44100, 48000",
        ),
        (
            [start(guidance="label:joyful")],
            400,
            "unknown emotion label 'joyful': use one of angry, disgust, fear, happy, neutral, sad, surprise",
        ),
        ([start(format="mp3")], 400, "start message field 'format': Input should be 'json' or 'f32'"),
        ([start(colour="red")], 400, "start message field 'colour': Extra inputs are not permitted"),
        (
            [start(), b"\x00\x01\x02"],
            400,
            "an audio message holds 3 bytes, an odd count: send whole 16-bit samples",
        ),
        ([start(), "hello"], 400, "a text message is not JSON: send audio as binary messages"),
        (
            [start(), json.dumps({"type": "pause"})],
            400,
            'after the start message send binary PCM16 audio, then {"type": "end"}',
        ),
        (
            [start(), b"\x00" * ((1 << 20) + 2)],
            413,
            "an audio message holds 1048578 bytes, more than 1 MiB: send smaller chunks",
        ),
        (
            [start(), json.dumps({"type": "end"})],
            400,
            "the audio is too short for one frame at 60 fps: send at least 16.7 ms of audio",
        ),
        (
            [start(livelink="192.0.2.7:11111")],
            403,
            "livelink target 192.0.2.7 is refused: a stream may send Live "
            "Link to this machine or to its own address only (or start the server with --livelink)",
        ),
        (
            [start(livelink="nowhere")],
            400,
            "livelink address 'nowhere' is not HOST:PORT: e.g. 127.0.0.1:11111",
        ),
    ],
)
def test_each_bad_stream_input_is_a_4xx_error_and_a_clean_close(server, messages, status, expected):
    (_, ws), _ = server
    answer, code = refused_stream(ws, messages)
    assert answer == {"type": "error", "status": status, "error": expected}
    assert code == 4000 + status


def test_the_duration_limit_holds_across_chunks(server):
    (_, ws), _ = server
    chunks = [start()] + [b"\x00\x00" * 16000 * 10] * 5
    answer, code = refused_stream(ws, chunks)
    assert answer["error"] == "the stream is longer than 40 s, the server's limit" and code == 4413


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "this server needs a token: send 'Authorization: Bearer TOKEN'"),
        ({"Authorization": "Bearer wrong"}, "the token is wrong: send the one the server was started with"),
    ],
)
def test_the_token_is_enforced_on_streams(server, headers, expected):
    (_, ws), _ = server
    answer, code = refused_stream(ws, [start()], headers=headers)
    assert answer == {"type": "error", "status": 401, "error": expected} and code == 4401


def test_an_idle_stream_is_closed(pipeline, tmp_path):
    app = create_app(make_settings(tmp_path, idle_timeout_s=0.3), pipeline)
    with running(app) as (_, ws), connect(f"{ws}/v1/stream") as client:
        client.send(start())
        assert json.loads(client.recv(timeout=10))["type"] == "started"
        assert json.loads(client.recv(timeout=10)) == {
            "type": "error",
            "status": 408,
            "error": "no message for 0.3 s, the server's idle timeout: send audio or an end message",
        }
        with pytest.raises(ConnectionClosed) as closed:
            client.recv(timeout=10)
        assert closed.value.rcvd.code == 4408


def test_streams_beyond_the_maximum_are_refused(pipeline, tmp_path):
    app = create_app(make_settings(tmp_path, max_streams=1), pipeline)
    with running(app) as (_, ws), connect(f"{ws}/v1/stream") as first:
        first.send(start())
        assert json.loads(first.recv(timeout=10))["type"] == "started"
        answer, code = refused_stream(ws, [start()], headers={})
        assert answer == {
            "type": "error",
            "status": 429,
            "error": "the server is running 1 streams or jobs, its maximum: retry later",
        }
        assert code == 4429


# ---------------------------------------------------------------------------------------------- binding


def test_binding_beyond_loopback_needs_a_token(capsys):
    with pytest.raises(ConfigError) as error:
        check_bind("0.0.0.0", None)
    message = (
        "binding to 0.0.0.0 exposes the API beyond this machine: pass --token TOKEN "
        "(clients send 'Authorization: Bearer TOKEN'), or bind to 127.0.0.1"
    )
    assert str(error.value) == message
    check_bind("0.0.0.0", "t")
    check_bind("::1", None)
    check_bind("localhost", None)
    assert run_cli(["serve", "--host", "0.0.0.0", "--model", "/nonexistent"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"


# ---------------------------------------------------------------------------------------------- Live Link


def read_live_link_packet(packet: bytes) -> dict:
    """An independent reader of one Live Link Face packet (network byte order throughout)."""
    position = 0

    def take(size: int) -> bytes:
        nonlocal position
        piece = packet[position : position + size]
        assert len(piece) == size, "truncated packet"
        position += size
        return piece

    version = take(1)[0]
    device = take(int.from_bytes(take(4), "big")).decode()
    subject = take(int.from_bytes(take(4), "big")).decode()
    frame = int.from_bytes(take(4), "big", signed=True)
    (sub_frame,) = struct.unpack(">f", take(4))
    numerator = int.from_bytes(take(4), "big", signed=True)
    denominator = int.from_bytes(take(4), "big", signed=True)
    count = take(1)[0]
    values = np.array(struct.unpack(f">{count}f", take(4 * count)))
    assert position == len(packet), "bytes after the values"
    return {
        "version": version,
        "device": device,
        "subject": subject,
        "frame": frame,
        "sub_frame": sub_frame,
        "rate": (numerator, denominator),
        "values": values,
    }


def test_live_link_packets_carry_every_frame_as_arkit(server):
    from medtalk.core.retarget import retarget
    from medtalk.core.sequence import RigSequence

    (_, ws), _ = server
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    port = receiver.getsockname()[1]
    try:
        audio = pcm16(speech_like(1.0, seed=12))
        _, frames, summary = run_stream(
            ws, {"livelink": f"127.0.0.1:{port}", "livelink_subject": "Ada"}, audio, 3200
        )
        assert summary["livelink_packets"] == 60
        packets = [read_live_link_packet(receiver.recv(2048)) for _ in range(60)]
    finally:
        receiver.close()
    assert [p["frame"] for p in packets] == list(range(60))
    assert {(p["version"], p["subject"], p["device"], p["rate"], p["sub_frame"]) for p in packets} == {
        (6, "Ada", "medtalk", (60, 1), 0.0)
    }
    streamed = RigSequence(np.stack([frames[i] for i in range(60)]), fps=60, rig="metahuman-174")
    arkit = retarget(streamed, "arkit-52").values
    received = np.stack([p["values"] for p in packets])
    assert received.shape == (60, 61)
    np.testing.assert_allclose(received[:, :52], arkit, atol=1e-5)
    np.testing.assert_array_equal(received[:, 52:55], 0.0)  # the head stays still


# --------------------------------------------------------------------------------- schema property run


def schema_operations(http: str) -> list[tuple[str, str, dict]]:
    schema = httpx.get(f"{http}/openapi.json").json()
    return [
        (path, method, operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    ]


field_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["label:happy", "label:", "text:a smile", "image:x.png", "json", "txt", "livelink", "x" * 300]
    ),
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
)


def test_no_request_built_from_the_openapi_schema_gets_a_5xx(server):
    """A property-based run over every operation in the schema: random fields, files, headers and
    content types, with and without the token; the answer is never a 5xx, and a 4xx has a JSON error."""
    (http, _), work = server
    operations = schema_operations(http)
    wav = wav_bytes(speech_like(0.3))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(
        operation=st.sampled_from(operations),
        fields=st.dictionaries(
            st.sampled_from(["audio", "guidance", "format", "image", "extra"]), field_values, max_size=4
        ),
        audio=st.sampled_from([None, b"", wav, b"RIFF\x00\x00\x00\x00WAVE", b"\xff" * 100]),
        authorized=st.booleans(),
        content_type=st.sampled_from([None, "multipart/form-data", "application/json", "text/plain"]),
    )
    def property_run(operation, fields, audio, authorized, content_type):
        path, method, _ = operation
        headers = dict(AUTH) if authorized else {}
        request = {"headers": headers, "timeout": 30}
        if method == "post":
            if content_type in (None, "multipart/form-data"):
                files = {"audio": ("a.wav", audio, "audio/wav")} if audio is not None else None
                request.update(data={k: v for k, v in fields.items() if k != "audio"}, files=files)
                if files is None and content_type == "multipart/form-data":
                    headers["Content-Type"] = "multipart/form-data; boundary=zzz"
                    request["content"] = b"--zzz\r\nbroken"
                    request.pop("data")
                    request.pop("files")
            else:
                headers["Content-Type"] = content_type
                request["content"] = json.dumps(fields).encode()
        response = httpx.request(method.upper(), f"{http}{path}", **request)
        assert response.status_code < 500, (path, method, response.status_code, response.text)
        if response.status_code >= 400:
            assert isinstance(response.json().get("error"), str)

    property_run()
    assert list(work.iterdir()) == []


def test_medtalk_serve_runs_and_stops_cleanly(pipeline, tmp_path):
    """The command itself: starts on the given port with the given bundle, serves, exits 0 on SIGTERM."""
    import os
    import signal
    import subprocess
    import sys

    bundle = tmp_path / "bundle"
    make_bundle(bundle, *EXACT_EMOTION)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    work = tmp_path / "work"
    command = [sys.executable, "-m", "medtalk", "serve", "--model", str(bundle), "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--work-dir", str(work), "--token", TOKEN],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "MEDTALK_LOAD_PLUGINS": ""},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[0]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "medtalk serve did not start"
            time.sleep(0.1)
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers=AUTH).json()["models"]
        assert models[0]["name"] == str(bundle) and models[0]["streaming"] is True
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 401
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=20)[0]
    assert server.returncode == 0, output
    assert output.startswith(f"medtalk serve: model {bundle} on http://127.0.0.1:{port}")
    assert list(work.iterdir()) == []


def test_an_oversize_upload_without_content_length_is_refused_while_reading(server):
    (http, _), work = server

    def body():
        for _ in range(40):  # 40 x 64 KiB = 2.5 MiB, sent chunked: no Content-Length to refuse early
            yield b"\0" * 65536

    headers = {**AUTH, "Content-Type": "multipart/form-data; boundary=zzz"}
    response = httpx.post(f"{http}/v1/animate", headers=headers, content=body(), timeout=30)
    assert response.status_code == 413
    assert response.json() == {"error": "the upload is larger than 1 MiB, the server's limit"}
    assert list(work.iterdir()) == []


def test_a_stream_may_carry_its_token_in_the_query_and_ask_for_another_frame_rate(server):
    (_, ws), _ = server
    with connect(f"{ws}/v1/stream?token={TOKEN}", open_timeout=10) as client:
        client.send(start(fps=30, format="f32"))
        started = json.loads(client.recv(timeout=10))
        assert (started["type"], started["fps"]) == ("started", 30.0)
        client.send(pcm16(speech_like(1.5)))
        client.send(json.dumps({"type": "end"}))
        frames = 0
        while True:
            message = client.recv(timeout=30)
            if isinstance(message, bytes):
                frames += struct.unpack("<II", message[:8])[1]
            else:
                assert json.loads(message)["frames"] == frames == 45
                break


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("face.npy", b"garbage", "the 'image' file is not a readable .npy file"),
        ("face.json", b"{not json", "the 'image' file is not a readable .json file"),
        ("face.json", b"[[1, 2], [3, 4]]", "the 'image' .json file must hold one vector of finite numbers"),
        ("face.png", b"not a png", "the 'image' file is not a readable .png file"),
        ("face.gif", b"GIF89a", "the 'image' file must be .png, .jpg, .npy or .json"),
    ],
)
def test_a_bad_guidance_image_upload_is_400(server, name, data, expected):
    (http, _), work = server
    files = {
        "audio": ("take.wav", wav_bytes(speech_like(0.5)), "audio/wav"),
        "image": (name, data, "image/png"),
    }
    response = httpx.post(
        f"{http}/v1/animate", headers=AUTH, files=files, data={"guidance": "image"}, timeout=30
    )
    assert (response.status_code, response.json()) == (400, {"error": expected})
    assert list(work.iterdir()) == []


def test_a_model_that_is_not_a_bundle_animates_files_but_refuses_streams(tmp_path):
    """A registered animator without featurizers (like the procedural teacher): files yes, streams no."""
    from medtalk.core.plugins import get_registry
    from medtalk.core.sequence import RigSequence

    class Animator:
        rig = get_registry("rig").get("arkit-52")
        fps = 60.0

        def __call__(self, audio, guidance="label:neutral", transcript=None):
            frames = round(audio.duration * self.fps)
            return RigSequence(np.full((frames, 52), 0.25, np.float32), fps=self.fps, rig="arkit-52")

    app = create_app(make_settings(tmp_path, model="animator"), Animator())
    expected = (
        "the model 'animator' is not a trained bundle (it has no featurizers): it cannot stream; "
        "POST /v1/animate animates whole files with it"
    )
    with running(app) as (http, ws):
        info = httpx.get(f"{http}/v1/models").json()["models"][0]
        assert (info["rig"], info["streaming"], info["streaming_error"]) == ("arkit-52", False, expected)
        files = {"audio": ("take.wav", wav_bytes(speech_like(0.5)), "audio/wav")}
        response = httpx.post(f"{http}/v1/animate", files=files, data={"format": "txt"}, timeout=30)
        assert response.status_code == 200 and len(response.text.splitlines()) == 30
        assert refused_stream(ws, [start()], headers={}) == (
            {"type": "error", "status": 400, "error": expected},
            4400,
        )


def test_the_server_wide_livelink_target_gets_every_stream(pipeline, tmp_path):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    address = f"127.0.0.1:{receiver.getsockname()[1]}"
    try:
        with running(create_app(make_settings(tmp_path, livelink=address), pipeline)) as (_, ws):
            _, _, summary = run_stream(ws, {"fps": 30}, pcm16(speech_like(1.0)), 3200, headers={})
        packets = [read_live_link_packet(receiver.recv(2048)) for _ in range(30)]
    finally:
        receiver.close()
    assert summary["livelink_packets"] == 30
    assert [(p["frame"], p["rate"], p["subject"]) for p in packets] == [
        (i, (30, 1), "medtalk") for i in range(30)
    ]
