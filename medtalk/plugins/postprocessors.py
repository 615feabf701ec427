"""Built-in post-processors: Savitzky-Golay smoothing (as the authors do) and clamping to the rig's ranges."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from medtalk import hookimpl
from medtalk.core.components import ComponentConfig, Postprocessor

if TYPE_CHECKING:
    import numpy as np


class SavgolConfig(ComponentConfig):
    window: int = Field(default=5, ge=3, description="Frames in the fitting window (odd)")
    order: int = Field(default=2, ge=0, description="Degree of the fitted polynomial (below window)")

    @model_validator(mode="after")
    def _odd_window_above_order(self) -> SavgolConfig:
        if self.window % 2 == 0:
            raise ValueError(f"window must be odd, got {self.window}")
        if self.order >= self.window:
            raise ValueError(f"order must be below window, got order {self.order} and window {self.window}")
        return self


def savgol_smooth(values: np.ndarray, window: int = 5, order: int = 2) -> np.ndarray:
    """Savitzky-Golay smoothing along time (axis 0); the edges use the polynomial fitted to the first and
    last windows, as scipy's ``mode="interp"`` does. Sequences shorter than the window come back as they are.
    """
    import numpy as np

    frames = values.shape[0]
    if frames < window:
        return values.copy()
    half = window // 2
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    design = np.vander(offsets, order + 1, increasing=True)  # (window, order + 1)
    projection = design @ np.linalg.pinv(design)  # fitted values of the window from its samples
    smoothed = np.empty_like(values, dtype=np.float64)
    middle = np.stack([values[i : frames - window + 1 + i] for i in range(window)], axis=0)
    smoothed[half : frames - half] = np.tensordot(projection[half], middle, axes=(0, 0))
    smoothed[:half] = np.tensordot(projection[:half], values[:window], axes=(1, 0))
    smoothed[frames - half :] = np.tensordot(projection[half + 1 :], values[frames - window :], axes=(1, 0))
    return smoothed.astype(values.dtype)


class SavgolSmoothing(Postprocessor):
    """Savitzky-Golay smoothing of every control over time (window 5, order 2 by default, as the authors)."""

    name = "savgol"
    Config = SavgolConfig

    def __call__(self, sequence: Any, rig: Any) -> Any:
        from medtalk.core.sequence import RigSequence

        values = savgol_smooth(sequence.values, self.config.window, self.config.order)
        return RigSequence(values, fps=sequence.fps, rig=sequence.rig)


class ClampToRanges(Postprocessor):
    """Clamp every control to its documented range on the rig (docs/rigs.md)."""

    name = "clamp"

    def __call__(self, sequence: Any, rig: Any) -> Any:
        import numpy as np

        from medtalk.core.sequence import RigSequence

        low = np.array([lo for lo, _ in rig.ranges], dtype=np.float32)
        high = np.array([hi for _, hi in rig.ranges], dtype=np.float32)
        return RigSequence(np.clip(sequence.values, low, high), fps=sequence.fps, rig=sequence.rig)


@hookimpl
def register_postprocessors(register):
    register(SavgolSmoothing)
    register(ClampToRanges)
