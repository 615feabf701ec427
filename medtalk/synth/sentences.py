"""The synthetic corpus's sentences: a template grammar over a lexicon the project wrote itself.

Every word list and the template list come in two disjoint parts: ``train`` and ``heldout``. A training
sentence is built from training templates and training words only; a held-out sentence from held-out
templates and held-out words only. Every held-out word list holds words that appear nowhere in the
training part (neither in its lists nor in its templates' fixed text), and every template has at least
one slot, so no held-out sentence can ever equal a training sentence: a benchmark on held-out sentences
measures what the model makes of words it never heard in training.

The lexicon favours the sounds the lip benchmarks look at: the bilabials p, b, m (lips closed), the
rounded oo and w, and the tongue-tip l, th, t, d. Emotionally loaded adjectives, nouns and interjections
(each tagged with the emotion it carries) fill their own slots, so the teacher's word-driven intensity
has something to react to in most sentences.

Deterministic: ``make_sentence(rng, split)`` depends only on the generator's state.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

Split = Literal["train", "heldout"]
SPLITS: tuple[Split, ...] = ("train", "heldout")
# Raised whenever a list or template changes: a corpus records it, and refuses to resume across versions.
GRAMMAR_VERSION = 1

# Each entry: (training words, held-out words). Nouns are (singular, plural).
NAMES = (
    ("Paul", "Mary", "Bob", "Emma", "Tom", "Molly", "Ben", "Lila", "David", "Ruth", "Walter", "Beth",
     "Liam", "Maria", "Peter", "Wendy", "Matthew", "Tilda", "Bella", "Dan", "Maggie", "Todd", "Julia",
     "Owen", "Polly", "Sam"),
    ("Pam", "Martin", "Lucy", "Theo", "Woody", "Debbie", "Boris", "Della", "Milo", "Winnie"),
)  # fmt: skip
NOUNS = (
    (("book", "books"), ("boot", "boots"), ("spoon", "spoons"), ("balloon", "balloons"), ("pool", "pools"),
     ("table", "tables"), ("bottle", "bottles"), ("map", "maps"), ("plate", "plates"), ("pillow", "pillows"),
     ("window", "windows"), ("blanket", "blankets"), ("puppy", "puppies"), ("bubble", "bubbles"),
     ("tooth", "teeth"), ("letter", "letters"), ("ladder", "ladders"), ("boat", "boats"),
     ("lamp", "lamps"), ("mirror", "mirrors"), ("piano", "pianos"), ("moon", "moons"),
     ("wallet", "wallets"), ("model", "models"), ("muffin", "muffins"), ("doll", "dolls"),
     ("bell", "bells"), ("wheel", "wheels"), ("photo", "photos"), ("pumpkin", "pumpkins"),
     ("rumour", "rumours"), ("tool", "tools"), ("drum", "drums"), ("apple", "apples"),
     ("bubblegum", "bubblegums"), ("parcel", "parcels"), ("melon", "melons"), ("umbrella", "umbrellas")),
    (("broom", "brooms"), ("tulip", "tulips"), ("pebble", "pebbles"), ("wombat", "wombats"),
     ("thimble", "thimbles"), ("lollipop", "lollipops"), ("mammoth", "mammoths"), ("noodle", "noodles"),
     ("poodle", "poodles"), ("teapot", "teapots")),
)  # fmt: skip
ADJECTIVES = (
    ("blue", "old", "little", "wooden", "purple", "tall", "bumpy", "smooth", "tiny", "warm", "dull",
     "brown", "plump", "tidy", "bold", "pale", "wet", "metal", "cool", "rubber", "plain", "broad"),
    ("woolly", "dappled", "lumpy", "bulbous", "maroon", "tweed"),
)  # fmt: skip
VERBS = (  # (base, past), transitive
    (("move", "moved"), ("buy", "bought"), ("bring", "brought"), ("paint", "painted"),
     ("borrow", "borrowed"), ("open", "opened"), ("drop", "dropped"), ("build", "built"),
     ("polish", "polished"), ("pull", "pulled"), ("push", "pushed"), ("wash", "washed"),
     ("mend", "mended"), ("lift", "lifted"), ("hide", "hid"), ("lose", "lost"), ("keep", "kept"),
     ("throw", "threw"), ("bury", "buried"), ("touch", "touched"), ("measure", "measured"),
     ("pack", "packed"), ("wrap", "wrapped"), ("bite", "bit"), ("tell", "told")),
    (("whittle", "whittled"), ("fumble", "fumbled"), ("plunder", "plundered"), ("smuggle", "smuggled"),
     ("tumble", "tumbled"), ("nibble", "nibbled")),
)  # fmt: skip
PLACES = (
    ("by the pool", "in the kitchen", "behind the barn", "on the table", "under the bed",
     "at the museum", "in the bathroom", "near the old mill", "at the bottom of the well", "on the bus",
     "in the library", "by the window", "at the market", "in the big room", "up the hill",
     "down by the river", "at the bakery", "in my room", "on the boat", "at the party"),
    ("beside the lagoon", "in the pantry", "among the tombstones", "at the planetarium",
     "beneath the lighthouse", "in the igloo"),
)  # fmt: skip
PAST_TIMES = (
    ("this morning", "last Tuesday", "on Monday", "at lunchtime", "last summer", "at midnight",
     "two weeks ago", "yesterday", "in the afternoon", "after dinner", "a month ago"),
    ("at twilight", "on Thursday", "during the monsoon", "at dawn"),
)  # fmt: skip
FUTURE_TIMES = (
    ("tomorrow", "on Monday", "at lunchtime", "before the weekend", "in a moment", "by tonight",
     "after dinner", "later today", "at midnight", "in the afternoon", "next week"),
    ("at twilight", "on Thursday", "next autumn", "at dawn"),
)  # fmt: skip
NUMBERS = (
    ("two", "three", "five", "ten", "twelve", "twenty", "a lot of", "a bunch of", "some", "too many"),
    ("umpteen", "thirteen", "ninety"),
)  # fmt: skip
PEOPLE = (  # common nouns for people, singular
    ("teacher", "doctor", "plumber", "baby", "mother", "builder", "lawyer", "pilot", "waiter", "boss",
     "neighbour", "baker"),
    ("lumberjack", "mailman", "milliner", "tuba player"),
)  # fmt: skip

# Emotional words, all of them keys of the teacher's EMOTIONAL_WORDS (which gives their emotion), so the
# teacher's word-driven intensity has a peak to render in most sentences. Adjectives for things ("the
# boat was filthy"), adjectives for how someone feels ("Bob was furious"), nouns, and interjections.
EMOTIONAL_ADJECTIVES = (
    ("outrageous", "ridiculous", "unfair", "disgusting", "gross", "filthy", "nasty", "rotten",
     "frightening", "wonderful", "amazing", "fantastic", "beautiful", "great", "perfect",
     "brilliant", "lovely", "sad", "empty", "hopeless", "unbelievable", "incredible", "unexpected",
     "impossible"),
    ("unacceptable", "infuriating", "revolting", "vile", "sickening", "putrid", "repulsive", "foul",
     "excellent", "astonishing"),
)  # fmt: skip
FEELINGS = (
    ("furious", "angry", "mad", "scared", "afraid", "terrified", "delighted", "happy", "lonely",
     "heartbroken", "shocked", "alone"),
    ("livid", "betrayed", "trapped"),
)  # fmt: skip
EMOTIONAL_NOUNS = (
    ("disgrace", "hate", "horror", "danger", "panic", "joy", "fun", "love", "surprise", "stink"),
    ("rage", "slime", "grief"),
)  # fmt: skip
INTERJECTIONS = (
    ("Damn", "Enough", "Stop", "Yuck", "Help", "Wow", "Seriously", "Thanks", "Sorry", "What"),
    ("Whoa", "Congratulations", "Goodbye"),
)  # fmt: skip

# Templates: {slot} names a list; a digit after the name ({name2}) draws another entry of the same list,
# different from the first. Slots: name, noun (the noun), a_noun (a/an + noun), nouns (plural), adj,
# verb (base), verbed (past), place, past and future (times), num, person, emo_adj, feeling, emo_noun,
# interj.
TEMPLATES = (
    (
        "{name} {verbed} the {noun} {place}.",
        "Maybe we should {verb} the {adj} {noun} {future}.",
        "{interj}, that {noun} was {emo_adj}!",
        "Did {name} really {verb} the {noun} {place}?",
        "I think the {adj} {noun} looks {emo_adj}.",
        "{name} and {name2} met {place} to {verb} {a_noun}.",
        "Please put the {noun} {place} and wait for me.",
        "We bought {num} {adj} {nouns} {place} {past}.",
        "It was {emo_adj} to watch {name} {verb} the {noun}.",
        "Why would anybody {verb} the {noun} {place}?",
        "The {noun} by the door is {emo_adj}, and {name} knows it.",
        "{name} told me the whole thing was pure {emo_noun}.",
        "Look at the {adj} {noun}, it is {emo_adj}!",
        "The {person} {verbed} {num} {nouns} {past}.",
        "{interj}! The {person} left the {noun} {place} again.",
        "You promised to {verb} my {noun} {future}, {name}.",
        "My mother was {feeling} when the {noun} broke.",
        "Nobody wanted to {verb} the {adj} {nouns}, but {name} did.",
        "Oh, the {emo_noun}! The {person} {verbed} the {noun}.",
        "We will meet the {person} {place} {future}.",
        "I am so {feeling}, the {person} {verbed} my {noun}.",
        "{name} bumped into the {person} {place}.",
        "Tell {name} the {noun} was {emo_adj}.",
        "There were {num} {nouns} {place}, all of them {adj}.",
        "{interj}, {name}, you {verbed} my {adj} {noun}!",
        "The {adj} {noun} belongs to the {person}, not to {name}.",
        "I would love to {verb} {a_noun} with you {future}.",
        "Be careful with the {noun}, it is {emo_adj}.",
        "{name} felt {feeling} {place} {past}.",
        "Put both {nouns} back {place} when you are done.",
        "The {person} said that {num} {nouns} went missing {past}.",
        "Honestly, {name}, this {noun} is pure {emo_noun}.",
        "Why was the {person} so {feeling} about the {noun}?",
    ),
    (
        "{name} {verbed} a {adj} {noun} {place} {past}.",
        "Would you {verb} the {noun} for the {person}?",
        "{interj}, the {nouns} {place} are {emo_adj}!",
        "The {person} felt {feeling} and {verbed} the {noun}.",
        "Apparently {num} {nouns} tumbled out {past}, pure {emo_noun}.",
        "{name} whispered that the {noun} looked {emo_adj}.",
    ),
)

_SLOT = re.compile(r"\{([a-z_]+?)(\d?)\}")
_VOWEL_SOUND = re.compile(r"^[aeiou]", re.IGNORECASE)


def _part(pair, split: Split):
    return pair[SPLITS.index(split)]


def _choices(split: Split) -> dict[str, list[str]]:
    """Slot -> its words for ``split``."""
    nouns = _part(NOUNS, split)
    verbs = _part(VERBS, split)
    return {
        "name": list(_part(NAMES, split)),
        "noun": [singular for singular, _ in nouns],
        "a_noun": [f"{'an' if _VOWEL_SOUND.match(s) else 'a'} {s}" for s, _ in nouns],
        "nouns": [plural for _, plural in nouns],
        "adj": list(_part(ADJECTIVES, split)),
        "verb": [base for base, _ in verbs],
        "verbed": [past for _, past in verbs],
        "place": list(_part(PLACES, split)),
        "past": list(_part(PAST_TIMES, split)),
        "future": list(_part(FUTURE_TIMES, split)),
        "num": list(_part(NUMBERS, split)),
        "person": list(_part(PEOPLE, split)),
        "emo_adj": list(_part(EMOTIONAL_ADJECTIVES, split)),
        "feeling": list(_part(FEELINGS, split)),
        "emo_noun": list(_part(EMOTIONAL_NOUNS, split)),
        "interj": list(_part(INTERJECTIONS, split)),
    }


_CHOICES = {split: _choices(split) for split in SPLITS}


def templates(split: Split) -> tuple[str, ...]:
    return _part(TEMPLATES, split)


def slot_words(split: Split) -> dict[str, list[str]]:
    """Slot name -> the words (or phrases) that fill it in ``split`` (a copy)."""
    return {slot: list(words) for slot, words in _CHOICES[split].items()}


def emotional_words(split: Split | None = None) -> list[str]:
    """The lower-case emotional words the grammar draws (of one split, or both), in list order."""
    lists = (EMOTIONAL_ADJECTIVES, FEELINGS, EMOTIONAL_NOUNS, INTERJECTIONS)
    splits = SPLITS if split is None else (split,)
    return [word.lower() for part in splits for pair in lists for word in _part(pair, part)]


def make_sentence(rng: np.random.Generator, split: Split = "train") -> str:
    """A sentence of ``split``, drawn with ``rng``: a template, then each slot in order of appearance."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    template_list = templates(split)
    template = template_list[int(rng.integers(len(template_list)))]
    choices = _CHOICES[split]
    drawn: dict[str, dict[str, int]] = {}

    def fill(match: re.Match[str]) -> str:
        slot, number = match.group(1), match.group(2)
        words = choices[slot]
        taken = drawn.setdefault(slot, {})
        key = f"{slot}{number}"
        if key not in taken:
            others = [index for index in range(len(words)) if index not in taken.values()]
            taken[key] = others[int(rng.integers(len(others)))]
        return words[taken[key]]

    sentence = _SLOT.sub(fill, template)
    return sentence[0].upper() + sentence[1:]
