"""One training sample, and the emotion labels in the order the model's label table uses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from medtalk.core.errors import InputError

if TYPE_CHECKING:
    import numpy as np

# The order of the label embedding table (DESIGN.md section 4): the index is what the model sees.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

# The authors' file names start with these prefixes (angry_gd04_001_021.wav).
AUTHORS_EMOTION_PREFIXES: dict[str, str] = {
    "angry": "angry",
    "disg": "disgust",
    "fear": "fear",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "surp": "surprise",
}


def emotion_index(label: str | None) -> int:
    """The label's row in the label table, -1 for no label."""
    if label is None:
        return -1
    try:
        return EMOTIONS.index(label)
    except ValueError:
        raise InputError(f"unknown emotion '{label}': use one of {', '.join(EMOTIONS)}") from None


@dataclass(frozen=True, eq=False)
class Sample:
    """One training example: a rig sequence and what it was made from, each part optional.

    ``rig`` holds the values (T x C, float32) of rig ``rig_name`` at ``fps``; ``utterance`` names the
    spoken content, shared by the renderings of one sentence under several emotions (paired corpus).
    """

    id: str
    rig: np.ndarray | None = None
    fps: float = 60.0
    rig_name: str | None = None
    emotion: str | None = None
    audio_path: Path | None = None
    transcript: str | None = None
    guidance_text: str | None = None
    guidance_image: Path | None = None
    utterance: str | None = None

    def __post_init__(self) -> None:
        emotion_index(self.emotion)  # refuses an unknown label at construction, not at batching

    @property
    def emotion_index(self) -> int:
        """Row of ``emotion`` in ``EMOTIONS``; -1 when the sample has no label."""
        return emotion_index(self.emotion)

    @property
    def num_frames(self) -> int | None:
        """Rig frames, or None without a rig."""
        return None if self.rig is None else int(self.rig.shape[0])

    def cropped(self, num_frames: int) -> Sample:
        """The first ``num_frames`` rig frames (a view, no copy); the audio is left as it is."""
        if self.rig is None:
            raise InputError(f"sample '{self.id}' has no rig to crop: give it a rig file")
        return dataclasses.replace(self, rig=self.rig[:num_frames])
