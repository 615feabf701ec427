"""Transcribers that take the words from the caller: ``given`` (text only) and ``pocketsphinx-align``
(forced alignment of the text to word and phone times with pocketsphinx's bundled en-us model)."""

from __future__ import annotations

import re
import threading
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from medtalk import hookimpl
from medtalk.core.audio import TARGET_SAMPLE_RATE
from medtalk.core.components import ComponentConfig, Transcriber
from medtalk.core.errors import ConfigError, InputError

if TYPE_CHECKING:
    import numpy as np

    from medtalk.core.audio import Audio
    from medtalk.core.types import Transcript

_TOKEN = re.compile(r"\S+")
_EDGE_PUNCTUATION = re.compile(r"^[^\w']+|[^\w']+$|^'+|'+$")
_PART = re.compile(r"[a-z']+|\d+(?:st|nd|rd|th)?")
_FRAMES_PER_SECOND = 100  # pocketsphinx's 10 ms frame shift
_PADDING_FRAMES = 10
_FILLERS = ("<s>", "</s>", "<sil>")
# Frames within this many dB of the loudest one count as speech, for the coverage check.
_SPEECH_FLOOR_DB = 30.0
_SILENCE_DBFS = -50.0


class GivenConfig(ComponentConfig):
    text: str | None = Field(
        default=None, description="Transcript used when the call gives none (the call's text wins)"
    )
    language: str | None = Field(
        default=None, description="Language code stored in the transcript, e.g. 'en'"
    )


class Given(Transcriber):
    """The transcript the user supplies, without times (no recognition, no alignment)."""

    name = "given"
    needs_text = True
    Config = GivenConfig
    config: GivenConfig

    def __call__(self, audio: Audio, text: str | None = None) -> Transcript:
        from medtalk.core.types import Transcript

        transcript = text if text is not None else self.config.text
        if transcript is None or not transcript.strip():
            raise InputError("given needs the transcript: pass --transcript TEXT (or set the config's text)")
        return Transcript(" ".join(transcript.split()), language=self.config.language)


class PocketsphinxAlignConfig(ComponentConfig):
    dictionary: Path | None = Field(
        default=None,
        description="Extra pronunciations, one 'word PH ON ES' line each in CMUdict's format; they are "
        "added to the bundled dictionary and win over it",
    )
    g2p: bool = Field(
        default=True,
        description="Pronounce words missing from the dictionaries with the bundled G2P model; off: such a "
        "word is an error naming it",
    )
    max_unaligned: float = Field(
        default=0.35,
        ge=0.0,
        le=1.0,
        description="Largest share of the audio's speech frames the alignment may leave to silence and "
        "noise before it is refused as not matching the transcript",
    )


