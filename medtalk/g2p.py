"""English grapheme-to-phoneme conversion for words missing from a pronunciation dictionary.

``NeuralG2P`` runs the small GRU encoder-decoder that ships inside the g2p-en package (Apache-2.0, trained
on CMUdict; ``checkpoint20.npz``, 29 letters -> 70 stressed ARPAbet symbols) with numpy, reading its
weights file directly: importing g2p-en itself would call ``nltk.download`` for a tagger and a copy of
CMUdict, which needs the network. Numbers are spelled out in English first (``spell_number``).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

from medtalk.core.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

# The 39 phones of the CMU dictionary, and SIL for a pause: the symbols of ``medtalk.core.types.Phone``.
ARPABET = frozenset(
    (
        "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH",
        "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V",
        "W", "Y", "Z", "ZH", "SIL",
    )
)  # fmt: skip

_GRAPHEMES = ["<pad>", "<unk>", "</s>", *"abcdefghijklmnopqrstuvwxyz"]
# The model's output symbols, in its order (g2p-en 2.1.0, G2p.phonemes).
_PHONEMES = [
    "<pad>", "<unk>", "<s>", "</s>",
    "AA0", "AA1", "AA2", "AE0", "AE1", "AE2", "AH0", "AH1", "AH2", "AO0", "AO1", "AO2", "AW0", "AW1", "AW2",
    "AY0", "AY1", "AY2", "B", "CH", "D", "DH", "EH0", "EH1", "EH2", "ER0", "ER1", "ER2", "EY0", "EY1", "EY2",
    "F", "G", "HH", "IH0", "IH1", "IH2", "IY0", "IY1", "IY2", "JH", "K", "L", "M", "N", "NG", "OW0", "OW1",
    "OW2", "OY0", "OY1", "OY2", "P", "R", "S", "SH", "T", "TH", "UH0", "UH1", "UH2", "UW", "UW0", "UW1",
    "UW2", "V", "W", "Y", "Z", "ZH",
]  # fmt: skip
_START, _END = 2, 3
_MAX_PHONES = 30

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_IRREGULAR_ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                       "nine": "ninth", "twelve": "twelfth"}  # fmt: skip
_ORDINAL = re.compile(r"^(\d+)(st|nd|rd|th)$")


def spell_number(number: int) -> list[str]:
    """English words of a non-negative integer: 42 -> ["forty", "two"], 1900 -> ["one", "thousand",
    "nine", "hundred"]."""
    if number < 0:
        return ["minus", *spell_number(-number)]
    if number < 20:
        return [_ONES[number]]
    if number < 100:
        tens, ones = divmod(number, 10)
        return [_TENS[tens], *([_ONES[ones]] if ones else [])]
    for scale, name in _SCALES:
        if number >= scale:
            high, rest = divmod(number, scale)
            return [*spell_number(high), name, *(spell_number(rest) if rest else [])]
    raise AssertionError("unreachable: every number >= 100 has a scale")


def spell_digits(token: str) -> list[str]:
    """Words of a token made of digits, or digits with an ordinal suffix ("3rd" -> ["third"])."""
    ordinal = _ORDINAL.match(token)
    words = spell_number(int(ordinal.group(1) if ordinal else token))
    if ordinal:
        last = words[-1]
        if last in _IRREGULAR_ORDINALS:
            last = _IRREGULAR_ORDINALS[last]
        elif last.endswith("y"):
            last = last[:-1] + "ieth"
        else:
            last += "th"
        words[-1] = last
    return words


def plain_letters(word: str) -> str:
    """Lower case, accents removed, only a-z left: what the neural model reads."""
    decomposed = unicodedata.normalize("NFD", word.lower())
    return "".join(character for character in decomposed if "a" <= character <= "z")


class NeuralG2P:
    """g2p-en's GRU model in numpy: a word -> ARPAbet phones without stress (``"zorblax"`` -> Z AO R ...)."""

    def __init__(self) -> None:
        self._weights: dict[str, np.ndarray] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, np.ndarray]:
        import importlib.util

        import numpy as np

        with self._lock:
            if self._weights is None:
                # find_spec locates the package without running its __init__ (which downloads NLTK data).
                spec = importlib.util.find_spec("g2p_en")
                if spec is None or not spec.submodule_search_locations:
                    raise ConfigError(
                        "the G2P for words missing from the dictionary needs g2p-en: "
                        "pip install 'medtalk[embedded]'"
                    )
                path = Path(next(iter(spec.submodule_search_locations))) / "checkpoint20.npz"
                if not path.is_file():
                    raise ConfigError(f"the G2P model is missing from g2p-en: no {path}: reinstall g2p-en")
                with np.load(path) as archive:
                    self._weights = {name: archive[name].astype(np.float32) for name in archive.files}
            return self._weights

    def __call__(self, word: str) -> list[str]:
        """Phones of one word of letters (other characters are dropped); [] when no letter is left."""
        import numpy as np

        letters = plain_letters(word)
        if not letters:
            return []
        weights = self._load()
        indices = [_GRAPHEMES.index(letter) for letter in letters] + [_GRAPHEMES.index("</s>")]
        hidden = np.zeros((1, weights["enc_w_hh"].shape[1]), dtype=np.float32)
        for index in indices:
            hidden = _gru_cell(weights["enc_emb"][[index]], hidden, weights, "enc")
        previous = _START
        phones: list[str] = []
        for _ in range(_MAX_PHONES):
            hidden = _gru_cell(weights["dec_emb"][[previous]], hidden, weights, "dec")
            previous = int((hidden @ weights["fc_w"].T + weights["fc_b"]).argmax())
            if previous == _END:
                break
            phones.append(_PHONEMES[previous].rstrip("012"))
        return [phone for phone in phones if not phone.startswith("<")]


def _gru_cell(x: np.ndarray, hidden: np.ndarray, weights: dict[str, np.ndarray], part: str) -> np.ndarray:
    """One step of a PyTorch-layout GRU (gates r, z, n stacked in that order)."""
    import numpy as np

    from_input = x @ weights[f"{part}_w_ih"].T + weights[f"{part}_b_ih"]
    from_hidden = hidden @ weights[f"{part}_w_hh"].T + weights[f"{part}_b_hh"]
    size = hidden.shape[1]
    reset_update = 1.0 / (1.0 + np.exp(-(from_input[:, : 2 * size] + from_hidden[:, : 2 * size])))
    reset, update = reset_update[:, :size], reset_update[:, size:]
    candidate = np.tanh(from_input[:, 2 * size :] + reset * from_hidden[:, 2 * size :])
    return (1.0 - update) * candidate + update * hidden
