"""Emotion featurizers: ``prosody`` (pitch, voicing, energy and spectral shape; pyworld + numpy, no model)
and ``emotion2vec`` (the authors' speech emotion features, through funasr)."""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from medtalk import hookimpl
from medtalk.core.audio import TARGET_SAMPLE_RATE
from medtalk.core.components import ComponentConfig, Featurizer, StreamingForm
from medtalk.core.errors import AudioError, ConfigError

if TYPE_CHECKING:
    import numpy as np

    from medtalk.core.audio import Audio
    from medtalk.core.types import FeatureSeq

# ------------------------------------------------------------------------------------------------ prosody

PROSODY_HOP = 160  # 10 ms at 16 kHz: 100 Hz, frame k centred on sample k x hop, as logmel
PROSODY_WIN = 400  # 25 ms analysis window, as logmel
PROSODY_N_FFT = 512
# Semitones are counted from A0 = 27.5 Hz, as eGeMAPS does, so every human F0 is positive.
SEMITONE_REFERENCE_HZ = 27.5
# Power (mean square, full scale = 1) below this is silence: -100 dB.
POWER_FLOOR = 1e-10
# The spectral shape measures see a bin more than 80 dB below its frame's total power at that level: the
# floor moves with the frame, so the shape of a spectrum reads the same at any gain.
SHAPE_FLOOR = 1e-8
# The harmonics-to-noise ratio is clipped to this range: unvoiced frames (d4c finds no periodic power)
# and silence sit at its floor.
HNR_RANGE_DB = (-10.0, 40.0)
_DELTA_REACH = 2  # regression deltas over +-2 frames (HTK's usual window)
_FLUX_MEL_BANDS = 24
_FRAMES_PER_BLOCK = 4096
PITCH_PIECE_FRAMES = 3000  # 30 s
PITCH_CONTEXT_FRAMES = 100  # 1 s

# (name, unit) of each prosody dimension, in order; docs/backends/emotion-features.md explains each one.
PROSODY_FEATURES: tuple[tuple[str, str], ...] = (
    ("f0", "semitones re 27.5 Hz"),
    ("f0_delta", "semitones/s"),
    ("voiced", "0 or 1"),
    ("hnr", "dB, -10..40"),
    ("energy", "dB re full scale"),
    ("energy_delta", "dB/s"),
    ("spectral_centroid", "Hz"),
    ("spectral_spread", "Hz"),
    ("alpha_ratio", "dB"),
    ("hammarberg_index", "dB"),
    ("spectral_slope", "dB/kHz"),
    ("spectral_flux", "dB"),
    ("zero_crossing_rate", "crossings/sample"),
    ("spectral_flatness", "fraction 0..1"),
)
_VOICED = 2  # the one dimension utterance normalization leaves as it is
# Streaming runs prosody on windows with this much context (its streaming_form). The pitch tracker and
# the F0 interpolation through unvoiced gaps look ahead without bound, so no context makes a frame exact:
# 50 ms after its centre is the latency the tolerance in docs/server.md was measured with.
STREAMING_LEFT_S = 0.1
STREAMING_RIGHT_S = 0.05


class ProsodyConfig(ComponentConfig):
    f0_floor: float = Field(default=60.0, ge=40.0, le=1000.0, description="Lowest F0 searched for, Hz")
    f0_ceil: float = Field(default=500.0, ge=40.0, le=1600.0, description="Highest F0 searched for, Hz")
    pitch_method: Literal["dio", "harvest"] = Field(
        default="dio",
        description=(
            "pyworld's F0 tracker: 'dio' (DIO + StoneMask refinement, ~0.03 x real time) or 'harvest' "
            "(~0.35 x real time, marks more frames voiced)"
        ),
    )
    normalize: Literal["none", "utterance"] = Field(
        default="utterance",
        description=(
            "'utterance': z-score every dimension but 'voiced' over the clip, so pitch and loudness read "
            "relative to the speaker and the recording level; 'none': the absolute units"
        ),
    )

    @model_validator(mode="after")
    def _range_is_ordered(self) -> ProsodyConfig:
        if self.f0_floor >= self.f0_ceil:
            raise ValueError(f"f0_floor ({self.f0_floor:g} Hz) must be below f0_ceil ({self.f0_ceil:g} Hz)")
        return self