class PocketsphinxAlign(Transcriber):
    """Forced alignment of a given English transcript to word and phone times (pocketsphinx, en-us)."""

    name = "pocketsphinx-align"
    needs_text = True
    Config = PocketsphinxAlignConfig
    config: PocketsphinxAlignConfig

    def __init__(self, config: PocketsphinxAlignConfig | None = None) -> None:
        super().__init__(config)
        self._decoder = None
        self._g2p = None
        self._extra: dict[str, str] = {}
        self._lock = threading.Lock()
        if self.config.dictionary is not None:
            self._extra = _read_dictionary(self.config.dictionary)

    def load(self):
        """Build the decoder once: the bundled en-us acoustic model and CMUdict, plus the extra words."""
        if self._decoder is None:
            try:
                from pocketsphinx import Decoder
            except ImportError as error:
                raise ConfigError(
                    "pocketsphinx-align needs pocketsphinx: pip install 'medtalk[embedded]'"
                ) from error
            # Spectral noise removal eats steady synthetic vowels and breaks their alignments.
            decoder = Decoder(lm=None, loglevel="FATAL", remove_noise=False)
            for word, phones in self._extra.items():
                decoder.add_word(word, phones, update=False)
            self._decoder = decoder
        return self._decoder

    def __call__(self, audio: Audio, text: str | None = None) -> Transcript:
        import numpy as np

        from medtalk.core.types import Phone, Transcript, Word

        if text is None or not text.strip():
            raise InputError("pocketsphinx-align needs the transcript: pass --transcript TEXT")
        if audio.sample_rate != TARGET_SAMPLE_RATE:
            raise ConfigError(
                f"pocketsphinx-align needs {TARGET_SAMPLE_RATE} Hz audio, got {audio.sample_rate} Hz: "
                "load it with load_audio"
            )
        words = transcript_words(text)
        if not words:
            raise InputError(f"pocketsphinx-align: the transcript {text!r} has no words to align")
        samples = np.asarray(audio.samples, dtype=np.float32)
        speech_frames = _speech_frames(samples)
        if not speech_frames.any():
            raise InputError("pocketsphinx-align: the audio is silent: give the recording of the transcript")
        # One bit of fixed noise, as pocketsphinx's dither would add, but the same on every pass and call:
        # digital silence would otherwise give -inf log energies.
        # The alignment starts and ends in silence (<s>, </s>), which needs frames of its own even when the
        # speech starts at the first sample: pad both ends, and take the padding off the times.
        padding = np.zeros(_PADDING_FRAMES * TARGET_SAMPLE_RATE // _FRAMES_PER_SECOND, dtype=np.float32)
        padded = np.concatenate([padding, samples, padding])
        dither = np.random.default_rng(0).integers(-1, 2, size=len(padded))
        pcm = np.clip(np.round(padded * 32767.0) + dither, -32768, 32767).astype(np.int16).tobytes()

        with self._lock:
            decoder = self.load()
            keys = [self._dictionary_key(original, key) for original, key in words]
            decoder.set_align_text(" ".join(keys))
            # (hyp() is read after the word pass only: after the phone pass, pocketsphinx 5.1 crashes on it.)
            hypothesis = decoder.hyp() if _decode(decoder, pcm) else None
            if hypothesis is None or hypothesis.hypstr.split() != keys:
                raise InputError(
                    "pocketsphinx-align: the transcript does not match the audio (the alignment found "
                    "no path through all its words): check that the transcript is what was said"
                )
            decoder.set_alignment()
            if not _decode(decoder, pcm):
                raise InputError(
                    "pocketsphinx-align: the phone alignment failed: check that the transcript is what "
                    "was said"
                )
            aligned = [
                (entry.name, [(phone.name, phone.start, phone.start + phone.duration) for phone in entry])
                for entry in decoder.get_alignment()
            ]

        word_times: list[Word] = []
        phones: list[Phone] = []
        covered = np.zeros(len(speech_frames), dtype=bool)
        duration_frames = len(speech_frames)
        index = 0

        def seconds(frame: int) -> float:
            return min(max(frame - _PADDING_FRAMES, 0), duration_frames) / _FRAMES_PER_SECOND

        for name, word_phones in aligned:
            is_word = name not in _FILLERS and not name.startswith("[")
            for symbol, begin, finish in word_phones:
                symbol = symbol.upper() if is_word else "SIL"
                if seconds(finish) <= seconds(begin):
                    continue
                if symbol == "SIL" and phones and phones[-1].symbol == "SIL":
                    phones[-1] = Phone("SIL", phones[-1].start, seconds(finish))
                else:
                    phones.append(Phone(symbol, seconds(begin), seconds(finish)))
            if is_word and word_phones:
                start, end = word_phones[0][1], word_phones[-1][2]
                word_times.append(Word(words[index][0], seconds(start), seconds(end)))
                covered[max(start - _PADDING_FRAMES, 0) : max(end - _PADDING_FRAMES, 0)] = True
                index += 1
        unaligned = float((speech_frames & ~covered).sum()) / float(speech_frames.sum())
        if unaligned > self.config.max_unaligned:
            raise InputError(
                f"pocketsphinx-align: {unaligned:.0%} of the speech is not covered by the transcript's words "
                f"(at most {self.config.max_unaligned:.0%} may be): check that the transcript is all that "
                "was said"
            )
        return Transcript(
            " ".join(text.split()), language="en", words=tuple(word_times), phones=tuple(phones)
        )

    def _dictionary_key(self, original: str, key: str) -> str:
        """The decoder's word for a transcript word; adds its pronunciation when the dictionary lacks it."""
        decoder = self._decoder
        if decoder.lookup_word(key) is not None:
            return key
        phones: list[str] = []
        for part in _PART.findall(key):
            if part[0].isdigit():
                from medtalk.g2p import spell_digits

                for spelled in spell_digits(part):
                    phones.extend(self._pronounce(original, spelled))
            else:
                phones.extend(self._pronounce(original, part))
        if not phones:
            raise InputError(f"pocketsphinx-align: cannot pronounce the word {original!r}")
        decoder.add_word(key, " ".join(phones), update=True)
        return key

    def _pronounce(self, original: str, part: str) -> list[str]:
        found = self._decoder.lookup_word(part)
        if found is not None:
            return found.split()
        if not self.config.g2p:
            raise InputError(
                f"pocketsphinx-align: the word {original!r} is not in the dictionary: add it to a "
                "dictionary file (config 'dictionary') or turn g2p on"
            )
        if self._g2p is None:
            from medtalk.g2p import NeuralG2P

            self._g2p = NeuralG2P()
        return self._g2p(part)


def transcript_words(text: str) -> list[tuple[str, str]]:
    """(word as written, dictionary key) for each word of a transcript: punctuation at the ends dropped,
    lower case, accents removed, apostrophes inside kept ("Don't" -> "don't"), hyphens and other inner
    punctuation turned into hyphens ("well-known", "and/or" -> "and-or")."""
    words = []
    for token in _TOKEN.findall(text):
        written = _EDGE_PUNCTUATION.sub("", token)
        decomposed = unicodedata.normalize("NFD", written.lower())
        key = "".join(character for character in decomposed if unicodedata.category(character) != "Mn")
        key = re.sub(r"[^a-z0-9']+", "-", key).strip("-")
        if re.search(r"[a-z0-9]", key):
            words.append((written, key))
    return words


def _decode(decoder, pcm: bytes) -> bool:
    """One full-utterance pass; False when the search ends without a result."""
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    try:
        decoder.end_utt()
    except RuntimeError:
        return False
    return True


def _speech_frames(samples: np.ndarray) -> np.ndarray:
    """Per 10 ms frame: whether it is within 30 dB of the loudest frame (and above -50 dBFS)."""
    import numpy as np

    hop = TARGET_SAMPLE_RATE // _FRAMES_PER_SECOND
    count = len(samples) // hop
    if count == 0:
        return np.zeros(0, dtype=bool)
    frames = samples[: count * hop].reshape(count, hop).astype(np.float64)
    level = 10.0 * np.log10(np.maximum((frames**2).mean(axis=1), 1e-12))
    return (level > level.max() - _SPEECH_FLOOR_DB) & (level > _SILENCE_DBFS)


def _read_dictionary(path: Path) -> dict[str, str]:
    """word -> "PH ON ES" from a CMUdict-format file (stress digits and "(2)" variants accepted)."""
    from medtalk.g2p import ARPABET

    if not path.is_file():
        raise ConfigError(f"pocketsphinx-align: no dictionary file at {path}: give a CMUdict-format file")
    entries: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields or line.startswith(";;;") or line.startswith("#"):
            continue
        phones = [re.sub(r"\d$", "", phone.upper()) for phone in fields[1:]]
        bad = [phone for phone in phones if phone not in ARPABET or phone == "SIL"]
        if not phones or bad:
            raise ConfigError(
                f"pocketsphinx-align: {path}:{number}: expected 'word PH ON ES' with ARPAbet phones"
                + (f", got {bad[0]!r}" if bad else "")
            )
        entries[re.sub(r"\(\d+\)$", "", fields[0].lower())] = " ".join(phones)
    return entries


@hookimpl
def register_transcribers(register):
    register(Given)
    register(PocketsphinxAlign)
