"""Built-in audio featurizers that need no model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from medtalk import hookimpl
from medtalk.core.audio import TARGET_SAMPLE_RATE
from medtalk.core.components import ComponentConfig, Featurizer
from medtalk.core.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from medtalk.core.audio import Audio
    from medtalk.core.types import FeatureSeq

NYQUIST_HZ = TARGET_SAMPLE_RATE / 2
# Frames are transformed this many at a time, so 10 minutes of audio never holds every spectrum at once.
_FRAMES_PER_BLOCK = 4096


class LogMelConfig(ComponentConfig):
    n_mels: int = Field(default=80, ge=1, le=256, description="Mel bands (the feature size)")
    hop_ms: float = Field(default=10.0, gt=0, le=100, description="Milliseconds between frames (10: 100 Hz)")
    win_ms: float = Field(default=25.0, gt=0, le=200, description="Analysis window length in milliseconds")
    fmin: float = Field(default=0.0, ge=0, description="Lowest frequency of the mel bands, Hz")
    fmax: float = Field(
        default=NYQUIST_HZ, gt=0, le=NYQUIST_HZ, description="Highest frequency of the mel bands, Hz"
    )
    log_floor: float = Field(
        default=1e-10, gt=0, description="Band power below this is raised to it before the log (silence)"
    )

    @model_validator(mode="after")
    def _bands_fit(self) -> LogMelConfig:
        if self.fmin >= self.fmax:
            raise ValueError(f"fmin ({self.fmin:g} Hz) must be below fmax ({self.fmax:g} Hz)")
        if round(self.hop_ms * TARGET_SAMPLE_RATE / 1000) < 1:
            raise ValueError(f"hop_ms {self.hop_ms:g} is shorter than one sample at 16 kHz")
        return self


class LogMel(Featurizer):
    """Log mel spectrogram (80 bands at 100 Hz by default), computed with numpy, no model."""

    name = "logmel"
    role = "content"
    supports_streaming = True
    Config = LogMelConfig
    config: LogMelConfig

    def __init__(self, config: LogMelConfig | None = None) -> None:
        super().__init__(config)
        self.hop = round(self.config.hop_ms * TARGET_SAMPLE_RATE / 1000)
        self.win = max(round(self.config.win_ms * TARGET_SAMPLE_RATE / 1000), 2)
        self.n_fft = 1 << (self.win - 1).bit_length()  # the next power of two: every band gets FFT bins
        # Built here, not on first use, so a config whose bands fall between FFT bins fails at build time.
        self.filters = mel_filter_bank(
            self.config.n_mels, self.n_fft, TARGET_SAMPLE_RATE, self.config.fmin, self.config.fmax
        )

    @property
    def dim(self) -> int:
        return self.config.n_mels

    @property
    def rate_hz(self) -> float:
        return TARGET_SAMPLE_RATE / self.hop

    def __call__(self, audio: Audio) -> FeatureSeq:
        """Frame k is centred on sample k x hop (zero padding at both ends): floor(samples / hop) + 1
        frames, i.e. floor(duration x 100) + 1 at 10 ms."""
        import numpy as np

        from medtalk.core.types import FeatureSeq

        if audio.sample_rate != TARGET_SAMPLE_RATE:
            raise ConfigError(
                f"logmel needs {TARGET_SAMPLE_RATE} Hz audio, got {audio.sample_rate} Hz: "
                "load it with load_audio"
            )
        half = self.win // 2
        padded = np.pad(audio.samples.astype(np.float32), (half, self.win - half))
        num_frames = audio.num_samples // self.hop + 1
        window = np.hanning(self.win + 1)[:-1].astype(np.float32)  # periodic Hann, as STFTs use
        filters = self.filters.astype(np.float32, copy=False)
        out = np.empty((num_frames, self.config.n_mels), dtype=np.float32)
        for start in range(0, num_frames, _FRAMES_PER_BLOCK):
            count = min(_FRAMES_PER_BLOCK, num_frames - start)
            offsets = (start + np.arange(count))[:, None] * self.hop + np.arange(self.win)[None, :]
            spectrum = np.fft.rfft(padded[offsets] * window, n=self.n_fft, axis=1)
            power = spectrum.real**2 + spectrum.imag**2
            out[start : start + count] = np.log(np.maximum(power @ filters, self.config.log_floor))
        return FeatureSeq(out, rate_hz=self.rate_hz)


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray | float:
    """The HTK mel scale: 2595 log10(1 + f / 700)."""
    import numpy as np

    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray | float:
    import numpy as np

    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


def mel_band_centers(n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Centre frequency (Hz) of each band: evenly spaced on the mel scale between fmin and fmax."""
    import numpy as np

    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    return np.asarray(edges)[1:-1]


def mel_filter_bank(n_mels: int, n_fft: int, sample_rate: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_fft/2 + 1, n_mels) triangles, peak 1 at each band's centre, on the continuous FFT frequencies.

    A band narrower than the FFT bin spacing would see no bin at all and stay silent: refused.
    """
    import numpy as np

    edges = np.asarray(mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)))
    bins = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins[:, None] - lower[None, :]) / (center - lower)[None, :]
    falling = (upper[None, :] - bins[:, None]) / (upper - center)[None, :]
    filters = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    empty = np.flatnonzero(filters.max(axis=0) <= 0.0)
    if empty.size:
        raise ConfigError(
            f"logmel: {empty.size} of {n_mels} mel bands fall between FFT bins (the first at "
            f"{center[empty[0]]:.0f} Hz): use fewer n_mels, a longer win_ms or a higher fmin"
        )
    return filters


@hookimpl
def register_featurizers(register):
    register(LogMel)
