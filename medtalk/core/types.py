"""Plain data passed between components (DESIGN.md section 2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class FeatureSeq:
    """Frame-wise features (T x D) at ``rate_hz`` frames per second."""

    values: np.ndarray
    rate_hz: float

    @property
    def num_frames(self) -> int:
        return int(self.values.shape[0])


@dataclass(frozen=True)
class Word:
    """One word with its start and end time in seconds."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Phone:
    """One phone with its start and end time in seconds.

    ``symbol`` is an ARPAbet phone as the CMU dictionary writes it, upper case, without stress digits
    (``AA`` .. ``ZH``), or ``SIL`` for a pause: the set pocketsphinx aligns to and the procedural
    teacher's viseme table reads.
    """

    symbol: str
    start: float
    end: float


@dataclass(frozen=True)
class Transcript:
    """What was said, in which language, with word times (and phone times, from aligners) where known."""

    text: str
    language: str | None = None
    words: tuple[Word, ...] = field(default_factory=tuple)
    phones: tuple[Phone, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class TextEncoding:
    """Token features (N x D) and one sentence vector (D)."""

    tokens: np.ndarray
    sentence: np.ndarray
