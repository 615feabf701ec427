"""The corpus's side of the procedural teacher (``medtalk.teacher``): one place that knows its API.

Builds the teacher, draws an expression variant, renders a take from synthesized speech, words the
rendered expression, and turns the take's peak pose into the 52 ARKit scores of image guidance.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from medtalk.core.retarget import RigMapping
    from medtalk.synth.speech import Speech


def make_teacher() -> Any:
    from medtalk.teacher import Teacher

    return Teacher()


def choose_expression(emotion: str, rng: np.random.Generator) -> str:
    """The name of one of ``emotion``'s expression variants, drawn with ``rng``."""
    from medtalk.teacher.expressions import expressions_for

    variants = expressions_for(emotion)
    return variants[int(rng.integers(len(variants)))].name


def animate(teacher: Any, speech: Speech, emotion: str, *, expression: str, seed: int) -> Any:
    """The teacher's take of ``speech`` under ``emotion`` (a ``TeacherTake``), at 60 fps on metahuman-174."""
    from medtalk.core.audio import Audio

    # The clean speech (the teacher's intensity follows its loudness and pitch), not the augmented file.
    audio = Audio(speech.samples, speech.sample_rate)
    return teacher.animate(
        list(speech.phones),
        list(speech.words),
        speech.duration,
        emotion,
        expression=expression,
        audio=audio,
        seed=seed,
    )


def describe_take(take: Any, rng: np.random.Generator) -> str:
    """Words for the expression a take rendered ("smirking, raised brow"), drawn with ``rng``: its peak
    pose (the expression at the take's intensity, without speech, blinks or gaze) and its emotion."""
    from medtalk.teacher.expressions import describe

    return describe(take.peak_pose, rng, emotion=take.emotion)


@functools.cache
def _to_arkit() -> RigMapping:
    # Parsed once: the YAML takes ~0.1 s, as long as rendering a take.
    from medtalk.core.retarget import builtin_mapping

    return builtin_mapping("metahuman-174", "arkit-52")


def arkit_vector(peak_pose: np.ndarray) -> np.ndarray:
    """The 52 ARKit scores (Live Link order, each 0..1) of a metahuman-174 pose (the built-in mapping)."""
    import numpy as np

    from medtalk.core.sequence import RigSequence

    pose = np.asarray(peak_pose, dtype=np.float32).reshape(1, -1)
    return _to_arkit().apply(RigSequence(pose, fps=60.0, rig="metahuman-174")).values[0].copy()
