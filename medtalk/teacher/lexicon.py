"""Emotionally strong English words: the teacher raises the expression's intensity where one is spoken,
and the corpus sentence grammar draws from them so the training data has such peaks.

Every word is lower case, one token, and maps to one of the seven emotions of
``medtalk.core.data.samples.EMOTIONS``. Neutral words that are merely emphatic (``never``, ``really``)
map to ``neutral``: they lift the intensity of whatever emotion is shown without suggesting one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_WORDS: dict[str, tuple[str, ...]] = {
    "angry": (
        "furious", "hate", "outrageous", "unacceptable", "disgrace", "liar", "enough", "stop",
        "damn", "infuriating", "ridiculous", "rage", "angry", "mad", "livid", "betrayed", "unfair",
        "shut", "idiot", "never",
    ),
    "disgust": (
        "disgusting", "gross", "revolting", "filthy", "nasty", "rotten", "vile", "sickening",
        "yuck", "stink", "slime", "putrid", "repulsive", "foul",
    ),
    "fear": (
        "afraid", "scared", "terrified", "danger", "help", "run", "hide", "monster", "dark",
        "panic", "threat", "frightening", "horror", "nightmare", "alone", "trapped",
    ),
    "happy": (
        "wonderful", "love", "amazing", "fantastic", "beautiful", "delighted", "great", "happy",
        "joy", "perfect", "brilliant", "celebrate", "lovely", "thanks", "congratulations", "excellent",
        "fun", "laugh",
    ),
    "neutral": ("really", "very", "absolutely", "completely", "totally", "must", "important"),
    "sad": (
        "sorry", "lost", "miss", "alone", "cry", "tears", "gone", "funeral", "lonely", "sad",
        "heartbroken", "grief", "died", "goodbye", "empty", "hopeless",
    ),
    "surprise": (
        "wow", "suddenly", "unbelievable", "incredible", "shocked", "surprise", "what", "really",
        "astonishing", "unexpected", "whoa", "seriously", "impossible",
    ),
}  # fmt: skip

# A word listed under two emotions keeps the first (alphabetical) one, so the table is one-to-one.
EMOTIONAL_WORDS: Mapping[str, str] = {}
for _emotion, _words in _WORDS.items():
    for _word in _words:
        EMOTIONAL_WORDS.setdefault(_word, _emotion)  # type: ignore[attr-defined]

_EDGES = re.compile(r"^[^a-z']+|[^a-z']+$")


def word_emotion(word: str) -> str | None:
    """The emotion a spoken word carries (``"Furious!"`` -> ``"angry"``), or None for an ordinary word."""
    return EMOTIONAL_WORDS.get(_EDGES.sub("", word.lower()))
