"""RigSequence: per-frame controller values, the output of the whole pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from medtalk.core.errors import InputError

if TYPE_CHECKING:
    from medtalk.core.rig import RigSpec

DEFAULT_FPS = 60.0


@dataclass(frozen=True, eq=False)
class RigSequence:
    """Values (T x C, float32, finite) for rig ``rig`` at ``fps`` frames per second."""

    values: np.ndarray
    fps: float
    rig: str

    def __post_init__(self) -> None:
        values = np.ascontiguousarray(self.values, dtype=np.float32)
        if values.ndim != 2:
            raise InputError(
                f"a rig sequence needs a 2-D array (frames x controls), got shape {values.shape}"
            )
        if not np.isfinite(values).all():
            raise InputError("a rig sequence holds NaN or infinite values: replace them with real numbers")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise InputError(f"fps must be a positive number, got {self.fps}")
        # A read-only view: the sequence is immutable, and the caller's own array keeps its flags.
        values = values.view()
        values.setflags(write=False)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "fps", float(self.fps))

    @property
    def num_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def num_controls(self) -> int:
        return int(self.values.shape[1])

    @property
    def duration(self) -> float:
        """Seconds covered: frames / fps."""
        return self.num_frames / self.fps

    def check_rig(self, rig: RigSpec) -> None:
        """Refuse a sequence whose width does not match ``rig``."""
        if rig.name != self.rig or rig.num_controls != self.num_controls:
            raise InputError(
                f"this sequence has {self.num_controls} controls for rig '{self.rig}', but rig "
                f"'{rig.name}' has {rig.num_controls}: retarget it first"
            )
