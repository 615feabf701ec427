"""Writing rendered frames: H.264 mp4 with AAC sound (PyAV), GIF and PNG (Pillow).

The writers take a path they may fill in one go (the caller hands them ``atomic_output``'s temporary
path), so a failure midway never leaves a partial file behind.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

# 48 kHz keeps the recording's quality; medtalk's 16 kHz model rate would sound muffled.
AUDIO_SAMPLE_RATE = 48_000
# AAC codes sound in blocks of this many samples, and a decoder that ignores the mp4 edit list plays the
# last block whole; the sound is padded or trimmed to whole blocks (at most 10.7 ms at 48 kHz) so that
# every player agrees on its length within a video frame.
AAC_BLOCK = 1024
AUDIO_BITRATE = 96_000
# Browsers play GIF frame delays under 2/100 s as 1/10 s, so GIFs keep at most this many frames a second.
GIF_MAX_FPS = 50.0


def _fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def whole_aac_blocks(samples: np.ndarray) -> np.ndarray:
    """``samples`` padded with silence or trimmed to the nearest whole number of AAC blocks (at least one)."""
    import numpy as np

    blocks = max(1, round(len(samples) / AAC_BLOCK))
    target = blocks * AAC_BLOCK
    if len(samples) >= target:
        return samples[:target]
    return np.concatenate([samples, np.zeros(target - len(samples), dtype=samples.dtype)])


def write_mp4(
    frames: Iterable[Image.Image],
    path: Path,
    *,
    fps: float,
    width: int,
    height: int,
    audio: np.ndarray | None = None,
    sample_rate: int = AUDIO_SAMPLE_RATE,
) -> int:
    """Encode RGB frames as H.264 (yuv420p) at ``fps``, with mono float32 ``audio`` as AAC if given.

    Returns the number of video frames written. Sound is interleaved with the pictures as it goes, so
    memory stays flat however long the take.
    """
    import av
    import numpy as np

    rate = _fps_fraction(fps)
    container = av.open(str(path), mode="w", format="mp4")
    try:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p"
        # Frame threads keep both cores busy while Python draws the next frame (slice threads: ~15% slower).
        video.thread_type = "FRAME"
        # Flat colours and hard edges: "animation" tuning keeps them clean at a modest rate.
        video.options = {"crf": "20", "preset": "veryfast", "tune": "animation"}
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=sample_rate)
            sound.layout = "mono"
            sound.bit_rate = AUDIO_BITRATE
            audio = np.ascontiguousarray(audio, dtype=np.float32)
        sent = 0
        count = 0
        for count, image in enumerate(frames, start=1):
            frame = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")
            frame.pts = count - 1
            container.mux(video.encode(frame))
            if sound is not None:
                until = min(len(audio), round(count / rate * sample_rate))
                sent = _encode_sound(container, sound, audio, sent, until, sample_rate)
        container.mux(video.encode(None))
        if sound is not None:
            _encode_sound(container, sound, audio, sent, len(audio), sample_rate)
            container.mux(sound.encode(None))
    finally:
        container.close()
    return count


def _encode_sound(container, stream, audio: np.ndarray, start: int, stop: int, sample_rate: int) -> int:
    import av

    if stop <= start:
        return start
    frame = av.AudioFrame.from_ndarray(audio[None, start:stop], format="fltp", layout="mono")
    frame.sample_rate = sample_rate
    frame.pts = start
    container.mux(stream.encode(frame))
    return stop


def gif_step(fps: float) -> int:
    """Keep every n-th frame so that the GIF runs at no more than GIF_MAX_FPS (60 fps gives 30)."""
    return max(1, math.ceil(fps / GIF_MAX_FPS - 1e-9))


def gif_durations_ms(count: int, frame_seconds: float) -> list[int]:
    """Per-frame delays in whole 1/100 s (all a GIF can hold) whose running sum tracks the true timing."""
    ends = [round((i + 1) * frame_seconds * 100) for i in range(count)]
    return [10 * (end - start) for start, end in zip([0, *ends[:-1]], ends, strict=True)]


def write_gif(frames: Iterable[Image.Image], path: Path, *, frame_seconds: float) -> int:
    """A looping GIF of the frames, each shown for ``frame_seconds``; returns the frame count.

    One palette for the whole GIF, taken from the first frame plus every colour the face uses, so colours
    do not flicker from frame to frame.
    """
    from PIL import Image

    iterator = iter(frames)
    first = next(iterator)
    palette = _gif_palette(first)
    images = [first.quantize(palette=palette, dither=Image.Dither.NONE)]
    images += [image.quantize(palette=palette, dither=Image.Dither.NONE) for image in iterator]
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=gif_durations_ms(len(images), frame_seconds),
        loop=0,
    )
    return len(images)


def _gif_palette(first: Image.Image) -> Image.Image:
    from PIL import Image, ImageDraw

    from medtalk.render import face2d

    named = [value for name, value in vars(face2d).items() if name.isupper() and _is_colour(value)]
    swatch_height = 16
    source = Image.new("RGB", (first.width, first.height + swatch_height), face2d.BACKGROUND)
    source.paste(first, (0, 0))
    draw = ImageDraw.Draw(source)
    step = max(1, first.width // max(1, len(named)))
    for i, colour in enumerate(named):
        draw.rectangle((i * step, first.height, (i + 1) * step, first.height + swatch_height), fill=colour)
    return source.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def _is_colour(value: object) -> bool:
    return isinstance(value, tuple) and len(value) == 3 and all(isinstance(c, int) for c in value)


def write_png(image: Image.Image, path: Path) -> None:
    image.save(path, format="PNG", optimize=True)