class Prosody(Featurizer):
    """Prosody per 10 ms frame (14-d: pitch, voicing, energy, spectral shape), pyworld + numpy, no model."""

    name = "prosody"
    role = "emotion"
    # DIO's contour fixing, the interpolation of F0 through unvoiced gaps and the +-2 frame deltas all look
    # ahead, and utterance normalization needs the whole clip: frames are not final until the clip ends.
    # It streams windowed instead (streaming_form).
    supports_streaming = False
    Config = ProsodyConfig
    config: ProsodyConfig

    def __init__(self, config: ProsodyConfig | None = None) -> None:
        super().__init__(config)
        from medtalk.plugins.featurizers import mel_filter_bank

        self.flux_filters = mel_filter_bank(
            _FLUX_MEL_BANDS, PROSODY_N_FFT, TARGET_SAMPLE_RATE, 0.0, TARGET_SAMPLE_RATE / 2
        )

    @property
    def dim(self) -> int:
        return len(PROSODY_FEATURES)

    @property
    def rate_hz(self) -> float:
        return TARGET_SAMPLE_RATE / PROSODY_HOP

    def __call__(self, audio: Audio) -> FeatureSeq:
        """floor(samples / 160) + 1 frames of ``PROSODY_FEATURES``, frame k centred on sample 160 k."""
        import numpy as np

        from medtalk.core.types import FeatureSeq

        if audio.sample_rate != TARGET_SAMPLE_RATE:
            raise ConfigError(
                f"prosody needs {TARGET_SAMPLE_RATE} Hz audio, got {audio.sample_rate} Hz: "
                "load it with load_audio"
            )
        samples = audio.samples.astype(np.float64)
        num_frames = audio.num_samples // PROSODY_HOP + 1
        f0, times = self._track_pitch(samples, num_frames)
        voiced = f0 > 0.0
        out = np.empty((num_frames, self.dim), dtype=np.float64)
        out[:, 0] = _semitone_contour(f0, voiced, self.config.f0_floor, self.config.f0_ceil)
        out[:, 1] = _delta_per_second(out[:, 0], self.rate_hz)
        out[:, 2] = voiced
        self._frame_features(samples, f0, times, out)
        out[:, 5] = _delta_per_second(out[:, 4], self.rate_hz)
        if self.config.normalize == "utterance":
            _z_score_columns(out, keep=(_VOICED,))
        return FeatureSeq(out.astype(np.float32), rate_hz=self.rate_hz)

    def streaming_form(self) -> StreamingForm:
        """Raw units on windows with 100 ms of left context, final 50 ms after their centre; the utterance
        z-score becomes a running one over the frames heard so far."""
        windowed = Prosody(self.Config.model_validate({**self.config.model_dump(), "normalize": "none"}))
        running = self.config.normalize == "utterance"
        return StreamingForm(
            featurizer=windowed,
            left_s=STREAMING_LEFT_S,
            right_s=STREAMING_RIGHT_S,
            running_z_score=tuple(c for c in range(self.dim) if c != _VOICED) if running else (),
        )

    def _track_pitch(self, samples: np.ndarray, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """F0 in Hz per frame (0 where unvoiced) and the frame times in seconds.

        DIO and Harvest filter the whole signal at once (about 1 GB for 10 minutes), so long clips are
        tracked in 30 s pieces, each read with 1 s of context on both sides that is then dropped.
        """
        import numpy as np

        times = np.arange(num_frames, dtype=np.float64) * (PROSODY_HOP / TARGET_SAMPLE_RATE)
        f0 = np.zeros(num_frames)
        if samples.size < PROSODY_HOP:
            # Under 10 ms there is no period to find, and WORLD's trackers fail on an empty signal.
            return f0, times
        for start in range(0, num_frames, PITCH_PIECE_FRAMES):
            stop = min(start + PITCH_PIECE_FRAMES, num_frames)
            first, last = max(start - PITCH_CONTEXT_FRAMES, 0), min(stop + PITCH_CONTEXT_FRAMES, num_frames)
            # Up to the centre of the piece's last frame (or the clip's end): last - first frames.
            end = None if last == num_frames else (last - 1) * PROSODY_HOP + 1
            piece = samples[first * PROSODY_HOP : end]
            f0[start:stop] = self._track_piece(piece, last - first)[start - first : stop - first]
        return f0, times

    def _track_piece(self, samples: np.ndarray, num_frames: int) -> np.ndarray:
        import numpy as np

        pyworld = import_pyworld()
        frame_period_ms = 1000.0 * PROSODY_HOP / TARGET_SAMPLE_RATE
        options = {"f0_floor": self.config.f0_floor, "f0_ceil": self.config.f0_ceil}
        if self.config.pitch_method == "harvest":
            f0, world_times = pyworld.harvest(
                samples, TARGET_SAMPLE_RATE, frame_period=frame_period_ms, **options
            )
        else:
            f0, world_times = pyworld.dio(
                samples, TARGET_SAMPLE_RATE, frame_period=frame_period_ms, **options
            )
            f0 = pyworld.stonemask(samples, f0, world_times, TARGET_SAMPLE_RATE)
        # WORLD counts int(duration / period) + 1 frames at k x period: the same frames; made exact here
        # so a rounding difference can never shift the sequence.
        f0 = np.asarray(f0, dtype=np.float64)[:num_frames]
        if f0.size < num_frames:
            f0 = np.pad(f0, (0, num_frames - f0.size))
        return np.where(np.isfinite(f0), f0, 0.0)

    def _frame_features(
        self, samples: np.ndarray, f0: np.ndarray, times: np.ndarray, out: np.ndarray
    ) -> None:
        """Fill the HNR, energy and spectral columns of ``out``, a block of frames at a time."""
        import numpy as np

        num_frames = out.shape[0]
        half = PROSODY_WIN // 2
        padded = np.pad(samples, (half, PROSODY_WIN - half))
        window = np.hanning(PROSODY_WIN + 1)[:-1]  # periodic Hann, as logmel
        window_power = float(np.sum(window**2))
        hz = np.fft.rfftfreq(PROSODY_N_FFT, d=1.0 / TARGET_SAMPLE_RATE)
        khz = hz / 1000.0
        low_band = (hz >= 50.0) & (hz < 1000.0)  # alpha ratio bands, as eGeMAPS
        high_band = (hz >= 1000.0) & (hz < 5000.0)
        below_2k, from_2k_to_5k = hz < 2000.0, (hz >= 2000.0) & (hz < 5000.0)  # Hammarberg index bands
        slope_band = (hz >= 50.0) & (hz < 5000.0)
        slope_x = khz[slope_band] - khz[slope_band].mean()
        harmonic_band = hz < 4000.0
        pyworld = import_pyworld() if samples.size >= PROSODY_HOP else None
        previous_mel = previous_floor = None
        for start in range(0, num_frames, _FRAMES_PER_BLOCK):
            count = min(_FRAMES_PER_BLOCK, num_frames - start)
            rows = slice(start, start + count)
            offsets = (start + np.arange(count))[:, None] * PROSODY_HOP + np.arange(PROSODY_WIN)[None, :]
            frames = padded[offsets]
            spectrum = np.fft.rfft(frames * window, n=PROSODY_N_FFT, axis=1)
            # Scaled so that a bin's power reads in the units of mean square signal power.
            power = (spectrum.real**2 + spectrum.imag**2) / window_power
            total = power.sum(axis=1)
            safe_total = np.maximum(total, POWER_FLOOR)
            floor = safe_total * SHAPE_FLOOR

            out[rows, 4] = 10.0 * np.log10(
                np.maximum(np.sum((frames * window) ** 2, axis=1) / window_power, POWER_FLOOR)
            )
            centroid = power @ hz / safe_total
            out[rows, 6] = centroid
            out[rows, 7] = np.sqrt(np.maximum(power @ (hz**2) / safe_total - centroid**2, 0.0))
            out[rows, 8] = _db_ratio(power[:, high_band].sum(axis=1), power[:, low_band].sum(axis=1), floor)
            out[rows, 9] = _db_ratio(
                power[:, below_2k].max(axis=1), power[:, from_2k_to_5k].max(axis=1), floor
            )
            level_db = 10.0 * np.log10(power[:, slope_band] + floor[:, None])
            out[rows, 10] = (level_db - level_db.mean(axis=1, keepdims=True)) @ slope_x / np.sum(slope_x**2)
            mel = power @ self.flux_filters
            mel_before = np.concatenate([mel[:1] if previous_mel is None else previous_mel, mel[:-1]])
            floor_before = np.concatenate(
                [floor[:1] if previous_floor is None else previous_floor, floor[:-1]]
            )
            # One floor for both frames of a pair, from the louder: a gain change shifts both sides alike.
            pair_floor = np.maximum(floor, floor_before)[:, None]
            change_db = 10.0 * np.log10((mel + pair_floor) / (mel_before + pair_floor))
            out[rows, 11] = np.sqrt(np.mean(change_db**2, axis=1))
            previous_mel, previous_floor = mel[-1:], floor[-1:]
            signs = np.signbit(frames)
            out[rows, 12] = np.mean(signs[:, 1:] != signs[:, :-1], axis=1)
            floored = power + floor[:, None]
            out[rows, 13] = np.exp(np.mean(np.log(floored), axis=1)) / np.mean(floored, axis=1)

            if pyworld is None:
                out[rows, 3] = HNR_RANGE_DB[0]
                continue
            # d4c at twice the FFT size gives one aperiodicity per bin here at every other of its bins.
            aperiodicity = pyworld.d4c(
                samples, f0[rows], times[rows], TARGET_SAMPLE_RATE, fft_size=2 * PROSODY_N_FFT
            )[:, ::2]
            aperiodic_share = np.clip(aperiodicity[:, harmonic_band], 0.0, 1.0)
            band_power = power[:, harmonic_band]
            periodic = np.sum(band_power * (1.0 - aperiodic_share), axis=1)
            aperiodic = np.sum(band_power * aperiodic_share, axis=1)
            hnr = np.clip(_db_ratio(periodic, aperiodic, floor), *HNR_RANGE_DB)
            out[rows, 3] = np.where(band_power.sum(axis=1) > POWER_FLOOR, hnr, HNR_RANGE_DB[0])


def _semitone_contour(f0: np.ndarray, voiced: np.ndarray, f0_floor: float, f0_ceil: float) -> np.ndarray:
    """Semitones re 27.5 Hz; unvoiced frames interpolated linearly (in semitones) between the voiced frames
    around them and held flat before the first and after the last. With no voiced frame at all: the
    geometric centre of the search range, so the value stays finite."""
    import numpy as np

    if not voiced.any():
        return np.full(f0.shape, 12.0 * np.log2(np.sqrt(f0_floor * f0_ceil) / SEMITONE_REFERENCE_HZ))
    index = np.flatnonzero(voiced)
    semitones = 12.0 * np.log2(f0[index] / SEMITONE_REFERENCE_HZ)
    return np.interp(np.arange(f0.size), index, semitones)


def _delta_per_second(values: np.ndarray, rate_hz: float) -> np.ndarray:
    """HTK regression delta over +-2 frames (edges repeated), in units per second."""
    import numpy as np

    padded = np.pad(values, _DELTA_REACH, mode="edge")
    size = values.size
    weighted = sum(
        n
        * (
            padded[_DELTA_REACH + n : _DELTA_REACH + n + size]
            - padded[_DELTA_REACH - n : _DELTA_REACH - n + size]
        )
        for n in range(1, _DELTA_REACH + 1)
    )
    return weighted / (2 * sum(n * n for n in range(1, _DELTA_REACH + 1))) * rate_hz


def _db_ratio(numerator: np.ndarray, denominator: np.ndarray, floor: np.ndarray) -> np.ndarray:
    import numpy as np

    return 10.0 * np.log10((numerator + floor) / (denominator + floor))


def _z_score_columns(values: np.ndarray, keep: tuple[int, ...]) -> None:
    """In place: each column minus its mean, over its standard deviation (a constant column becomes 0)."""
    import numpy as np

    columns = [c for c in range(values.shape[1]) if c not in keep]
    block = values[:, columns]
    mean = block.mean(axis=0)
    std = block.std(axis=0)
    # A column that does not vary (silence, a steady tone) is only centred: dividing by ~0 would blow
    # numerical noise up to unit size.
    scale = np.where(std > 1e-6 * np.maximum(np.abs(mean), 1.0), std, 1.0)
    values[:, columns] = (block - mean) / scale


@functools.cache
def import_pyworld() -> Any:
    """pyworld's API (dio, stonemask, harvest, d4c).

    pyworld 0.3.5's ``__init__`` does nothing but read its own version through ``pkg_resources``, which
    setuptools 81 and later no longer ship; where that import fails, the compiled extension that holds
    the whole API is loaded directly.
    """
    try:
        import pyworld
    except ModuleNotFoundError as error:
        if error.name != "pkg_resources":
            raise ConfigError("prosody needs pyworld: pip install 'medtalk[embedded]'") from None
    else:
        return pyworld
    import importlib.util

    spec = importlib.util.find_spec("pyworld")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    libraries = [
        path
        for folder in folders
        for path in Path(folder).glob("pyworld.*")
        if path.suffix in (".so", ".pyd")
    ]
    if not libraries:
        raise ConfigError(
            "prosody: pyworld is installed without its compiled module: pip install --force-reinstall pyworld"
        )
    extension_spec = importlib.util.spec_from_file_location("pyworld.pyworld", libraries[0])
    module = importlib.util.module_from_spec(extension_spec)
    extension_spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------- emotion2vec

# The feature encoder's strides multiply to 320 samples: 50 frames per second at 16 kHz.
EMOTION2VEC_RATE_HZ = 50.0
# The shortest input its convolution stack turns into one frame (25 ms at 16 kHz).
EMOTION2VEC_MIN_SAMPLES = 400
_DEVICE_PATTERN = re.compile(r"cpu|auto|cuda(:\d+)?")
# The ModelScope ids funasr's own name table does not map to their Hugging Face copies.
_HF_NAMES = {"iic/emotion2vec_base": "emotion2vec/emotion2vec_base"}


class Emotion2vecConfig(ComponentConfig):
    model: str = Field(
        default="iic/emotion2vec_base",
        description=(
            "A local model folder as the hubs ship it (configuration.json) or as funasr saves one "
            "(config.yaml + model.pt): never downloads; or a hub id funasr fetches into its cache on first "
            "use: iic/emotion2vec_base (ms), emotion2vec/emotion2vec_base (hf)"
        ),
    )
    hub: Literal["ms", "hf"] = Field(
        default="ms",
        description=(
            "Hub funasr fetches a hub id from: 'ms' ModelScope, 'hf' Hugging Face (iic/emotion2vec_base is "
            "then read as emotion2vec/emotion2vec_base); unused for a folder"
        ),
    )
    device: str = Field(
        default="cpu", description="cpu, cuda, cuda:N, or auto (the first CUDA device when torch sees one)"
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not _DEVICE_PATTERN.fullmatch(value):
            raise ValueError(f"unknown device '{value}': use cpu, cuda, cuda:N or auto")
        return value


class Emotion2vec(Featurizer):
    """emotion2vec frame features (768-d at 50 Hz for base), the paper's emotion encoder, through funasr."""

    name = "emotion2vec"
    role = "emotion"
    supports_streaming = False  # a transformer over the whole clip
    Config = Emotion2vecConfig
    config: Emotion2vecConfig

    def __init__(self, config: Emotion2vecConfig | None = None) -> None:
        super().__init__(config)
        self._auto_model: Any = None

    @property
    def dim(self) -> int:
        """The model's embedding size (loads the model)."""
        return int(self.load().model.cfg.get("embed_dim"))

    @property
    def rate_hz(self) -> float:
        return EMOTION2VEC_RATE_HZ

    def __call__(self, audio: Audio) -> FeatureSeq:
        """floor((samples - 400) / 320) + 1 frames: frame k covers samples 320 k .. 320 k + 400."""
        import numpy as np

        from medtalk.core.types import FeatureSeq

        if audio.sample_rate != TARGET_SAMPLE_RATE:
            raise ConfigError(
                f"emotion2vec needs {TARGET_SAMPLE_RATE} Hz audio, got {audio.sample_rate} Hz: "
                "load it with load_audio"
            )
        if audio.num_samples < EMOTION2VEC_MIN_SAMPLES:
            raise AudioError(
                f"emotion2vec needs at least {EMOTION2VEC_MIN_SAMPLES / TARGET_SAMPLE_RATE:.3f} s of audio, "
                f"got {audio.duration:.4f} s: give a longer clip"
            )
        auto_model = self.load()
        # The samples go in as an array (funasr decodes nothing); a writable copy, since torch.from_numpy
        # warns about Audio's read-only buffer.
        samples = np.array(audio.samples, dtype=np.float32, copy=True)
        # funasr names each input with Python's global generator; the caller's stream stays untouched.
        with _quiet_funasr(), _kept_random_state():
            results = auto_model.generate(samples, granularity="frame", extract_embedding=True)
        values = np.asarray(results[0]["feats"], dtype=np.float32)
        return FeatureSeq(values.reshape(values.shape[0], -1), rate_hz=self.rate_hz)

    def load(self) -> Any:
        """The funasr ``AutoModel``, built on first use and kept on this instance."""
        if self._auto_model is None:
            self._auto_model = self._build_auto_model()
        return self._auto_model

    def _build_auto_model(self) -> Any:
        import io

        try:
            with _quiet_funasr(), _kept_random_state():
                from funasr import AutoModel
        except ModuleNotFoundError as error:
            if error.name != "funasr":
                raise ConfigError(
                    f"emotion2vec: funasr is installed but cannot import {error.name}: "
                    "pip install 'medtalk[paper]'"
                ) from None
            raise ConfigError("emotion2vec needs funasr: pip install 'medtalk[paper]'") from None
        import torch

        model = self.config.model
        folder = _local_folder(model)
        if folder is not None:
            # The hubs' folders name their files in configuration.json (emotion2vec_base.pt on both);
            # funasr's own saves are config.yaml + model.pt.
            described = (folder / "configuration.json").is_file()
            saved = (folder / "config.yaml").is_file() and (folder / "model.pt").is_file()
            if not (described or saved):
                raise ConfigError(
                    f"emotion2vec: '{model}' is not a funasr model folder (it needs configuration.json, or "
                    "config.yaml and model.pt): give the folder funasr downloaded, e.g. "
                    "~/.cache/modelscope/hub/models/iic/emotion2vec_base"
                )
            model = str(folder)
        elif self.config.hub == "hf":
            model = _HF_NAMES.get(model, model)
        device = _resolve_device(self.config.device, torch)
        messages = io.StringIO()
        try:
            with _quiet_funasr(messages), _kept_random_state():
                return AutoModel(
                    model=model,
                    hub=self.config.hub,
                    device=device,
                    # funasr defaults to 4 threads and resets torch's global count; keep the caller's.
                    ncpu=torch.get_num_threads(),
                    disable_update=True,
                    disable_pbar=True,
                    disable_log=True,
                    log_level="ERROR",
                )
        except Exception as error:
            if folder is not None:
                raise ConfigError(
                    f"emotion2vec: funasr cannot load the model in '{folder}' ({_one_line(error)}): "
                    "check that config.yaml describes an Emotion2vec model and model.pt holds its weights"
                ) from None
            # funasr prints why a download failed and carries on until it finds no model class.
            failures = [line for line in messages.getvalue().splitlines() if line.startswith("Download:")]
            told = _one_line(failures[-1] if failures else error)
            raise ConfigError(
                f"emotion2vec: no model at '{model}' (not a local folder, and funasr could not fetch the hub "
                f"id from {self.config.hub}: {told}): give a local model folder, or fetch it once with "
                "network"
            ) from None


def _local_folder(model: str) -> Path | None:
    """The folder ``model`` names, or None for a hub id ("owner/name").

    A string that exists, or that reads as a path (absolute, ./, ~, more than one /), is a folder, so a
    mistyped path is reported as missing instead of being looked up on a hub.
    """
    path = Path(model).expanduser()
    if path.exists():
        return path.resolve()
    looks_like_path = (
        model.startswith((".", "~", "/", "\\"))
        or model.count("/") != 1
        or "\\" in model
        or path.is_absolute()
    )
    if looks_like_path:
        raise ConfigError(
            f"emotion2vec: no model folder at '{model}': give a funasr model folder, or a hub id such as "
            "iic/emotion2vec_base"
        )
    return None


def _resolve_device(requested: str, torch: Any) -> str:
    if requested == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    # funasr silently falls back to the CPU when CUDA is missing: a request for CUDA should not.
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"emotion2vec: device '{requested}' was asked for, but torch sees no CUDA device: "
            "use device 'cpu' or 'auto'"
        )
    return requested


def _one_line(text: object) -> str:
    return " ".join(str(text).split())[:200]


@contextlib.contextmanager
def _quiet_funasr(sink: Any = None) -> Iterator[None]:
    """funasr prints notices to stdout and reconfigures the root logger while importing and loading: kept
    to itself here (stdout goes to ``sink``), so a CLI's own output stays clean."""
    import io
    import logging

    root = logging.getLogger()
    handlers, level, disabled = list(root.handlers), root.level, logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(sink if sink is not None else io.StringIO()):
            yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.disable(disabled)


@contextlib.contextmanager
def _kept_random_state() -> Iterator[None]:
    """funasr moves Python's generator on import and seeds Python's, numpy's and torch's global generators
    (to 0) when it builds a model; a featurizer loading mid-training must not reset the caller's streams."""
    import random

    import numpy as np
    import torch

    python_state, numpy_state, torch_state = (
        random.getstate(),
        np.random.get_state(),
        torch.random.get_rng_state(),
    )
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.random.set_rng_state(torch_state)


@hookimpl
def register_featurizers(register):
    register(Prosody)
    register(Emotion2vec)
