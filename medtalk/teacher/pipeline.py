"""``TeacherPipeline``: the teacher behind the ``Pipeline`` call (audio + guidance -> RigSequence).

Phone times come from forced alignment of the transcript (``pocketsphinx-align``); without a transcript,
``faster-whisper`` recognises the words first. Guidance is ``label:NAME`` (that emotion's default
variant, or a variant name such as ``label:happy-smirk``) or ``text:"..."`` (``match_description``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from medtalk.core.errors import InputError

if TYPE_CHECKING:
    from medtalk.core.audio import Audio
    from medtalk.core.pipeline import Animation
    from medtalk.core.sequence import RigSequence
    from medtalk.core.types import Phone, Transcript, Word
    from medtalk.teacher.animate import Teacher, TeacherTake


class TeacherPipeline:
    """The procedural teacher with the call signature of ``medtalk.Pipeline``."""

    def __init__(
        self,
        teacher: Teacher | None = None,
        aligner: Any = None,
        recogniser: Any = None,
        seed: int | None = None,
    ) -> None:
        from medtalk.teacher.animate import Teacher

        self.teacher = teacher if teacher is not None else Teacher()
        self.rig = self.teacher.rig
        self.fps = self.teacher.config.fps
        self._aligner = aligner
        self._recogniser = recogniser
        self._g2p: Any = None
        self.seed = seed

    @property
    def aligner(self) -> Any:
        if self._aligner is None:
            from medtalk.core.plugins import build

            self._aligner = build("transcriber", {"type": "pocketsphinx-align"})
        return self._aligner

    @property
    def recogniser(self) -> Any:
        if self._recogniser is None:
            from medtalk.core.plugins import build

            self._recogniser = build("transcriber", {"type": "faster-whisper"})
        return self._recogniser

    def transcribe(self, audio: Audio, transcript: str | None = None) -> Transcript:
        """Words and phones with times: the transcript aligned; without one, the recognised words aligned.

        Where the aligner finds no path (a misrecognised word, or a synthetic voice it cannot follow), the
        words keep approximate times instead, with a ``MedtalkWarning``: the recogniser's word times, or,
        for a given transcript, its words spread over the speech by their number of phones; each word's
        dictionary phones then share its time (``phones_within_words``).
        """
        from medtalk.core.types import Transcript

        if transcript is not None and transcript.strip():
            try:
                return self.aligner(audio, transcript)
            except InputError as error:
                words = spread_words(transcript, audio, self._pronounce)
                _warn_approximate(error)
                phones = phones_within_words(words, self._pronounce)
                return Transcript(" ".join(transcript.split()), "en", tuple(words), tuple(phones))
        recognised = self.recogniser(audio)
        if not recognised.text.strip() or not recognised.words:
            raise InputError(
                "the teacher heard no words in the audio: give the transcript (--transcript TEXT)"
            )
        try:
            return self.aligner(audio, recognised.text)
        except InputError as error:
            _warn_approximate(error)
            phones = phones_within_words(recognised.words, self._pronounce)
            return Transcript(recognised.text, recognised.language, recognised.words, tuple(phones))

    def _pronounce(self, word: str) -> list[str]:
        """ARPAbet phones of a word: the aligner's dictionary, else the neural G2P."""
        from medtalk.plugins.alignment import transcript_words

        phones: list[str] = []
        for _, key in transcript_words(word):
            found = None
            if hasattr(self.aligner, "load"):
                found = self.aligner.load().lookup_word(key)
            if found is not None:
                phones += found.split()
                continue
            if self._g2p is None:
                from medtalk.g2p import NeuralG2P

                self._g2p = NeuralG2P()
            phones += self._g2p(key)
        return phones

    def take(
        self,
        audio: Audio | str | os.PathLike[str],
        guidance: str = "label:neutral",
        transcript: str | None = None,
        *,
        emotion_track: str | None = None,
        intensity: float = 1.0,
    ) -> TeacherTake:
        """The full ``TeacherTake`` (sequence, variant, frame intensity, peak pose) of a call."""
        return self._take(audio, guidance, transcript, emotion_track, intensity)[0]

    def animate(
        self,
        audio: Audio | str | os.PathLike[str],
        guidance: str | None = None,
        transcript: str | None = None,
        *,
        emotion_track: str | None = None,
        fps: float | None = None,
        intensity: float = 1.0,
    ) -> Animation:
        """``Pipeline.animate``'s contract: the sequence and the words it followed (``transcribed`` when
        the recogniser heard them). The teacher animates at its own frame rate only."""
        from medtalk.core.pipeline import Animation

        if fps is not None and fps != self.fps:
            raise InputError(f"the teacher animates at {self.fps:g} fps only: drop --fps")
        take, timed = self._take(audio, guidance or "label:neutral", transcript, emotion_track, intensity)
        return Animation(take.sequence, timed.text, transcript is None)

    def _take(
        self,
        audio: Audio | str | os.PathLike[str],
        guidance: str,
        transcript: str | None,
        emotion_track: str | None,
        intensity: float,
    ) -> tuple[TeacherTake, Transcript]:
        from medtalk.core.audio import Audio, load_audio
        from medtalk.core.pipeline import parse_guidance
        from medtalk.teacher.animate import parse_emotion_track
        from medtalk.teacher.expressions import get_expression, match_description

        modality, value = parse_guidance(guidance)
        if modality == "image":
            raise InputError(
                'the teacher takes label:NAME or text:"..." guidance, not image: use a trained model '
                "for image guidance"
            )
        expression = get_expression(value) if modality == "label" else match_description(value)
        keyframes = parse_emotion_track(emotion_track) if emotion_track is not None else None
        if not isinstance(audio, Audio):
            audio = load_audio(audio)
        if round(audio.duration * self.fps) < 1:
            raise InputError(
                f"the audio is too short for one frame at {self.fps:g} fps: give a longer recording"
            )
        timed = self.transcribe(audio, transcript)
        take = self.teacher.animate(
            timed.phones,
            timed.words,
            audio.duration,
            keyframes if keyframes is not None else expression.emotion,
            expression=expression,
            intensity=intensity,
            audio=audio,
            seed=self.seed,
        )
        return take, timed

    def __call__(
        self,
        audio: Audio | str | os.PathLike[str],
        guidance: str = "label:neutral",
        transcript: str | None = None,
        *,
        emotion_track: str | None = None,
        intensity: float = 1.0,
    ) -> RigSequence:
        """Animate ``audio`` (a path or ``Audio``) under ``guidance``; ``emotion_track``
        (``"0:neutral,1.5:angry@0.8"``) overrides the label over time, guidance still picking the variant
        of its emotion."""
        return self.take(
            audio, guidance, transcript, emotion_track=emotion_track, intensity=intensity
        ).sequence


