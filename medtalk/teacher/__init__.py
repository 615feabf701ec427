"""The procedural teacher: phones with times + an emotion -> metahuman-174 rig curves, with numpy only.

It renders the synthetic training corpus of the embedded model (DESIGN.md section 6) and is a baseline
animator on its own (``Pipeline.from_pretrained("teacher")``). docs/teacher.md describes the models.

- :mod:`medtalk.teacher.visemes`: phones -> lip, jaw and tongue curves with dominance coarticulation,
  and the lip measures the tests and benchmarks share (``lips_closed``, ``bilabial_closure_rate``).
- :mod:`medtalk.teacher.expressions`: the expression library of the seven emotions, the phrase grammar
  that describes a pose (``describe``) and its inverse (``match_description``).
- :mod:`medtalk.teacher.lexicon`: ``EMOTIONAL_WORDS``, the strong words that raise the intensity.
- :mod:`medtalk.teacher.animate`: ``Teacher.animate`` -> ``TeacherTake``, emotion keyframe tracks.
"""

from __future__ import annotations

from medtalk.teacher.animate import (
    EmotionKeyframes,
    Keyframe,
    Teacher,
    TeacherTake,
    emotion_weights,
    parse_emotion_track,
)
from medtalk.teacher.expressions import (
    EXPRESSIONS,
    Expression,
    describe,
    expression_features,
    expressions_for,
    get_expression,
    match_description,
)
from medtalk.teacher.lexicon import EMOTIONAL_WORDS
from medtalk.teacher.visemes import (
    BILABIALS,
    ROUNDED,
    bilabial_closure_rate,
    lip_opening,
    lip_rounding,
    lips_closed,
    viseme_track,
)

__all__ = [
    "BILABIALS",
    "EMOTIONAL_WORDS",
    "EXPRESSIONS",
    "ROUNDED",
    "EmotionKeyframes",
    "Expression",
    "Keyframe",
    "Teacher",
    "TeacherTake",
    "bilabial_closure_rate",
    "describe",
    "emotion_weights",
    "expression_features",
    "expressions_for",
    "get_expression",
    "lip_opening",
    "lip_rounding",
    "lips_closed",
    "match_description",
    "parse_emotion_track",
    "viseme_track",
]
