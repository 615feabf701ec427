"""Audio augmentation for the synthetic corpus: the stored speech is made to sound less like a studio.

Four effects, each drawn per utterance from a numpy generator, applied in this order:

1. **resampling round trip** (probability 0.3): down to 8, 11.025 or 12 kHz and back (soxr), which
   removes everything above the lower rate's Nyquist frequency and adds its filter's ringing;
2. **band-limiting** (probability 0.4): a high-pass at 60-300 Hz and a low-pass at 3.4-7.5 kHz with
   raised-cosine edges, in the frequency domain (a telephone or a cheap microphone);
3. **noise** (probability 0.7): white, pink or brown noise at a signal-to-noise ratio of 10-40 dB,
   measured against the speech's own RMS;
4. **gain**: -12 to +2 dB, scaled back when the peak would pass 0.99 (no clipping).

Every effect keeps the number of samples, and the signal is finally resampled to the stored rate by the
length the clean speech has there, so word and phone times measured on the clean speech hold for the
augmented file. Deterministic: the same samples and generator state give the same output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

RESAMPLE_PROBABILITY = 0.3
RESAMPLE_RATES = (8_000, 11_025, 12_000)
BAND_PROBABILITY = 0.4
HIGH_PASS_HZ = (60.0, 300.0)
LOW_PASS_HZ = (3_400.0, 7_500.0)
NOISE_PROBABILITY = 0.7
NOISE_COLOURS = ("white", "pink", "brown")
SNR_DB = (10.0, 40.0)
GAIN_DB = (-12.0, 2.0)
PEAK_LIMIT = 0.99
# Width of the raised-cosine edges of the band filter, as a fraction of its corner frequency.
_EDGE_FRACTION = 0.25


def stored_length(num_samples: int, sample_rate: int, target_rate: int) -> int:
    """Samples of a clip of ``num_samples`` at ``sample_rate`` once stored at ``target_rate``."""
    return round(num_samples * target_rate / sample_rate)


def augment_speech(
    samples: np.ndarray, sample_rate: int, rng: np.random.Generator, target_rate: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """``samples`` (float32 mono in [-1, 1] at ``sample_rate``) augmented and resampled to ``target_rate``.

    Returns the float32 samples (``stored_length`` of them) and a JSON-ready record of what was done.
    All draws happen whether or not an effect is applied, so the record of one effect never shifts the
    draws of another.
    """
    import numpy as np

    signal = np.asarray(samples, dtype=np.float64)
    draws = {
        "resample": rng.random() < RESAMPLE_PROBABILITY,
        "resample_hz": int(RESAMPLE_RATES[int(rng.integers(len(RESAMPLE_RATES)))]),
        "band": rng.random() < BAND_PROBABILITY,
        "high_pass_hz": round(float(rng.uniform(*HIGH_PASS_HZ)), 1),
        "low_pass_hz": round(float(rng.uniform(*LOW_PASS_HZ)), 1),
        "noise": rng.random() < NOISE_PROBABILITY,
        "noise_colour": NOISE_COLOURS[int(rng.integers(len(NOISE_COLOURS)))],
        "snr_db": round(float(rng.uniform(*SNR_DB)), 2),
        "noise_seed": int(rng.integers(2**31)),
        "gain_db": round(float(rng.uniform(*GAIN_DB)), 2),
    }
    record: dict[str, Any] = {"resample_hz": None, "band_hz": None, "noise": None}
    if draws["resample"] and draws["resample_hz"] < sample_rate:
        signal = _resample_round_trip(signal, sample_rate, draws["resample_hz"])
        record["resample_hz"] = draws["resample_hz"]
    if draws["band"]:
        low, high = draws["high_pass_hz"], min(draws["low_pass_hz"], 0.45 * sample_rate)
        signal = band_limit(signal, sample_rate, low, high)
        record["band_hz"] = [low, high]
    if draws["noise"]:
        noise = coloured_noise(len(signal), draws["noise_colour"], np.random.default_rng(draws["noise_seed"]))
        signal = signal + noise * _rms(signal) / max(_rms(noise), 1e-12) * 10 ** (-draws["snr_db"] / 20)
        record["noise"] = {"colour": draws["noise_colour"], "snr_db": draws["snr_db"]}
    gain = 10 ** (draws["gain_db"] / 20)
    peak = float(np.max(np.abs(signal))) if signal.size else 0.0
    if peak * gain > PEAK_LIMIT:
        gain = PEAK_LIMIT / peak
    signal = signal * gain
    record["gain_db"] = round(20 * float(np.log10(gain)), 2) if gain > 0 else None
    stored = resample(signal, sample_rate, target_rate, stored_length(len(samples), sample_rate, target_rate))
    return np.clip(stored, -1.0, 1.0).astype(np.float32), record


def resample(signal: np.ndarray, rate: int, target_rate: int, length: int) -> np.ndarray:
    """``signal`` at ``target_rate`` with exactly ``length`` samples (soxr, then trimmed or zero-padded)."""
    import numpy as np
    import soxr

    if rate == target_rate:
        out = np.asarray(signal, dtype=np.float64)
    else:
        out = soxr.resample(np.asarray(signal, dtype=np.float64), rate, target_rate, quality="HQ")
    if len(out) >= length:
        return out[:length]
    return np.concatenate([out, np.zeros(length - len(out))])


def _resample_round_trip(signal: np.ndarray, rate: int, low_rate: int) -> np.ndarray:
    down = resample(signal, rate, low_rate, stored_length(len(signal), rate, low_rate))
    return resample(down, low_rate, rate, len(signal))


def band_limit(signal: np.ndarray, rate: int, low_hz: float, high_hz: float) -> np.ndarray:
    """Keep ``low_hz``..``high_hz``, with raised-cosine edges a quarter of each corner wide."""
    import numpy as np

    spectrum = np.fft.rfft(signal)
    frequencies = np.fft.rfftfreq(len(signal), 1.0 / rate)
    gain = _edge(frequencies, low_hz, rising=True) * _edge(frequencies, high_hz, rising=False)
    return np.fft.irfft(spectrum * gain, n=len(signal))


def _edge(frequencies: np.ndarray, corner: float, *, rising: bool) -> np.ndarray:
    import numpy as np

    width = _EDGE_FRACTION * corner
    position = np.clip((frequencies - (corner - width / 2)) / width, 0.0, 1.0)
    rise = 0.5 - 0.5 * np.cos(np.pi * position)
    return rise if rising else 1.0 - rise


def coloured_noise(length: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with a flat (white), 1/f (pink) or 1/f^2 (brown) power spectrum."""
    import numpy as np

    white = rng.standard_normal(length)
    if colour == "white" or length < 2:
        return white
    exponent = {"pink": 0.5, "brown": 1.0}[colour]
    spectrum = np.fft.rfft(white)
    frequencies = np.arange(len(spectrum), dtype=np.float64)
    frequencies[0] = 1.0
    return np.fft.irfft(spectrum / frequencies**exponent, n=length)


def _rms(signal: np.ndarray) -> float:
    import numpy as np

    return float(np.sqrt(np.mean(np.square(signal)))) if len(signal) else 0.0
