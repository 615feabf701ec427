"""The expression library of the seven emotions on metahuman-174, and a phrase grammar about faces.

Each emotion has several named variants, asymmetric ones included (``happy-smirk``: one mouth corner
up and the other brow raised). Poses are FACS-style combinations of the face-board controls (happy =
cheek raise + corner pull, sad = inner brow raise + corner depress, fear = brows up and together +
lips stretched, anger = brows down and together + squint + lips pressed, disgust = nose wrinkle +
upper lip raise, surprise = brows up + eyes wide + jaw drop). The angry variants are calibrated on the
real angry clip in ../shared/data/real (brow down ~0.45-0.65, brow lateral 0.7-1, inner squint 0.6-1,
eyes wide at blink -0.2 to -0.5, face scrunch 0.3-0.5, nose up 0.3-0.55); the other emotions follow
the same scale.

``describe`` words a pose ("smirking, raised brow", "eyes narrowed, lips pressed"): the features it
shows are detected from the control values, each has several paraphrases, and a random subset in a
random order is joined, deterministically for a numpy ``Generator``. ``match_description`` goes the
other way: the expression whose features and emotion best match the words of a free text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from medtalk.core.errors import InputError

if TYPE_CHECKING:
    from medtalk.core.rig import RigSpec

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


@dataclass(frozen=True)
class Expression:
    """A named expression: full control names -> value at full intensity, and words that describe it.

    ``tags`` are the face features it shows (``smirk``, ``raised-brow``: keys of ``FEATURES``) and
    free words about it; ``match_description`` scores texts against them.
    """

    name: str
    emotion: str
    controls: Mapping[str, float]
    tags: tuple[str, ...] = field(default_factory=tuple)

    def pose(self, rig: RigSpec, intensity: float = 1.0) -> np.ndarray:
        """(rig controls,) float32 values of the expression at ``intensity``, 0 on controls it leaves."""
        values = np.zeros(rig.num_controls, dtype=np.float32)
        for name, value in self.controls.items():
            values[rig.indices_of([name])[-1]] = value * intensity
        return values

    @property
    def asymmetric(self) -> bool:
        """Whether a left control differs from its right counterpart."""
        for name, value in self.controls.items():
            if name.startswith(("CTRL_L_", "CTRL_R_")):
                other = ("CTRL_R_" if name.startswith("CTRL_L_") else "CTRL_L_") + name[7:]
                if abs(self.controls.get(other, 0.0) - value) > 1e-6:
                    return True
        return False


def _sided(side: str, short: str) -> str:
    """``("L", "brow_down")`` -> ``CTRL_L_brow_down-translateY``; a short name may carry its own axis."""
    return f"CTRL_{side}_{short}" + ("" if "-translate" in short else "-translateY")


def _full(key: str) -> tuple[str, ...]:
    if key.startswith("CTRL_"):
        return (key,)
    if key.startswith(("L.", "R.")):
        return (_sided(key[0], key[2:]),)
    return (_sided("L", key), _sided("R", key))


def _expression(name: str, tags: Sequence[str], controls: Mapping[str, float]) -> Expression:
    values: dict[str, float] = {}
    for key, value in controls.items():
        for full in _full(key):
            values[full] = float(value)
    return Expression(name, name.split("-")[0], values, tuple(tags))


JAW = "CTRL_C_jaw-translateY"
GAZE_Y = "CTRL_C_eye-translateY"

# Keys: sided short names set both sides ("brow_down"), "L."/"R." one side, "CTRL_..." a full name.
_LIBRARY: tuple[Expression, ...] = (
    _expression(
        "angry-glare",
        ["furrowed", "narrowed-eyes", "wide-eyes", "pressed-lips", "glaring"],
        {
            "brow_down": 0.55,
            "brow_lateral": 0.85,
            "brow_raiseIn": 0.1,
            "eye_squintInner": 0.75,
            "eye_blink": -0.3,
            "eye_faceScrunch": 0.35,
            "eye_cheekRaise": 0.15,
            "eyelashes_tweakerIn": 0.18,
            "eyelashes_tweakerOut": 0.18,
            "nose-translateY": 0.35,
            "nose_nasolabialDeepen": 0.22,
            "mouth_pressU": 0.2,
            "mouth_pressD": 0.2,
            "mouth_tightenU": 0.1,
            "mouth_tightenD": 0.1,
            "mouth_dimple": 0.1,
            "neck_stretch": 0.05,
        },
    ),
    _expression(
        "angry-snarl",
        ["furrowed", "narrowed-eyes", "sneer", "snarling", "bared"],
        {
            "brow_down": 0.6,
            "brow_lateral": 0.8,
            "eye_squintInner": 0.85,
            "eye_blink": -0.15,
            "eye_faceScrunch": 0.45,
            "eye_cheekRaise": 0.3,
            "nose-translateY": 0.5,
            "nose_nasolabialDeepen": 0.3,
            "mouth_upperLipRaise": 0.2,
            "mouth_lowerLipDepress": 0.15,
            "mouth_stretch": 0.1,
            "mouth_dimple": 0.15,
            "eyelashes_tweakerIn": 0.2,
            "eyelashes_tweakerOut": 0.2,
            "neck_stretch": 0.06,
        },
    ),
    _expression(
        "angry-seething",
        ["furrowed", "narrowed-eyes", "pressed-lips", "clenched", "tense"],
        {
            "brow_down": 0.45,
            "brow_lateral": 0.7,
            "eye_squintInner": 0.6,
            "eye_blink": 0.05,
            "eye_faceScrunch": 0.3,
            "nose-translateY": 0.25,
            "nose_nasolabialDeepen": 0.2,
            "mouth_pressU": 0.2,
            "mouth_pressD": 0.2,
            "mouth_tightenU": 0.2,
            "mouth_tightenD": 0.2,
            "jaw_chinCompress": 0.3,
            "jaw_clench": 0.12,
            "mouth_cornerDepress": 0.1,
            "neck_stretch": 0.1,
            "neck_mastoidContract": 0.08,
        },
    ),
    _expression(
        "angry-one-brow",
        ["furrowed", "narrowed-eyes", "lowered-brow", "skeptical", "glaring"],
        {
            "L.brow_down": 0.65,
            "R.brow_down": 0.25,
            "L.brow_lateral": 0.95,
            "R.brow_lateral": 0.5,
            "R.brow_raiseOut": 0.15,
            "L.eye_squintInner": 0.9,
            "R.eye_squintInner": 0.4,
            "eye_blink": -0.2,
            "L.eye_faceScrunch": 0.45,
            "R.eye_faceScrunch": 0.15,
            "nose-translateY": 0.3,
            "nose_nasolabialDeepen": 0.2,
            "mouth_pressU": 0.18,
            "mouth_pressD": 0.18,
            "L.mouth_dimple": 0.15,
            "R.mouth_dimple": 0.05,
        },
    ),
    _expression(
        "disgust-sneer",
        ["nose-wrinkled", "sneer", "narrowed-eyes", "furrowed", "repulsed"],
        {
            "nose_wrinkleUpper": 0.7,
            "nose-translateY": 0.5,
            "nose_nasolabialDeepen": 0.5,
            "mouth_upperLipRaise": 0.5,
            "mouth_lowerLipDepress": 0.2,
            "eye_squintInner": 0.45,
            "eye_cheekRaise": 0.35,
            "eye_faceScrunch": 0.3,
            "brow_down": 0.35,
            "brow_lateral": 0.3,
            "mouth_cornerDepress": 0.25,
        },
    ),
    _expression(
        "disgust-curl",
        ["nose-wrinkled", "sneer", "lip-curl", "one-sided", "contempt"],
        {
            "L.nose_wrinkleUpper": 0.75,
            "R.nose_wrinkleUpper": 0.15,
            "L.nose-translateY": 0.5,
            "L.nose_nasolabialDeepen": 0.6,
            "R.nose_nasolabialDeepen": 0.1,
            "L.mouth_upperLipRaise": 0.6,
            "R.mouth_upperLipRaise": 0.05,
            "L.eye_squintInner": 0.5,
            "R.eye_squintInner": 0.15,
            "L.eye_cheekRaise": 0.4,
            "L.brow_down": 0.4,
            "R.brow_down": 0.1,
            "L.mouth_sharpCornerPull": 0.2,
        },
    ),
    _expression(
        "disgust-recoil",
        ["frown", "pressed-lips", "pout", "furrowed", "nose-wrinkled"],
        {
            "brow_down": 0.4,
            "brow_lateral": 0.45,
            "nose_wrinkleUpper": 0.4,
            "nose-translateY": 0.3,
            "mouth_cornerDepress": 0.5,
            "jaw_ChinRaiseD": 0.45,
            "jaw_ChinRaiseU": 0.3,
            "mouth_pressU": 0.25,
            "mouth_pressD": 0.2,
            "eye_squintInner": 0.35,
            "eye_blink": 0.15,
            "CTRL_C_jaw_fwdBack-translateY": -0.1,
        },
    ),
    _expression(
        "fear-alarmed",
        ["raised-brows", "worried-brows", "wide-eyes", "stretched-lips", "tense", "neck-strain"],
        {
            "brow_raiseIn": 0.9,
            "brow_raiseOut": 0.45,
            "brow_lateral": 0.5,
            "eye_blink": -0.6,
            "eye_eyelidU": 0.2,
            "mouth_stretch": 0.45,
            "mouth_cornerDepress": 0.2,
            "mouth_lowerLipDepress": 0.2,
            "neck_stretch": 0.45,
            "neck_mastoidContract": 0.3,
            JAW: 0.1,
            "ear_up": 0.1,
        },
    ),
    _expression(
        "fear-tense",
        ["worried-brows", "wide-eyes", "pressed-lips", "stretched-lips", "tense"],
        {
            "brow_raiseIn": 0.7,
            "brow_lateral": 0.6,
            "brow_raiseOut": 0.15,
            "eye_blink": -0.35,
            "mouth_stretch": 0.3,
            "mouth_pressU": 0.25,
            "mouth_pressD": 0.25,
            "mouth_tightenU": 0.2,
            "mouth_tightenD": 0.2,
            "neck_stretch": 0.3,
            "jaw_chinCompress": 0.2,
        },
    ),
    _expression(
        "fear-cringe",
        ["worried-brows", "narrowed-eyes", "stretched-lips", "one-sided", "wince"],
        {
            "brow_raiseIn": 0.6,
            "brow_lateral": 0.55,
            "L.eye_squintInner": 0.6,
            "R.eye_squintInner": 0.25,
            "L.eye_blink": 0.25,
            "R.eye_blink": -0.2,
            "L.mouth_stretch": 0.55,
            "R.mouth_stretch": 0.2,
            "L.neck_stretch": 0.5,
            "R.neck_stretch": 0.2,
            "L.eye_cheekRaise": 0.3,
            "CTRL_C_mouth-translateX": -0.15,
        },
    ),
    _expression(
        "happy-smile",
        ["smile", "cheeks-raised", "narrowed-eyes", "warm"],
        {
            "mouth_cornerPull": 0.75,
            "mouth_sharpCornerPull": 0.15,
            "mouth_dimple": 0.35,
            "eye_cheekRaise": 0.6,
            "eye_squintInner": 0.25,
            "eye_blink": 0.12,
            "nose_nasolabialDeepen": 0.4,
            "brow_raiseOut": 0.1,
        },
    ),
    _expression(
        "happy-grin",
        ["smile", "grin", "cheeks-raised", "narrowed-eyes", "teeth"],
        {
            "mouth_cornerPull": 0.95,
            "mouth_sharpCornerPull": 0.3,
            "mouth_dimple": 0.45,
            "mouth_stretch": 0.2,
            "mouth_upperLipRaise": 0.25,
            "mouth_lowerLipDepress": 0.3,
            "eye_cheekRaise": 0.8,
            "eye_squintInner": 0.35,
            "eye_blink": 0.2,
            "nose_nasolabialDeepen": 0.55,
            JAW: 0.08,
            "brow_raiseOut": 0.15,
        },
    ),
    _expression(
        "happy-soft",
        ["slight-smile", "relaxed", "gentle", "warm"],
        {
            "mouth_cornerPull": 0.4,
            "mouth_dimple": 0.2,
            "eye_cheekRaise": 0.25,
            "eye_blink": 0.08,
            "nose_nasolabialDeepen": 0.15,
            "brow_raiseIn": 0.1,
            "brow_raiseOut": 0.1,
        },
    ),
    _expression(
        "happy-smirk",
        ["smirk", "raised-brow", "one-sided", "sly", "amused"],
        {
            "R.mouth_cornerPull": 0.75,
            "R.mouth_sharpCornerPull": 0.35,
            "R.mouth_dimple": 0.45,
            "L.mouth_cornerPull": 0.05,
            "R.eye_cheekRaise": 0.35,
            "R.eye_squintInner": 0.25,
            "R.nose_nasolabialDeepen": 0.3,
            "L.brow_raiseOut": 0.7,
            "L.brow_raiseIn": 0.35,
            "CTRL_C_mouth-translateX": -0.15,
        },
    ),
    _expression("neutral-rest", ["relaxed", "calm", "blank"], {}),
    _expression(
        "neutral-attentive",
        ["relaxed", "attentive", "alert"],
        {
            "brow_raiseIn": 0.12,
            "brow_raiseOut": 0.12,
            "eye_blink": -0.12,
        },
    ),
    _expression(
        "neutral-tired",
        ["relaxed", "lowered-lids", "tired", "calm"],
        {
            "eye_blink": 0.3,
            "brow_raiseIn": 0.05,
            "mouth_pressU": 0.05,
            "mouth_pressD": 0.05,
        },
    ),
    _expression(
        "sad-downcast",
        ["worried-brows", "frown", "lowered-lids", "downcast"],
        {
            "brow_raiseIn": 0.8,
            "brow_lateral": 0.35,
            "eye_blink": 0.3,
            "eye_squintInner": 0.2,
            "mouth_cornerDepress": 0.6,
            "mouth_stretch": 0.08,
            "jaw_ChinRaiseD": 0.3,
            GAZE_Y: -0.25,
        },
    ),
    _expression(
        "sad-pout",
        ["worried-brows", "frown", "pout", "pressed-lips"],
        {
            "brow_raiseIn": 0.6,
            "brow_lateral": 0.3,
            "eye_blink": 0.15,
            "mouth_cornerDepress": 0.55,
            "jaw_ChinRaiseD": 0.55,
            "jaw_ChinRaiseU": 0.4,
            "mouth_pressU": 0.3,
            "mouth_lowerLipDepress": 0.05,
            "CTRL_C_jaw_fwdBack-translateY": 0.1,
        },
    ),
    _expression(
        "sad-tearful",
        ["worried-brows", "narrowed-eyes", "frown", "cheeks-raised", "tearful"],
        {
            "brow_raiseIn": 0.95,
            "brow_lateral": 0.5,
            "eye_squintInner": 0.5,
            "eye_cheekRaise": 0.3,
            "eye_blink": 0.2,
            "mouth_cornerDepress": 0.7,
            "mouth_stretch": 0.25,
            "jaw_ChinRaiseD": 0.4,
            "nose_nasolabialDeepen": 0.3,
        },
    ),
    _expression(
        "sad-lopsided",
        ["worried-brows", "frown", "one-sided", "wistful"],
        {
            "L.brow_raiseIn": 0.85,
            "R.brow_raiseIn": 0.35,
            "L.brow_lateral": 0.4,
            "eye_blink": 0.2,
            "L.mouth_cornerDepress": 0.65,
            "R.mouth_cornerDepress": 0.2,
            "jaw_ChinRaiseD": 0.25,
        },
    ),
    _expression(
        "surprise-wide",
        ["raised-brows", "wide-eyes", "mouth-open", "astonished"],
        {
            "brow_raiseIn": 0.85,
            "brow_raiseOut": 0.9,
            "eye_blink": -0.6,
            "eye_eyelidU": 0.3,
            JAW: 0.3,
            "mouth_funnelU": 0.2,
            "mouth_funnelD": 0.2,
            "mouth_stretch": 0.1,
            "ear_up": 0.15,
        },
    ),
    _expression(
        "surprise-mild",
        ["raised-brows", "wide-eyes", "curious"],
        {
            "brow_raiseIn": 0.5,
            "brow_raiseOut": 0.55,
            "eye_blink": -0.35,
            JAW: 0.08,
        },
    ),
    _expression(
        "surprise-one-brow",
        ["raised-brow", "wide-eyes", "one-sided", "skeptical", "quizzical"],
        {
            "L.brow_raiseOut": 0.85,
            "L.brow_raiseIn": 0.6,
            "R.brow_raiseOut": 0.15,
            "R.brow_down": 0.2,
            "L.eye_blink": -0.45,
            "R.eye_blink": -0.05,
            "R.eye_squintInner": 0.2,
            JAW: 0.05,
            "L.mouth_stretch": 0.1,
        },
    ),
)

EXPRESSIONS: Mapping[str, Expression] = {expression.name: expression for expression in _LIBRARY}


def expressions_for(emotion: str) -> tuple[Expression, ...]:
    """The variants of one emotion, the default one first."""
    if emotion not in EMOTIONS:
        raise InputError(f"unknown emotion '{emotion}': use one of {', '.join(EMOTIONS)}")
    return tuple(e for e in _LIBRARY if e.emotion == emotion)


def get_expression(name: str) -> Expression:
    """An expression by variant name (``happy-smirk``) or emotion (``happy``: its default variant)."""
    if name in EXPRESSIONS:
        return EXPRESSIONS[name]
    if name in EMOTIONS:
        return expressions_for(name)[0]
    raise InputError(
        f"unknown expression '{name}': use an emotion ({', '.join(EMOTIONS)}) or a variant such as "
        f"{', '.join(list(EXPRESSIONS)[:4])} (see docs/teacher.md)"
    )


# ---------------------------------------------------------------------------------------------------
# Features: what a pose shows, detected from its control values, each with paraphrases.

Values = Mapping[str, float]


def _side(values: Values, short: str, side: str) -> float:
    return float(values.get(_sided(side, short), 0.0))


def _both(values: Values, short: str) -> tuple[float, float]:
    return _side(values, short, "L"), _side(values, short, "R")


def _mean(values: Values, short: str) -> float:
    return sum(_both(values, short)) / 2


def _high(values: Values, short: str) -> float:
    return max(_both(values, short))


def _one_sided(values: Values, short: str, low: float, high: float) -> bool:
    left, right = _both(values, short)
    return max(left, right) >= high and min(left, right) <= low


@dataclass(frozen=True)
class Feature:
    """A face feature: a test on control values and the phrases that say it."""

    name: str
    test: Callable[[Values], bool]
    phrases: tuple[str, ...]
    keywords: tuple[str, ...]


def _brow_raise(values: Values) -> float:
    return max(_mean(values, "brow_raiseOut"), 0.0)


FEATURES: tuple[Feature, ...] = (
    Feature(
        "smirk",
        lambda v: _one_sided(v, "mouth_cornerPull", 0.2, 0.4),
        (
            "smirking",
            "a smirk",
            "a lopsided smile",
            "one corner of the mouth pulled up",
            "a half smile",
            "a crooked smile",
        ),
        ("smirk", "smirking", "smirks", "lopsided", "crooked", "half smile", "half-smile", "one corner"),
    ),
    Feature(
        "grin",
        lambda v: min(_both(v, "mouth_cornerPull")) >= 0.85,
        ("grinning", "a broad grin", "a big toothy grin", "beaming"),
        ("grin", "grinning", "beaming", "toothy", "big smile", "broad"),
    ),
    Feature(
        "smile",
        lambda v: min(_both(v, "mouth_cornerPull")) >= 0.55,
        ("smiling", "a warm smile", "mouth corners pulled up", "a smile"),
        ("smile", "smiling", "smiles", "corners up", "happy", "cheerful"),
    ),
    Feature(
        "slight-smile",
        lambda v: 0.25 <= min(_both(v, "mouth_cornerPull")) < 0.55,
        ("a slight smile", "a faint smile", "a hint of a smile", "softly smiling"),
        ("slight smile", "faint", "hint", "soft", "gentle", "pleasant", "content"),
    ),
    Feature(
        "raised-brow",
        lambda v: _one_sided(v, "brow_raiseOut", 0.3, 0.6),
        ("raised brow", "one eyebrow raised", "an arched brow", "a cocked eyebrow", "one brow up"),
        ("raised brow", "eyebrow raised", "arched", "cocked", "one brow", "brow up", "eyebrow up"),
    ),
    Feature(
        "raised-brows",
        lambda v: min(_both(v, "brow_raiseOut")) >= 0.4,
        ("brows raised", "raised eyebrows", "eyebrows up", "eyebrows lifted high"),
        ("brows raised", "raised eyebrows", "eyebrows up", "brows up", "raised brows", "lifted"),
    ),
    Feature(
        "worried-brows",
        lambda v: _high(v, "brow_raiseIn") >= 0.55 and _brow_raise(v) < 0.5,
        ("inner brows raised", "worried brows", "brows drawn up in the middle", "a pained brow"),
        ("worried", "inner brow", "pained", "anxious", "concerned", "pleading"),
    ),
    Feature(
        "furrowed",
        lambda v: _high(v, "brow_down") >= 0.35,
        ("furrowed brow", "brows drawn together", "frowning brows", "knitted brows", "brows lowered"),
        (
            "furrowed",
            "furrow",
            "knitted",
            "brows together",
            "brows lowered",
            "scowl",
            "scowling",
            "frowning brow",
        ),
    ),
    Feature(
        "glare",
        # Lids raised and tightened at once (AU5 + AU7) read as one look, not "wide-eyed, narrowed eyes".
        lambda v: _high(v, "eye_squintInner") >= 0.4 and min(_both(v, "eye_blink")) <= -0.3,
        ("glaring", "a hard glare", "a fierce stare", "eyes glaring"),
        ("glare", "glaring", "glares", "stare", "staring hard", "fierce stare"),
    ),
    Feature(
        "narrowed-eyes",
        lambda v: _high(v, "eye_squintInner") >= 0.4,
        ("eyes narrowed", "squinting", "narrowed eyes", "a hard squint"),
        ("narrowed", "narrow", "squint", "squinting", "slitted"),
    ),
    Feature(
        "wide-eyes",
        lambda v: min(_both(v, "eye_blink")) <= -0.3,
        ("eyes wide", "wide-eyed", "eyes wide open", "staring eyes"),
        ("wide-eyed", "eyes wide", "wide eyes", "staring", "wide open", "eyes open"),
    ),
    Feature(
        "lowered-lids",
        lambda v: max(_both(v, "eye_blink")) >= 0.2 and _high(v, "eye_squintInner") < 0.4,
        ("heavy-lidded", "lids lowered", "drooping eyelids", "half-closed eyes"),
        ("heavy-lidded", "lids lowered", "drooping", "droopy", "half-closed", "sleepy", "tired"),
    ),
    Feature(
        "cheeks-raised",
        lambda v: _high(v, "eye_cheekRaise") >= 0.4,
        ("cheeks raised", "cheeks lifted", "crow's feet showing"),
        ("cheeks raised", "cheeks lifted", "crow's feet", "cheeks up"),
    ),
    Feature(
        "nose-wrinkled",
        lambda v: _high(v, "nose_wrinkleUpper") >= 0.3 or _high(v, "nose-translateY") >= 0.55,
        ("nose wrinkled", "a wrinkled nose", "nose scrunched"),
        ("nose wrinkled", "wrinkled nose", "scrunched", "wrinkle", "nose"),
    ),
    Feature(
        "sneer",
        lambda v: _high(v, "mouth_upperLipRaise") >= 0.2,
        ("upper lip raised", "sneering", "lip curled", "a sneer"),
        ("sneer", "sneering", "lip curled", "curled lip", "upper lip", "snarl", "snarling"),
    ),
    Feature(
        "pressed-lips",
        lambda v: _high(v, "mouth_pressU") >= 0.2 or _high(v, "mouth_tightenU") >= 0.2,
        ("lips pressed", "lips pressed together", "tight-lipped", "a thin-lipped mouth"),
        ("pressed", "tight-lipped", "thin-lipped", "tight lips", "lips together", "clenched"),
    ),
    Feature(
        "frown",
        lambda v: _high(v, "mouth_cornerDepress") >= 0.35,
        ("mouth corners turned down", "a frown", "a downturned mouth", "corners of the mouth drooping"),
        ("frown", "frowning", "downturned", "turned down", "corners down", "drooping mouth"),
    ),
    Feature(
        "pout",
        lambda v: _high(v, "jaw_ChinRaiseD") >= 0.4,
        ("pouting", "chin raised", "a pout", "a quivering chin"),
        ("pout", "pouting", "chin raised", "quivering", "trembling chin"),
    ),
    Feature(
        "stretched-lips",
        lambda v: _high(v, "mouth_stretch") >= 0.28,
        ("lips stretched", "mouth stretched wide", "a tense grimace", "lips pulled back"),
        ("stretched", "grimace", "grimacing", "pulled back", "tense mouth"),
    ),
    Feature(
        "mouth-open",
        lambda v: v.get(JAW, 0.0) >= 0.2,
        ("mouth open", "jaw dropped", "mouth agape", "an open mouth"),
        ("mouth open", "open mouth", "jaw dropped", "agape", "gaping", "jaw drop"),
    ),
    Feature(
        "neck-strain",
        lambda v: _high(v, "neck_stretch") >= 0.3,
        ("neck tense", "a strained neck", "neck tendons showing"),
        ("neck", "strained", "tendons"),
    ),
)

FEATURE_NAMES = tuple(feature.name for feature in FEATURES)
# Features implied by a stronger one are not said twice ("grinning, smiling").
_IMPLIED = {"grin": ("smile",), "glare": ("wide-eyes", "narrowed-eyes")}
_RELAXED = ("a relaxed face", "a neutral face", "a calm expression", "expressionless", "a blank look",
            "a composed face")  # fmt: skip
# Emotion words, for describing (sometimes) and for matching.
EMOTION_WORDS: Mapping[str, tuple[str, ...]] = {
    "angry": ("angry", "furious", "irritated", "annoyed", "mad", "enraged", "hostile", "cross"),
    "disgust": ("disgusted", "repulsed", "revolted", "grossed out", "contemptuous", "disdainful"),
    "fear": ("afraid", "scared", "frightened", "terrified", "fearful", "anxious", "nervous"),
    "happy": ("happy", "joyful", "cheerful", "pleased", "delighted", "amused", "glad"),
    "neutral": (
        "neutral",
        "calm",
        "composed",
        "relaxed",
        "impassive",
        "plain",
        "expressionless",
        "blank",
        "deadpan",
        "straight face",
    ),
    "sad": ("sad", "unhappy", "sorrowful", "gloomy", "downcast", "miserable", "grieving"),
    "surprise": ("surprised", "astonished", "amazed", "shocked", "startled", "stunned"),
}


def _as_values(pose: Expression | Values | np.ndarray, rig: RigSpec | None) -> Values:
    if isinstance(pose, Expression):
        return pose.controls
    if isinstance(pose, Mapping):
        return pose
    row = np.asarray(pose, dtype=np.float64).reshape(-1)
    if rig is None:
        from medtalk.plugins.rigs import metahuman_174

        rig = metahuman_174()
    if row.shape[0] != rig.num_controls:
        raise InputError(
            f"a pose of {row.shape[0]} values does not fit rig '{rig.name}' ({rig.num_controls} controls)"
        )
    values: dict[str, float] = {}
    for name, value in zip(rig.controls, row, strict=True):
        values[name] = float(value)  # a repeated name keeps its last column, as the teacher writes it
    return values


def expression_features(
    pose: Expression | Values | np.ndarray, rig: RigSpec | None = None
) -> tuple[str, ...]:
    """Names of the ``FEATURES`` a pose shows, in ``FEATURES`` order.

    ``pose``: an ``Expression`` (at full intensity), a mapping of full control names to values, or one
    row of ``rig`` values (metahuman-174 when ``rig`` is None), such as a ``TeacherTake.peak_pose``.
    """
    values = _as_values(pose, rig)
    shown = [feature.name for feature in FEATURES if feature.test(values)]
    for strong, weaker in _IMPLIED.items():
        if strong in shown:
            shown = [name for name in shown if name not in weaker]
    return tuple(shown)


def describe(
    pose: Expression | Values | np.ndarray,
    rng: np.random.Generator,
    rig: RigSpec | None = None,
    *,
    emotion: str | None = None,
    max_features: int = 3,
) -> str:
    """A short description of a pose in words: ``"smirking, one eyebrow raised"``.

    A random subset (1 to ``max_features``) of the features it shows, in random order, each by a random
    paraphrase, joined by commas or "and"; with ``emotion`` (or an ``Expression``'s own), sometimes an
    emotion word in front ("angry, brows drawn together"). A pose with no feature reads as relaxed.
    The same ``rng`` state gives the same text.
    """
    features = {feature.name: feature for feature in FEATURES}
    shown = list(expression_features(pose, rig))
    if emotion is None and isinstance(pose, Expression):
        emotion = pose.emotion
    if not shown:
        parts = [str(rng.choice(_RELAXED))]
    else:
        count = int(rng.integers(1, min(max_features, len(shown)) + 1))
        chosen = [shown[i] for i in rng.permutation(len(shown))[:count]]
        parts = [str(rng.choice(features[name].phrases)) for name in chosen]
    if emotion is not None and emotion in EMOTION_WORDS and rng.random() < 0.3:
        parts.insert(0, str(rng.choice(EMOTION_WORDS[emotion])))
    if len(parts) > 1 and rng.random() < 0.3:
        return ", ".join(parts[:-1]) + " and " + parts[-1]
    return ", ".join(parts)


_WORD = re.compile(r"[a-z']+")


def _mentions(text: str, phrase: str) -> bool:
    phrase = " ".join(_WORD.findall(phrase.lower()))
    return re.search(r"(?<![a-z])" + re.escape(phrase) + r"(?![a-z])", text) is not None


def match_description(text: str) -> Expression:
    """The library expression closest to a free-text description of a face (``"smirking, raised brow"``
    -> ``happy-smirk``): features and emotion words named in the text are scored against each
    expression's tags, detected features and emotion. Raises ``InputError`` when nothing matches."""
    lowered = " ".join(_WORD.findall(text.lower()))
    if not lowered:
        raise InputError(
            f"text guidance '{text}' has no words: describe the face, e.g. 'smirking, raised brow'"
        )
    named = {f.name for f in FEATURES if any(_mentions(lowered, k) for k in f.keywords + f.phrases)}
    # "a smile" also says "slight smile"'s word; a named stronger feature wins.
    if "smirk" in named:
        named -= {"smile", "slight-smile"}
    if "raised-brow" in named and not any(_mentions(lowered, k) for k in ("brows", "eyebrows")):
        named.discard("raised-brows")
    emotions = {e for e, words in EMOTION_WORDS.items() if any(_mentions(lowered, w) for w in words)}
    emotions |= {e for e in EMOTIONS if _mentions(lowered, e)}
    words = set(lowered.split())
    best: tuple[float, int] | None = None
    chosen = None
    for order, expression in enumerate(_LIBRARY):
        shown = set(expression_features(expression)) | set(expression.tags)
        score = 2.0 * len(named & shown) - 0.5 * len(named - shown)
        score += 1.5 * (expression.emotion in emotions)
        score += 0.5 * len(words & {t for tag in expression.tags for t in tag.split("-")} - {"eyes", "lips"})
        if named or emotions or score > 0:
            key = (score, -order)
            if best is None or key > best:
                best, chosen = key, expression
    if chosen is None or best is None or best[0] <= 0:
        raise InputError(
            f"text guidance '{text}' names no face feature or emotion the teacher knows: describe the face "
            "(e.g. 'smirking, raised brow', 'eyes narrowed, lips pressed') or name an emotion"
        )
    return chosen