VOWELS = frozenset(("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"))


def phones_within_words(words: Sequence[Word], pronounce: Callable[[str], list[str]]) -> list[Phone]:
    """Phones with times from word times alone: each word's phones (``pronounce``) share its span, vowels
    twice the time of consonants; pauses between words become ``SIL``."""
    from medtalk.core.types import Phone

    phones: list[Phone] = []
    previous_end = 0.0
    for word in sorted(words, key=lambda w: w.start):
        if word.start - previous_end > 0.03:
            phones.append(Phone("SIL", previous_end, word.start))
        symbols = [symbol.upper().rstrip("012") for symbol in pronounce(word.text)]
        span = max(word.end - word.start, 0.0)
        weights = [2.0 if symbol in VOWELS else 1.0 for symbol in symbols]
        start = word.start
        for symbol, weight in zip(symbols, weights, strict=True):
            length = span * weight / sum(weights)
            phones.append(Phone(symbol, start, start + length))
            start += length
        previous_end = max(previous_end, word.end)
    return phones


def _warn_approximate(error: Exception) -> None:
    import warnings

    from medtalk.core.errors import MedtalkWarning

    warnings.warn(
        f"{error} -- the teacher goes on with approximate word times, so its lip timing is rougher",
        MedtalkWarning,
        stacklevel=3,
    )


def spread_words(text: str, audio: Audio, pronounce: Callable[[str], list[str]]) -> list[Word]:
    """The words of ``text`` timed without an aligner: spread over the span from the first to the last
    loud frame of ``audio`` (within 35 dB of the loudest 10 ms), each in proportion to its phones."""
    import numpy as np

    from medtalk.core.types import Word
    from medtalk.plugins.alignment import transcript_words

    words = [written for written, _ in transcript_words(text)]
    if not words:
        raise InputError(f"the transcript {text!r} has no words: give what was said")
    hop = max(audio.sample_rate // 100, 1)
    samples = np.asarray(audio.samples, dtype=np.float64)
    frames = samples[: len(samples) // hop * hop].reshape(-1, hop)
    energy = 10 * np.log10((frames**2).mean(axis=1) + 1e-12) if len(frames) else np.zeros(0)
    loud = np.flatnonzero(energy > energy.max() - 35.0) if len(energy) and energy.max() > -90 else []
    if len(loud) == 0:
        raise InputError("the audio is silent: give the recording of the transcript")
    start, end = loud[0] * hop / audio.sample_rate, (loud[-1] + 1) * hop / audio.sample_rate
    weights = np.array([max(len(pronounce(word)), 1) for word in words], dtype=np.float64)
    edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    return [Word(word, float(a), float(b)) for word, a, b in zip(words, edges[:-1], edges[1:], strict=True)]
