"""`medtalk serve` on loopback: streaming latency, concurrent real-time streams, memory per stream.

Starts `medtalk serve --model MODEL` as its own process, then runs N concurrent WebSocket clients (N from
--streams), each sending PCM16 chunks paced at real time (one --chunk-ms chunk every --chunk-ms) and
reading the frames back as float32 blocks.

- Latency: for every chunk that completes frames, the time from sending the chunk to receiving the last
  frame it completes (what the server adds beyond the look-ahead; loopback transport included).
  Target: p95 <= 150 ms.
- Real-time streams: the largest N whose p95 latency stays within the target (no backlog builds up).
  Target: >= 4 on a 2-core machine.
- Memory per stream: the server's resident memory at its peak during the N streams, minus before them,
  over N.

Run with the interpreter of the environment to measure, e.g.
`.venv/bin/python benchmarks/serve.py --model path/to/bundle --streams 1,2,4,6,8`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

REAL_WAV = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "real"
    / "emoface_validation"
    / "angry_gd04_001_021.wav"
)
TARGET_P95_MS = 150.0
TARGET_STREAMS = 4


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def speech(seconds: float) -> bytes:
    """The real clip looped to ``seconds`` (a synthetic voice where the clip is missing), as PCM16."""
    import numpy as np

    from medtalk.core.audio import load_audio

    if REAL_WAV.exists():
        clip = load_audio(REAL_WAV).samples
    else:
        t = np.arange(16000 * 3) / 16000
        clip = (0.2 * np.sin(2 * np.pi * 140 * t) * np.clip(np.sin(2 * np.pi * 3 * t), 0, None)).astype(
            np.float32
        )
    samples = np.resize(clip, round(seconds * 16000))
    return np.round(np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


async def one_stream(url: str, audio: bytes, chunk_ms: float, lookahead_ms: float, fps: float) -> dict:
    from websockets.asyncio.client import connect

    chunk_bytes = round(16000 * chunk_ms / 1000) * 2
    chunks = [audio[i : i + chunk_bytes] for i in range(0, len(audio), chunk_bytes)]
    # Frames final after each chunk, as the server computes them (docs/server.md).
    expected = []
    heard = 0
    for chunk in chunks:
        heard += len(chunk) // 2
        seconds = heard / 16000
        ready = (
            0
            if seconds < lookahead_ms / 1000
            else math.floor((seconds - lookahead_ms / 1000) * fps + 1e-9) + 1
        )
        expected.append(min(ready, math.floor(seconds * fps + 1e-9)))
    sent_at: list[float] = []
    latencies: list[float] = []
    received = 0
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "start", "format": "f32"}))
        json.loads(await ws.recv())
        waiting = 0  # the next chunk whose frames have not all arrived

        async def reader() -> dict:
            nonlocal received, waiting
            while True:
                message = await ws.recv()
                if isinstance(message, bytes):
                    first, count = struct.unpack("<II", message[:8])
                    received = first + count
                    now = time.perf_counter()
                    while waiting < len(sent_at) and expected[waiting] <= received:
                        if waiting == 0 or expected[waiting] > expected[waiting - 1]:
                            latencies.append(now - sent_at[waiting])
                        waiting += 1
                    continue
                document = json.loads(message)
                if document["type"] == "summary":
                    return document
                raise RuntimeError(f"the server refused the stream: {document}")

        reading = asyncio.create_task(reader())
        start = time.perf_counter()
        for index, chunk in enumerate(chunks):
            delay = start + index * chunk_ms / 1000 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at.append(time.perf_counter())
            await ws.send(chunk)
        await ws.send(json.dumps({"type": "end"}))
        summary = await reading
    return {"latencies": latencies, "summary": summary, "frames": received}


async def run_streams(url: str, count: int, audio: bytes, options: argparse.Namespace, pid: int) -> dict:
    peak = rss_mb(pid)
    stop = asyncio.Event()

    async def sample_memory() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample_memory())
    results = await asyncio.gather(
        *(one_stream(url, audio, options.chunk_ms, options.lookahead_ms, options.fps) for _ in range(count))
    )
    stop.set()
    await sampler
    return {"results": results, "peak_mb": peak}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="Model name or bundle folder")
    parser.add_argument("--streams", default="1,2,4,6,8", help="Concurrent stream counts to try")
    parser.add_argument("--seconds", type=float, default=20.0, help="Audio per stream")
    parser.add_argument("--chunk-ms", type=float, default=40.0, help="Audio per message")
    parser.add_argument("--lookahead-ms", type=float, default=100.0)
    parser.add_argument("--fps", type=float, default=60.0, help="The model's frame rate")
    options = parser.parse_args()

    port = free_port()
    command = [
        sys.executable, "-m", "medtalk", "serve", "--model", options.model, "--port", str(port),
        "--lookahead-ms", str(options.lookahead_ms), "--max-streams", "64", "--idle-timeout-s", "120",
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                sys.exit(f"the server stopped: {server.stdout.read() if server.stdout else ''}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                sys.exit("the server did not start within 2 minutes")
            time.sleep(0.2)
        audio = speech(options.seconds)
        url = f"ws://127.0.0.1:{port}/v1/stream"
        print(
            f"model {options.model}; {options.seconds:g} s per stream, {options.chunk_ms:g} ms chunks "
            f"paced at real time, look-ahead {options.lookahead_ms:g} ms; {os.cpu_count()} CPUs; "
            f"load {os.getloadavg()[0]:.1f}"
        )
        print("streams  p50 ms  p95 ms  max ms  compute/audio  MB/stream  frames ok  real time")
        sustained = 0
        for count in (int(n) for n in options.streams.split(",")):
            base = rss_mb(server.pid)
            outcome = asyncio.run(run_streams(url, count, audio, options, server.pid))
            latencies = [1000 * value for result in outcome["results"] for value in result["latencies"]]
            expected = round(len(audio) / 2 / 16000 * options.fps)
            complete = all(result["summary"]["frames"] == expected for result in outcome["results"])
            compute = statistics.mean(
                result["summary"]["compute_s"] / result["summary"]["duration_s"]
                for result in outcome["results"]
            )
            p95 = percentile(latencies, 0.95)
            real_time = complete and p95 <= TARGET_P95_MS
            if real_time and count > sustained:
                sustained = count
            print(
                f"{count:7d}  {percentile(latencies, 0.5):6.1f}  {p95:6.1f}  {max(latencies):6.1f}  "
                f"{compute:13.3f}  {(outcome['peak_mb'] - base) / count:9.1f}  {str(complete):>9}  "
                f"{'yes' if real_time else 'no':>9}"
            )
        print(
            f"sustained real-time streams: {sustained} (target >= {TARGET_STREAMS}); "
            f"latency target p95 <= {TARGET_P95_MS:g} ms beyond the look-ahead; "
            f"server RSS {rss_mb(server.pid):.0f} MB"
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
