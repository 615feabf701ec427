"""medtalk plugin: openSMILE's eGeMAPSv02 low-level descriptors as an emotion featurizer.

A separate, optional package because openSMILE is licensed by audEERING for non-commercial research
only; medtalk itself is MIT. See README.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from medtalk import hookimpl
from medtalk.core.audio import TARGET_SAMPLE_RATE
from medtalk.core.components import ComponentConfig, Featurizer
from medtalk.core.errors import ConfigError, InputError

if TYPE_CHECKING:
    from medtalk.core.audio import Audio
    from medtalk.core.types import FeatureSeq

__version__ = "0.1.0"

# The 25 eGeMAPSv02 low-level descriptors, in openSMILE's column order. Fixed by the feature set's
# definition, so configs validate without importing openSMILE (the tests check them against it).
EGEMAPS_LLDS: tuple[str, ...] = (
    "Loudness_sma3",
    "alphaRatio_sma3",
    "hammarbergIndex_sma3",
    "slope0-500_sma3",
    "slope500-1500_sma3",
    "spectralFlux_sma3",
    "mfcc1_sma3",
    "mfcc2_sma3",
    "mfcc3_sma3",
    "mfcc4_sma3",
    "F0semitoneFrom27.5Hz_sma3nz",
    "jitterLocal_sma3nz",
    "shimmerLocaldB_sma3nz",
    "HNRdBACF_sma3nz",
    "logRelF0-H1-H2_sma3nz",
    "logRelF0-H1-A3_sma3nz",
    "F1frequency_sma3nz",
    "F1bandwidth_sma3nz",
    "F1amplitudeLogRelF0_sma3nz",
    "F2frequency_sma3nz",
    "F2bandwidth_sma3nz",
    "F2amplitudeLogRelF0_sma3nz",
    "F3frequency_sma3nz",
    "F3bandwidth_sma3nz",
    "F3amplitudeLogRelF0_sma3nz",
)

# openSMILE frames both of its windows from the left: row j covers [10j, 10j + 20] ms for the LLDs
# computed on 20 ms frames and [10j, 10j + 60] ms for those computed on its 60 ms pitch frames (F0 and
# everything measured on the harmonics). Their centres are 10j + 10 ms and 10j + 30 ms, so row j lands
# on medtalk frame j + 1 or j + 3 (medtalk frame k stands for time k x 10 ms).
_PITCH_FRAME_LLDS = frozenset(
    {
        "F0semitoneFrom27.5Hz_sma3nz",
        "jitterLocal_sma3nz",
        "shimmerLocaldB_sma3nz",
        "HNRdBACF_sma3nz",
        "logRelF0-H1-H2_sma3nz",
        "logRelF0-H1-A3_sma3nz",
        "F1amplitudeLogRelF0_sma3nz",
        "F2amplitudeLogRelF0_sma3nz",
        "F3amplitudeLogRelF0_sma3nz",
    }
)
HOP_SAMPLES = 160  # 10 ms at 16 kHz
# openSMILE needs one whole 60 ms pitch frame; with less it returns NaN.
MIN_SAMPLES = 960


def frame_shift(lld: str) -> int:
    """How many 10 ms frames later than openSMILE's row index an LLD's window centre lies."""
    return 3 if lld in _PITCH_FRAME_LLDS else 1


class EGeMAPSConfig(ComponentConfig):
    llds: tuple[str, ...] = Field(
        default=EGEMAPS_LLDS,
        min_length=1,
        description="eGeMAPSv02 low-level descriptors to keep, in this order (default: all 25)",
    )

    @field_validator("llds")
    @classmethod
    def _known_and_unique(cls, llds: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in llds if name not in EGEMAPS_LLDS]
        if unknown:
            raise ValueError(
                f"'{unknown[0]}' is not an eGeMAPSv02 low-level descriptor (e.g. Loudness_sma3, "
                "F0semitoneFrom27.5Hz_sma3nz; README.md lists all 25)"
            )
        repeated = sorted({name for name in llds if llds.count(name) > 1})
        if repeated:
            raise ValueError(f"'{repeated[0]}' is listed twice")
        return llds


class EGeMAPS(Featurizer):
    """openSMILE eGeMAPSv02 low-level descriptors, 25 per frame at 100 Hz (non-commercial licence)."""

    name = "egemaps"
    role = "emotion"
    Config = EGeMAPSConfig
    config: EGeMAPSConfig

    def __init__(self, config: EGeMAPSConfig | None = None) -> None:
        super().__init__(config)
        self._smile = None

    @property
    def dim(self) -> int:
        return len(self.config.llds)

    @property
    def rate_hz(self) -> float:
        return TARGET_SAMPLE_RATE / HOP_SAMPLES

    def load(self):
        """The openSMILE extractor, made on first use and kept."""
        if self._smile is None:
            try:
                import opensmile
            except ImportError as error:
                raise ConfigError(
                    f"egemaps needs opensmile ({error}): pip install 'opensmile>=2.5' (audEERING's "
                    "licence: non-commercial research only)"
                ) from None
            self._smile = opensmile.Smile(
                feature_set=opensmile.FeatureSet.eGeMAPSv02,
                feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
            )
        return self._smile

    def __call__(self, audio: Audio) -> FeatureSeq:
        """Frame k stands for time k x 10 ms, as logmel's: floor(samples / 160) + 1 frames.

        Each LLD is moved from openSMILE's row to the frame at its window's centre (see frame_shift);
        the first and last frames, whose windows would reach past the audio, repeat the nearest row.
        """
        import numpy as np

        from medtalk.core.types import FeatureSeq

        if audio.sample_rate != TARGET_SAMPLE_RATE:
            raise ConfigError(
                f"egemaps needs {TARGET_SAMPLE_RATE} Hz audio, got {audio.sample_rate} Hz: "
                "load it with load_audio"
            )
        num_samples = len(audio.samples)
        if num_samples < MIN_SAMPLES:
            raise InputError(
                f"egemaps needs at least {MIN_SAMPLES / TARGET_SAMPLE_RATE:.2f} s of audio (openSMILE's "
                f"pitch window), got {num_samples / TARGET_SAMPLE_RATE:.3f} s: give a longer clip"
            )
        rows = self.load().process_signal(audio.samples.astype(np.float32), TARGET_SAMPLE_RATE)
        table = rows.to_numpy(dtype=np.float32)
        columns = np.array([EGEMAPS_LLDS.index(name) for name in self.config.llds])
        shifts = np.array([frame_shift(name) for name in self.config.llds])
        frames = np.arange(num_samples // HOP_SAMPLES + 1)
        source = np.clip(frames[:, None] - shifts[None, :], 0, table.shape[0] - 1)
        return FeatureSeq(np.ascontiguousarray(table[source, columns[None, :]]), rate_hz=self.rate_hz)


@hookimpl
def register_featurizers(register):
    register(EGeMAPS)
