"""The procedural teacher: phones with times + an emotion (or an emotion track) -> a metahuman-174 take.

Composition, per frame: the viseme curves on the mouth, jaw and tongue (``visemes.viseme_track``); the
expression on every control it sets, scaled by the frame-wise intensity, its mouth part eased while
the mouth articulates so speech still reads; the lips closed over every p/b/m; blinks at log-normal
intervals and small gaze saccades; everything clamped to the rig's ranges. Deterministic for a seed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from medtalk.core.components import ComponentConfig
from medtalk.core.errors import InputError
from medtalk.teacher.expressions import EMOTIONS, Expression, expressions_for, get_expression
from medtalk.teacher.lexicon import word_emotion
from medtalk.teacher.visemes import (
    JAW,
    close_lips,
    closure_envelope,
    column,
    control_names,
    frame_times,
    viseme_track,
)

if TYPE_CHECKING:
    from medtalk.core.audio import Audio
    from medtalk.core.rig import RigSpec
    from medtalk.core.sequence import RigSequence
    from medtalk.core.types import Phone, Word

RIG_NAME = "metahuman-174"


@dataclass(frozen=True)
class Keyframe:
    """At ``time`` seconds the face shows ``emotion`` at ``strength`` (0..1); between keyframes it blends."""

    time: float
    emotion: str
    strength: float = 1.0


EmotionKeyframes = Sequence[Keyframe]

_TRACK_EXAMPLE = "e.g. 0:neutral,1.5:angry@0.8,3:happy"


def parse_emotion_track(text: str) -> list[Keyframe]:
    """``"0:neutral,1.5:angry@0.8,3:happy"`` -> keyframes: comma-separated ``TIME:EMOTION[@STRENGTH]``,
    times in seconds, increasing, strength 0..1 (default 1). Bad syntax raises a one-line ``InputError``."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or not all(items):
        raise InputError(f"emotion track '{text}' has an empty keyframe: give TIME:EMOTION[@STRENGTH] items, "
                         f"{_TRACK_EXAMPLE}")  # fmt: skip
    keyframes: list[Keyframe] = []
    for item in items:
        time_text, separator, rest = item.partition(":")
        if not separator:
            raise InputError(
                f"emotion track keyframe '{item}' is not TIME:EMOTION[@STRENGTH]: {_TRACK_EXAMPLE}"
            )
        emotion, at, strength_text = (part.strip() for part in rest.partition("@"))
        try:
            time = float(time_text)
        except ValueError:
            raise InputError(
                f"emotion track keyframe '{item}': time '{time_text.strip()}' is not a number of seconds: "
                f"{_TRACK_EXAMPLE}"
            ) from None
        if not math.isfinite(time) or time < 0:
            raise InputError(
                f"emotion track keyframe '{item}': time {time_text.strip()} must be 0 or more seconds"
            )
        if emotion not in EMOTIONS:
            raise InputError(
                f"emotion track keyframe '{item}': unknown emotion '{emotion}': "
                f"use one of {', '.join(EMOTIONS)}"
            )
        strength = 1.0
        if at:
            try:
                strength = float(strength_text)
            except ValueError:
                strength = float("nan")
            if not 0.0 <= strength <= 1.0:
                raise InputError(
                    f"emotion track keyframe '{item}': strength '{strength_text}' is not a number "
                    "from 0 to 1: e.g. angry@0.8"
                )
        if keyframes and time <= keyframes[-1].time:
            raise InputError(
                f"emotion track keyframe '{item}' is not after the one before it ({keyframes[-1].time:g} s): "
                "list keyframes in increasing time"
            )
        keyframes.append(Keyframe(time, emotion, strength))
    return keyframes


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def emotion_weights(
    keyframes: EmotionKeyframes, num_frames: int, fps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame emotion label weights (num_frames, 7; each row sums to 1, columns in ``EMOTIONS`` order)
    and strengths (num_frames,). Before the first keyframe and after the last the face holds it; between
    two keyframes both the label weights and the strength ease from one to the next (smoothstep)."""
    if not keyframes:
        raise InputError(f"the emotion track has no keyframes: give at least one, {_TRACK_EXAMPLE}")
    times = frame_times(num_frames, fps)
    keys = sorted(keyframes, key=lambda k: k.time)
    onehots = np.zeros((len(keys), len(EMOTIONS)))
    for row, key in enumerate(keys):
        if key.emotion not in EMOTIONS:
            raise InputError(f"unknown emotion '{key.emotion}': use one of {', '.join(EMOTIONS)}")
        onehots[row, EMOTIONS.index(key.emotion)] = 1.0
    strengths = np.array([float(k.strength) for k in keys])
    key_times = np.array([float(k.time) for k in keys])
    # Index of the keyframe before each frame, and how far the frame is towards the next one.
    before = np.clip(np.searchsorted(key_times, times, side="right") - 1, 0, len(keys) - 1)
    after = np.minimum(before + 1, len(keys) - 1)
    gap = np.maximum(key_times[after] - key_times[before], 1e-9)
    progress = np.where(after > before, _smoothstep((times - key_times[before]) / gap), 0.0)
    progress = np.where(times < key_times[0], 0.0, progress)
    weights = (1 - progress)[:, None] * onehots[before] + progress[:, None] * onehots[after]
    strength = (1 - progress) * strengths[before] + progress * strengths[after]
    return weights, strength


class TeacherConfig(ComponentConfig):
    fps: float = Field(default=60.0, gt=0, le=240, description="Frames per second of the takes")
    seed: int = Field(
        default=0, description="Seed of variant choice, blinks, gaze and drift when a call gives none"
    )
    coarticulation: float = Field(
        default=1.0,
        ge=0,
        le=3,
        description="How far each phone's mouth shape reaches into its neighbours (0: none)",
    )
    coarticulation_spread_s: float = Field(
        default=0.04,
        gt=0,
        le=0.5,
        description="Fall-off time constant of a phone's dominance at coarticulation 1, s",
    )
    expression_intensity: float = Field(
        default=1.0, ge=0, le=2, description="Scale of every expression (times the call's intensity)"
    )
    intensity_base: float = Field(
        default=0.8, ge=0, le=1.5, description="Frame intensity before prosody and emotional words add to it"
    )
    prosody_weight: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="How much loudness and pitch (or speaking, without audio) move the intensity",
    )
    word_emphasis: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="Intensity added around an emotionally strong word (lexicon.EMOTIONAL_WORDS)",
    )
    intensity_max: float = Field(default=1.15, gt=0, le=2, description="Frame intensity is clipped to this")
    mouth_expression_in_speech: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Share of the expression's mouth part kept while the mouth is open",
    )
    blink_interval_log_mean: float = Field(
        default=math.log(3.5),
        description="Mean of log(seconds between blinks) (log-normal; median exp of it)",
    )
    blink_interval_log_sigma: float = Field(
        default=0.45, gt=0, le=2, description="Standard deviation of log(seconds between blinks)"
    )
    blink_min_interval_s: float = Field(default=0.6, ge=0, description="Shortest time between two blinks, s")
    blink_duration_min_s: float = Field(
        default=0.10, gt=0, le=1, description="Shortest blink (lids closing and opening), s"
    )
    blink_duration_max_s: float = Field(default=0.15, gt=0, le=1, description="Longest blink, s")
    saccade_interval_log_mean: float = Field(
        default=math.log(0.9), description="Mean of log(seconds the gaze holds between saccades)"
    )
    saccade_interval_log_sigma: float = Field(
        default=0.5, gt=0, le=2, description="Std of log(gaze hold seconds)"
    )
    saccade_amplitude: float = Field(
        default=0.04, ge=0, le=0.5, description="Std of the gaze offset on CTRL_C_eye X and Y (rig units)"
    )
    saccade_duration_s: float = Field(default=0.05, gt=0, le=0.5, description="How long a saccade takes, s")


@dataclass(frozen=True, eq=False)
class TeacherTake:
    """One rendered take: the sequence and what was rendered.

    ``sequence``: round(duration * fps) frames of metahuman-174. ``expression``: the variant name (of the
    dominant emotion, for an emotion track). ``emotion``: that variant's emotion. ``intensity``: (T,)
    frame-wise expression intensity (the call's intensity times prosody and word emphasis, times the
    track's strength). ``peak_pose``: (174,) the expression at the call's intensity, as it would be
    rendered with no speech, blink or gaze: for ``describe`` and for its ARKit vector.
    """

    sequence: RigSequence
    expression: str
    emotion: str
    intensity: np.ndarray
    peak_pose: np.ndarray

    def peak_arkit(self) -> np.ndarray:
        """(52,) float32: ``peak_pose`` retargeted to ARKit's blendshapes (the built-in mapping), the
        vector a face-blendshapes image encoder would give for a photo of this expression."""
        from medtalk.core.retarget import retarget
        from medtalk.core.sequence import RigSequence

        pose = RigSequence(self.peak_pose[None], fps=self.sequence.fps, rig=self.sequence.rig)
        return np.asarray(retarget(pose, "arkit-52", _arkit_mapping()).values[0], dtype=np.float32)


@functools.cache
def _arkit_mapping():
    # Parsed once: reading the mapping's YAML takes longer than rendering a take.
    from medtalk.core.retarget import builtin_mapping

    return builtin_mapping(RIG_NAME, "arkit-52")


def _smooth(values: np.ndarray, frames: int) -> np.ndarray:
    if frames <= 1 or len(values) == 0:
        return values
    kernel = np.hanning(frames + 2)[1:-1]
    kernel /= kernel.sum()
    padded = np.pad(values, (frames, frames), mode="edge")
    return np.convolve(padded, kernel, mode="same")[frames:-frames]


def prosody_track(audio: Audio, num_frames: int, fps: float) -> np.ndarray:
    """(num_frames,) in -1..1: loudness (RMS dB) and pitch (autocorrelation) of ``audio`` per frame, each
    standardised over the speaking frames, mixed 60/40 and smoothed over ~150 ms; 0 in silence."""
    samples = np.asarray(audio.samples, dtype=np.float64)
    rate = audio.sample_rate
    hop = rate / fps
    window = int(round(0.04 * rate))
    starts = np.clip(
        (np.arange(num_frames) * hop - window / 2).astype(np.int64), 0, max(len(samples) - window, 0)
    )
    padded = np.pad(samples, (0, max(window - len(samples), 0)))
    frames = padded[starts[:, None] + np.arange(window)[None, :]] * np.hanning(window)
    energy_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-10)
    speaking = energy_db > energy_db.max() - 35.0
    if speaking.sum() < 2:
        return np.zeros(num_frames)

    def standardised(x: np.ndarray, where: np.ndarray) -> np.ndarray:
        if where.sum() < 2:
            return np.zeros_like(x)
        centred = (x - x[where].mean()) / (x[where].std() + 1e-6)
        return np.where(where, centred, 0.0)

    size = 1 << (2 * window - 1).bit_length()
    spectrum = np.fft.rfft(frames, size, axis=1)
    autocorrelation = np.fft.irfft(np.abs(spectrum) ** 2, size, axis=1)[:, :window]
    low, high = int(rate / 400), min(int(rate / 60), window - 1)
    lags = autocorrelation[:, low:high]
    best = lags.argmax(axis=1)
    clarity = lags.max(axis=1) / (autocorrelation[:, 0] + 1e-10)
    voiced = speaking & (clarity > 0.4)
    pitch = np.log(rate / (best + low))
    mix = 0.6 * standardised(energy_db, speaking) + 0.4 * standardised(pitch, voiced)
    return np.clip(_smooth(mix, max(int(0.15 * fps), 1)) / 2, -1.0, 1.0)


def word_emphasis_track(words: Sequence[Word], emotion_weights_: np.ndarray, fps: float) -> np.ndarray:
    """(T,) in 0..1: a bump from 0.1 s before to 0.3 s after each emotionally strong word, full where the
    word's emotion is the one shown (its weight), half for another emotion's word or an emphatic one."""
    num_frames = len(emotion_weights_)
    times = frame_times(num_frames, fps)
    track = np.zeros(num_frames)
    for word in words:
        emotion = word_emotion(word.text)
        if emotion is None:
            continue
        inside = (times >= word.start - 0.1) & (times <= word.end + 0.3)
        if not inside.any():
            continue
        shown = emotion_weights_[inside, EMOTIONS.index(emotion)]
        bump = 0.5 + 0.5 * shown
        rise = _smoothstep((times[inside] - (word.start - 0.1)) / 0.15)
        fall = _smoothstep(((word.end + 0.3) - times[inside]) / 0.25)
        track[inside] = np.maximum(track[inside], bump * np.minimum(rise, fall))
    return track


class Teacher:
    """The procedural facial animator on metahuman-174 (see docs/teacher.md)."""

    Config = TeacherConfig

    def __init__(self, config: TeacherConfig | None = None, rig: RigSpec | None = None) -> None:
        from medtalk.plugins.rigs import metahuman_174

        self.config = config if config is not None else TeacherConfig()
        self.rig = rig if rig is not None else metahuman_174()
        if self.rig.name != RIG_NAME:
            raise InputError(
                f"the teacher animates rig '{RIG_NAME}', not '{self.rig.name}': retarget its takes"
            )
        lip = np.zeros(self.rig.num_controls, dtype=bool)
        lip[list(self.rig.index_set("lip"))] = True
        self._lip = lip
        self._blinks = np.array([column(self.rig, n) for n in control_names("eye_blink")])
        self._gaze = np.array([column(self.rig, f"CTRL_C_eye-translate{axis}") for axis in "XY"])
        self._jaw = column(self.rig, JAW)
        lows, highs = np.array(self.rig.ranges).T
        self._low, self._high = lows.astype(np.float32), highs.astype(np.float32)

    def animate(
        self,
        phones: Sequence[Phone],
        words: Sequence[Word],
        duration: float,
        emotion: str | EmotionKeyframes = "neutral",
        *,
        expression: str | Expression | None = None,
        intensity: float = 1.0,
        audio: Audio | None = None,
        seed: int | None = None,
    ) -> TeacherTake:
        """Render ``duration`` seconds of speech: ``phones`` (ARPAbet with times, ``SIL`` for pauses) and
        ``words`` (for emotionally strong words; may be empty) under ``emotion``, a label or keyframes.

        ``expression``: a variant name (``happy-smirk``), an emotion (its default variant) or an
        ``Expression``; it sets the emotion of a label take (and replaces that emotion's variant in a
        track). Without it each emotion's variant is drawn from the seed. ``intensity`` scales the
        expression; ``audio`` makes the intensity follow its loudness and pitch. Deterministic for ``seed``
        (the config's seed when None).
        """
        config = self.config
        if not (math.isfinite(duration) and duration > 0):
            raise InputError(f"duration must be a positive number of seconds, got {duration:g}")
        if not (math.isfinite(intensity) and intensity >= 0):
            raise InputError(f"intensity must be 0 or more, got {intensity:g}")
        fps = config.fps
        num_frames = max(round(duration * fps), 1)
        streams = np.random.SeedSequence(config.seed if seed is None else int(seed)).spawn(4)
        variant_rng, blink_rng, gaze_rng, drift_rng = (np.random.default_rng(s) for s in streams)

        chosen = get_expression(expression) if isinstance(expression, str) else expression
        if isinstance(emotion, str):
            if emotion not in EMOTIONS:
                raise InputError(f"unknown emotion '{emotion}': use one of {', '.join(EMOTIONS)}")
            keyframes: list[Keyframe] = [Keyframe(0.0, chosen.emotion if chosen else emotion, 1.0)]
        else:
            keyframes = list(emotion)
        weights, strength = emotion_weights(keyframes, num_frames, fps)
        # One variant per emotion, drawn in EMOTIONS order so a take's draw does not depend on the track.
        variants: dict[str, Expression] = {}
        for name in EMOTIONS:
            options = expressions_for(name)
            variants[name] = options[int(variant_rng.integers(len(options)))]
        if chosen is not None:
            variants[chosen.emotion] = chosen
        dominant = EMOTIONS[int(weights.sum(axis=0).argmax())]

        mouth = viseme_track(phones, num_frames, fps, self.rig, coarticulation=config.coarticulation,
                             spread_s=config.coarticulation_spread_s, close_bilabials=False)  # fmt: skip
        poses = np.stack([variants[name].pose(self.rig) for name in EMOTIONS]).astype(np.float64)
        scale = intensity * config.expression_intensity
        frame_intensity = (
            self._intensity(phones, words, weights, audio, num_frames, drift_rng) * scale * strength
        )
        expressed = (weights @ poses) * frame_intensity[:, None]
        # While the mouth articulates, its expression part yields to the visemes (corners least).
        activity = np.clip(mouth[:, self._jaw] / 0.3, 0.0, 1.0)
        keep = 1.0 - (1.0 - config.mouth_expression_in_speech) * activity
        expressed[:, self._lip] *= keep[:, None]
        values = mouth.astype(np.float64) + expressed
        values = np.clip(values, self._low, self._high)
        values = close_lips(values, closure_envelope(phones, num_frames, fps), self.rig)
        values[:, self._blinks] += self._blink_track(num_frames, fps, blink_rng)[:, None] * (
            1.0 - values[:, self._blinks]
        )
        values[:, self._gaze] += self._gaze_track(num_frames, fps, gaze_rng)
        values = np.clip(values, self._low, self._high).astype(np.float32)

        from medtalk.core.sequence import RigSequence

        peak = np.clip(variants[dominant].pose(self.rig) * scale, self._low, self._high).astype(np.float32)
        return TeacherTake(
            sequence=RigSequence(values, fps=fps, rig=self.rig.name),
            expression=variants[dominant].name,
            emotion=dominant,
            intensity=frame_intensity.astype(np.float32),
            peak_pose=peak,
        )

    def _intensity(
        self,
        phones: Sequence[Phone],
        words: Sequence[Word],
        weights: np.ndarray,
        audio: Audio | None,
        num_frames: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        config = self.config
        fps = config.fps
        if audio is not None:
            prosody = prosody_track(audio, num_frames, fps)
        else:
            # Without audio: livelier while speaking than in pauses, with a slow random drift.
            times = frame_times(num_frames, fps)
            speaking = np.zeros(num_frames)
            for phone in phones:
                if phone.symbol.upper() != "SIL":
                    speaking[(times >= phone.start) & (times < phone.end)] = 1.0
            drift = _smooth(rng.normal(0.0, 1.0, num_frames), max(int(0.8 * fps), 1))
            drift /= drift.std() + 1e-9
            prosody = np.clip(_smooth(speaking, max(int(0.3 * fps), 1)) - 0.5 + 0.25 * drift, -1.0, 1.0)
        emphasis = word_emphasis_track(words, weights, fps)
        level = config.intensity_base + config.prosody_weight * prosody + config.word_emphasis * emphasis
        return np.clip(level, 0.0, config.intensity_max)

    def _blink_track(self, num_frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
        """(T,) in 0..1: 1 where the lids are fully closed by a blink."""
        config = self.config
        times = frame_times(num_frames, fps)
        track = np.zeros(num_frames)
        duration = times[-1] + 1.0 / fps

        def interval() -> float:
            drawn = rng.lognormal(config.blink_interval_log_mean, config.blink_interval_log_sigma)
            return max(float(drawn), config.blink_min_interval_s)

        start = interval() * float(rng.uniform(0.2, 1.0))
        low, high = sorted((config.blink_duration_min_s, config.blink_duration_max_s))
        while start < duration:
            length = float(rng.uniform(low, high))
            # Lids close fast (35%), stay shut briefly (15%) and open more slowly (50%).
            closing = _smoothstep((times - start) / (0.35 * length))
            opening = _smoothstep((start + length - times) / (0.5 * length))
            track = np.maximum(track, np.minimum(closing, opening))
            peak = int(round((start + 0.42 * length) * fps))
            if 0 <= peak < num_frames:
                track[peak] = 1.0
            start += length + interval()
        return track

    def _gaze_track(self, num_frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
        """(T, 2) offsets of CTRL_C_eye X and Y: held fixations joined by short saccades."""
        config = self.config
        times = frame_times(num_frames, fps)
        offsets = np.zeros((num_frames, 2))
        current = np.zeros(2)
        start = 0.0
        end = times[-1] + 1.0 / fps
        while start < end:
            hold = float(rng.lognormal(config.saccade_interval_log_mean, config.saccade_interval_log_sigma))
            target = np.clip(rng.normal(0.0, config.saccade_amplitude, 2), -3 * config.saccade_amplitude,
                             3 * config.saccade_amplitude)  # fmt: skip
            move = _smoothstep((times - start) / config.saccade_duration_s)[:, None]
            after = times >= start
            offsets[after] = (current + (target - current) * move)[after]
            current = target
            start += hold
        return offsets
