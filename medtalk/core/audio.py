"""Audio input: decode a speech file (or take an array) as float32 mono at 16 kHz, refusing unusable audio.

The checks on the signal live in one place, shared by ``audio_from_array`` and ``load_audio``; the latter
only adds what needs the file (existence, decoding, and a header check that refuses a very long file
before it is read into memory).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from medtalk.core.errors import AudioError, MedtalkWarning

if TYPE_CHECKING:
    import numpy as np

TARGET_SAMPLE_RATE = 16_000
DEFAULT_MAX_DURATION_S = 600.0  # 10 minutes
MIN_DURATION_S = 0.1
SILENCE_PEAK_DBFS = -60.0

# libsndfile reports SF_COUNT_MAX frames for a stream whose length it cannot know without decoding it.
_SF_COUNT_MAX = 0x7FFF_FFFF_FFFF_FFFF

# The silence warning is raised in _checked_audio, two frames below the line that called load_audio or
# audio_from_array: that line is the one the user should be shown.
_CALLER_OF_PUBLIC_FUNCTION = 3


@dataclass(frozen=True, eq=False)
class Audio:
    """Mono float32 samples at ``sample_rate`` Hz, and the file they came from, if any."""

    samples: np.ndarray
    sample_rate: int = TARGET_SAMPLE_RATE
    path: Path | None = None

    def __post_init__(self) -> None:
        import numpy as np

        samples = np.ascontiguousarray(self.samples, dtype=np.float32)
        if samples.ndim != 1:
            raise AudioError(
                f"Audio needs 1-D mono samples, got shape {samples.shape}: build it with audio_from_array, "
                "which mixes channels down"
            )
        # A read-only view, so the caller's own array keeps its flags while Audio stays immutable.
        samples = samples.view()
        samples.setflags(write=False)
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "sample_rate", _checked_sample_rate(self.sample_rate, "sample_rate"))
        if self.path is not None:
            object.__setattr__(self, "path", Path(self.path))

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        """Seconds covered: samples / sample rate."""
        return self.num_samples / self.sample_rate


def load_audio(
    path: str | os.PathLike[str],
    *,
    max_duration_s: float = DEFAULT_MAX_DURATION_S,
    sample_rate: int = TARGET_SAMPLE_RATE,
) -> Audio:
    """Decode a wav, flac, ogg or mp3 file at any rate and channel count into mono float32 at ``sample_rate``.

    Raises ``AudioError`` (one line naming the fix) for a missing, unreadable, empty, too short or too long
    file; warns with ``MedtalkWarning`` when the audio is silent.
    """
    import soundfile

    max_duration_s = _checked_max_duration(max_duration_s)
    target_rate = _checked_sample_rate(sample_rate, "sample_rate")
    source = str(path)
    file_path = Path(path)
    if not file_path.exists():
        raise AudioError(f"{source}: no such file: check the path")
    if file_path.is_dir():
        raise AudioError(
            f"{source}: is a folder, not an audio file: give the path of a wav, flac, ogg or mp3 file"
        )

    try:
        header = soundfile.info(file_path)
    except soundfile.SoundFileError as error:
        raise _not_readable(source) from error
    if header.samplerate <= 0:
        raise _not_readable(source)
    header_knows_length = 0 < header.frames < _SF_COUNT_MAX
    if header_knows_length:
        _refuse_too_long(header.frames / header.samplerate, max_duration_s, source)

    try:
        samples, file_rate = soundfile.read(file_path, dtype="float32", always_2d=True)
    except soundfile.SoundFileError as error:
        raise _not_readable(source) from error
    return _checked_audio(
        samples,
        file_rate,
        path=path,
        max_duration_s=max_duration_s,
        target_rate=target_rate,
        stacklevel=_CALLER_OF_PUBLIC_FUNCTION,
    )


def audio_from_array(
    samples: np.ndarray,
    sample_rate: int,
    *,
    path: str | os.PathLike[str] | None = None,
    max_duration_s: float = DEFAULT_MAX_DURATION_S,
    target_sample_rate: int = TARGET_SAMPLE_RATE,
) -> Audio:
    """Turn samples of shape (N,) or (N, channels) at ``sample_rate`` Hz into mono float32 ``Audio``.

    Float samples are taken as they are (full scale is 1.0); signed integer samples are scaled to full
    scale the way soundfile does (int16 / 32768). Channels are averaged, the result is resampled to
    ``target_sample_rate``, and the same checks as ``load_audio`` apply; messages name ``path`` if given.
    """
    import numpy as np

    max_duration_s = _checked_max_duration(max_duration_s)
    target_rate = _checked_sample_rate(target_sample_rate, "target_sample_rate")
    samples = np.asarray(samples)
    if samples.ndim == 2 and samples.shape[1] > samples.shape[0] > 0:
        # A (channels, samples) array, as torch code tends to hold audio, would otherwise be averaged
        # across time into a few samples of nonsense.
        source = "audio" if path is None else str(path)
        raise AudioError(
            f"{source}: an array of shape {samples.shape} reads as {samples.shape[1]} channels of "
            f"{samples.shape[0]} samples: pass it as (samples, channels), e.g. samples.T"
        )
    return _checked_audio(
        samples,
        sample_rate,
        path=path,
        max_duration_s=max_duration_s,
        target_rate=target_rate,
        stacklevel=_CALLER_OF_PUBLIC_FUNCTION,
    )


def _checked_audio(
    samples: np.ndarray,
    sample_rate: int,
    *,
    path: str | os.PathLike[str] | None,
    max_duration_s: float,
    target_rate: int,
    stacklevel: int,
) -> Audio:
    import numpy as np

    source = "audio" if path is None else str(path)
    source_rate = _checked_sample_rate(sample_rate, "sample_rate")
    samples = np.asarray(samples)
    if samples.ndim not in (1, 2):
        raise AudioError(
            f"{source}: audio samples need shape (samples,) or (samples, channels), got {samples.shape}: "
            "reshape the array"
        )
    samples = _as_float32(samples, source)
    if samples.size == 0:
        raise AudioError(f"{source}: the audio has no samples: export it again with sound in it")
    mono = _mixed_down(samples)
    # After the mix-down, so the scan covers one channel; a NaN or inf in any channel survives the mean.
    if not np.isfinite(mono).all():
        raise AudioError(f"{source}: the audio holds NaN or infinite samples: clean the signal first")

    duration = mono.shape[0] / source_rate
    if duration < MIN_DURATION_S:
        raise AudioError(
            f"{source}: the audio is {duration:.3f} s long, shorter than the {MIN_DURATION_S} s minimum: "
            "give a longer recording"
        )
    _refuse_too_long(duration, max_duration_s, source)

    if source_rate != target_rate:
        import soxr

        mono = soxr.resample(mono, source_rate, target_rate, quality="HQ")

    silence_peak = 10.0 ** (SILENCE_PEAK_DBFS / 20.0)
    if max(float(mono.max()), -float(mono.min())) < silence_peak:
        warnings.warn(
            f"{source}: the audio is silent (peak below {SILENCE_PEAK_DBFS:.0f} dBFS): "
            "the animation will show no speech",
            MedtalkWarning,
            stacklevel=stacklevel,
        )
    return Audio(samples=mono, sample_rate=target_rate, path=None if path is None else Path(path))


def _as_float32(samples: np.ndarray, source: str) -> np.ndarray:
    import numpy as np

    if np.issubdtype(samples.dtype, np.floating):
        return samples.astype(np.float32, copy=False)
    if np.issubdtype(samples.dtype, np.signedinteger):
        full_scale = float(np.iinfo(samples.dtype).max) + 1.0
        return (samples / full_scale).astype(np.float32)
    raise AudioError(
        f"{source}: audio samples must be floats or signed integers, got dtype {samples.dtype}: "
        "convert the array first"
    )


def _mixed_down(samples: np.ndarray) -> np.ndarray:
    if samples.ndim == 1:
        return samples
    # Column by column: numpy's mean(axis=1) over a handful of channels is about 10x slower
    # (0.6 s against 0.06 s for 10 minutes of 48 kHz stereo).
    mono = samples[:, 0].copy()
    for channel in range(1, samples.shape[1]):
        mono += samples[:, channel]
    if samples.shape[1] > 1:
        mono /= samples.shape[1]
    return mono


def _refuse_too_long(duration: float, max_duration_s: float, source: str) -> None:
    if duration > max_duration_s:
        raise AudioError(
            # Seconds, not minutes: "10.0 min over a 10.0 min limit" hides a 1 s overrun.
            f"{source}: the audio is {duration:.1f} s long, over the {max_duration_s:.1f} s "
            "limit: split it, or raise the limit with max_duration_s"
        )


def _not_readable(source: str) -> AudioError:
    return AudioError(f"{source}: not a readable audio file: convert it to wav, flac, ogg or mp3")


def _checked_max_duration(value: object) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not (math.isfinite(seconds) and seconds > 0):
        raise AudioError(f"max_duration_s must be a positive number of seconds, got {value}")
    return seconds


def _checked_sample_rate(value: object, name: str) -> int:
    try:
        rate = int(value)  # type: ignore[call-overload]
        whole = rate == value
    except (TypeError, ValueError, OverflowError):
        rate, whole = 0, False
    if isinstance(value, bool) or not whole or rate <= 0:
        raise AudioError(f"{name} must be a positive whole number of Hz, got {value}")
    return rate
