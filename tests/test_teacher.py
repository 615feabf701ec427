"""The procedural teacher (medtalk.teacher) and its `teacher` model: visemes, expressions, phrase grammar,
emotion tracks, blinks and gaze, value ranges against the real clip, and the Pipeline call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medtalk.core.audio import audio_from_array
from medtalk.core.data.samples import EMOTIONS
from medtalk.core.errors import InputError
from medtalk.core.types import Phone, Word
from medtalk.plugins.rigs import metahuman_174
from medtalk.teacher import (
    EMOTIONAL_WORDS,
    EXPRESSIONS,
    Keyframe,
    Teacher,
    bilabial_closure_rate,
    describe,
    emotion_weights,
    expression_features,
    expressions_for,
    get_expression,
    lip_rounding,
    lips_closed,
    match_description,
    parse_emotion_track,
)
from medtalk.teacher.animate import TeacherConfig
from medtalk.teacher.visemes import ROUNDED_LEVEL, viseme_track

REAL_CLIP = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "real"
    / "emoface_validation"
    / ("angry_gd04_001_021.txt")
)
# How far outside the real clip's per-control range (min - margin .. max + margin) a take may go
# (docs/teacher.md, "Value ranges").
RANGE_MARGIN = 0.15
# Lip activity (mean per-control std over the lip set) must be within this factor of the real clip's.
LIP_STD_FACTOR = 2.0
MIN_BILABIAL_CLOSURE = 0.8
FPS = 60.0

SENTENCES = (
    "Bob bought a big map, but the moon was blue.",
    "Please pass me the butter, my brother will bring more paper.",
    "Maybe we could improve the plan by Monday morning.",
)


@pytest.fixture(scope="module")
def rig():
    return metahuman_174()


@pytest.fixture(scope="module")
def teacher():
    return Teacher()


@pytest.fixture(scope="module")
def real_clip():
    return np.loadtxt(REAL_CLIP, delimiter=",", dtype=np.float64)


def synthesized(text: str, voice: str = "en-us"):
    from medtalk.synth.speech import speak

    return speak(text, engine="espeak", voice=voice)


def phones(*spec: tuple[str, float]) -> list[Phone]:
    """Consecutive phones from (symbol, seconds) pairs, starting at 0."""
    out, start = [], 0.0
    for symbol, length in spec:
        out.append(Phone(symbol, start, start + length))
        start += length
    return out


def column(rig, name: str) -> int:
    return rig.indices_of([name])[-1]


def sided(rig, short: str) -> list[int]:
    return [column(rig, f"CTRL_{side}_{short}-translateY") for side in "LR"]


# ------------------------------------------------------------------------------------------ takes


def test_a_take_has_one_row_per_frame_of_the_rig(teacher, rig):
    spoken = phones(("SIL", 0.2), ("HH", 0.08), ("AH", 0.12), ("L", 0.07), ("OW", 0.2), ("SIL", 0.3))
    take = teacher.animate(spoken, [Word("hello", 0.2, 0.67)], 0.97, "happy", seed=3)
    assert take.sequence.values.shape == (round(0.97 * FPS), rig.num_controls)
    assert take.sequence.rig == "metahuman-174" and take.sequence.fps == FPS
    assert take.intensity.shape == (round(0.97 * FPS),)
    assert take.peak_pose.shape == (rig.num_controls,)
    assert take.emotion == "happy" and take.expression in {e.name for e in expressions_for("happy")}
    lows, highs = np.array(rig.ranges).T
    assert (take.sequence.values >= lows - 1e-6).all() and (take.sequence.values <= highs + 1e-6).all()
    thirty = Teacher(TeacherConfig(fps=30.0)).animate(spoken, [], 0.97, seed=3)
    assert thirty.sequence.num_frames == round(0.97 * 30)


def test_the_same_seed_gives_the_same_take_and_another_seed_another(teacher):
    speech = synthesized(SENTENCES[0])
    first = teacher.animate(speech.phones, speech.words, speech.duration, "sad", seed=7)
    again = teacher.animate(speech.phones, speech.words, speech.duration, "sad", seed=7)
    other = teacher.animate(speech.phones, speech.words, speech.duration, "sad", seed=8)
    assert np.array_equal(first.sequence.values, again.sequence.values)
    assert first.expression == again.expression
    assert not np.array_equal(first.sequence.values, other.sequence.values)


def test_bad_duration_and_intensity_are_refused(teacher):
    with pytest.raises(InputError, match=r"^duration must be a positive number of seconds, got 0$"):
        teacher.animate([], [], 0.0)
    with pytest.raises(InputError, match=r"^intensity must be 0 or more, got -1$"):
        teacher.animate([], [], 1.0, intensity=-1.0)
    with pytest.raises(InputError, match=r"^unknown emotion 'joy': use one of angry, disgust, fear, happy, "):
        teacher.animate([], [], 1.0, "joy")


# ------------------------------------------------------------------------------------------ visemes


@pytest.mark.parametrize("emotion", ["neutral", "surprise", "disgust", "happy"])
def test_lips_close_on_bilabials_of_synthesized_speech(teacher, rig, emotion):
    for text, voice in zip(SENTENCES, ("en-us", "en-us+f2", "en"), strict=True):
        speech = synthesized(text, voice)
        take = teacher.animate(speech.phones, speech.words, speech.duration, emotion, seed=1)
        values = take.sequence.values
        rate = bilabial_closure_rate(values, speech.phones, FPS, rig, at="middle")
        assert rate >= MIN_BILABIAL_CLOSURE, (text, emotion, rate)
        # The measure is not trivially true: the middles of open vowels are open.
        open_vowels = [
            p for p in speech.phones if p.symbol in ("AA", "AE", "AH", "AO") and p.end - p.start > 0.05
        ]
        middles = [round((p.start + p.end) / 2 * FPS) for p in open_vowels]
        assert not lips_closed(values[middles], rig).any()


def test_lips_closed_takes_a_row_or_frames(rig):
    rest = np.zeros(rig.num_controls)
    open_jaw = rest.copy()
    open_jaw[column(rig, "CTRL_C_jaw-translateY")] = 0.3
    assert bool(lips_closed(rest, rig)) and not bool(lips_closed(open_jaw, rig))
    sealed = open_jaw.copy()
    for name in ("mouth_lipsTogetherU", "mouth_lipsTogetherD"):
        sealed[sided(rig, name)] = 0.4
    assert lips_closed(np.stack([rest, open_jaw, sealed]), rig).tolist() == [True, False, True]


def test_the_real_clip_closes_its_lips_between_open_stretches(rig, real_clip):
    # The same measure on captured curves: it speaks with the lips parted most of the time.
    closed = lips_closed(real_clip, rig)
    assert 0.1 < closed.mean() < 0.7


def test_lips_round_on_oo_and_anticipate_it(teacher, rig):
    rounded = viseme_track(phones(("SIL", 0.3), ("S", 0.1), ("UW", 0.2), ("SIL", 0.3)), 54, FPS, rig)
    spread = viseme_track(phones(("SIL", 0.3), ("S", 0.1), ("IY", 0.2), ("SIL", 0.3)), 54, FPS, rig)
    oo, ee, s_middle = round(0.5 * FPS), round(0.5 * FPS), round(0.35 * FPS)
    assert lip_rounding(rounded[oo], rig) >= ROUNDED_LEVEL
    assert lip_rounding(spread[ee], rig) < ROUNDED_LEVEL / 3
    # Anticipation: the lips already round during the s before the oo.
    assert lip_rounding(rounded[s_middle], rig) > lip_rounding(spread[s_middle], rig) + 0.1
    for symbol in ("W", "UH", "OW"):
        track = viseme_track(phones(("SIL", 0.3), (symbol, 0.2), ("SIL", 0.3)), 48, FPS, rig)
        assert lip_rounding(track[round(0.4 * FPS)], rig) >= ROUNDED_LEVEL, symbol


def test_lips_start_closing_before_a_bilabial(rig):
    track = viseme_track(
        phones(("SIL", 0.2), ("AA", 0.2), ("P", 0.08), ("AA", 0.2), ("SIL", 0.2)), 53, FPS, rig
    )
    plain = viseme_track(
        phones(("SIL", 0.2), ("AA", 0.2), ("K", 0.08), ("AA", 0.2), ("SIL", 0.2)), 53, FPS, rig
    )
    from medtalk.teacher import lip_opening

    before = round(0.37 * FPS)  # 30 ms before the p starts
    assert lip_opening(track[before], rig) < lip_opening(plain[before], rig) - 0.03
    assert bool(lips_closed(track[round(0.44 * FPS)], rig))


def test_jaw_follows_openness_and_tongue_moves_for_l_t_d_n_th(rig):
    jaw = column(rig, "CTRL_C_jaw-translateY")
    tongue = [column(rig, n) for n in ("CTRL_C_tongue_press-translateY", "CTRL_C_tongue_tip-translateY")]
    openness = {}
    for vowel in ("AA", "AE", "EH", "IY", "UW"):
        track = viseme_track(phones(("SIL", 0.2), (vowel, 0.25), ("SIL", 0.2)), 39, FPS, rig)
        openness[vowel] = track[round(0.325 * FPS), jaw]
    assert openness["AA"] > openness["EH"] > openness["IY"] and openness["AE"] > openness["UW"]
    for consonant in ("L", "T", "D", "N", "TH", "DH"):
        track = viseme_track(phones(("SIL", 0.2), (consonant, 0.1), ("SIL", 0.2)), 30, FPS, rig)
        assert track[round(0.25 * FPS), tongue].max() > 0.15, consonant
    # The authors' files move the second copy of the repeated tongue-tip pair; so does the teacher.
    first_copy = rig.indices_of(["CTRL_C_tongue_tip-translateY"])[0]
    assert np.abs(track[:, first_copy]).max() == 0.0


# ------------------------------------------------------------------------------------------ expressions


SIGNATURES = {
    # emotion: (short control, direction) that every variant of it moves, on at least one side.
    "angry": [("brow_down", +1)],
    "disgust": [("nose_wrinkleUpper", +1)],
    "fear": [("brow_raiseIn", +1), ("mouth_stretch", +1)],
    "happy": [("mouth_cornerPull", +1)],
    "sad": [("brow_raiseIn", +1), ("mouth_cornerDepress", +1)],
    "surprise": [("brow_raiseOut", +1), ("eye_blink", -1)],
}


def test_the_library_has_several_variants_of_every_emotion_in_order():
    assert tuple(dict.fromkeys(e.emotion for e in EXPRESSIONS.values())) == EMOTIONS
    for emotion in EMOTIONS:
        assert len(expressions_for(emotion)) >= 3, emotion
        assert get_expression(emotion) is expressions_for(emotion)[0]
    asymmetric = {e.emotion for e in EXPRESSIONS.values() if e.asymmetric}
    assert asymmetric == set(EMOTIONS) - {"neutral"}
    with pytest.raises(InputError, match=r"^unknown expression 'gleeful': use an emotion \(angry, "):
        get_expression("gleeful")


@pytest.mark.parametrize("emotion", sorted(SIGNATURES))
def test_every_variant_moves_its_emotions_signature_controls(rig, emotion):
    for expression in expressions_for(emotion):
        pose = expression.pose(rig)
        for short, direction in SIGNATURES[emotion]:
            assert (direction * pose[sided(rig, short)]).max() >= 0.1, (expression.name, short)


def test_emotions_differ_on_the_upper_face_of_rendered_takes(teacher, rig):
    speech = synthesized(SENTENCES[2])
    upper = list(rig.index_set("upper"))
    means = {}
    for emotion in EMOTIONS:
        take = teacher.animate(speech.phones, speech.words, speech.duration, expression=emotion, seed=2)
        means[emotion] = take.sequence.values[:, upper].mean(axis=0)
    for i, first in enumerate(EMOTIONS):
        for second in EMOTIONS[i + 1 :]:
            assert np.abs(means[first] - means[second]).mean() > 0.02, (first, second)
    brow_down, corner_pull = sided(rig, "brow_down"), sided(rig, "mouth_cornerPull")
    assert means["angry"][[upper.index(c) for c in brow_down]].min() > 0.3
    assert means["neutral"][[upper.index(c) for c in brow_down]].max() < 0.05
    happy = teacher.animate(speech.phones, speech.words, speech.duration, expression="happy", seed=2)
    neutral = teacher.animate(speech.phones, speech.words, speech.duration, expression="neutral", seed=2)
    assert happy.sequence.values[:, corner_pull].mean() > neutral.sequence.values[:, corner_pull].mean() + 0.3


def test_the_smirk_is_asymmetric_as_rendered(teacher, rig):
    speech = synthesized(SENTENCES[1])
    take = teacher.animate(speech.phones, speech.words, speech.duration, expression="happy-smirk", seed=0)
    values = take.sequence.values
    left, right = sided(rig, "mouth_cornerPull")
    assert values[:, right].mean() - values[:, left].mean() > 0.3
    brow_left, brow_right = sided(rig, "brow_raiseOut")
    assert values[:, brow_left].mean() - values[:, brow_right].mean() > 0.4
    assert take.expression == "happy-smirk" and take.emotion == "happy"
    from medtalk.plugins.rigs import ARKIT_52

    arkit = dict(zip(ARKIT_52, take.peak_arkit(), strict=True))
    assert arkit["mouthSmileRight"] > 0.5 > 0.1 > arkit["mouthSmileLeft"]
    assert arkit["browOuterUpLeft"] > arkit["browOuterUpRight"] + 0.4


# ------------------------------------------------------------------------------------------ describing


def test_describe_is_deterministic_for_an_rng_and_paraphrases():
    smirk = get_expression("happy-smirk")
    texts = [describe(smirk, np.random.default_rng(seed)) for seed in range(30)]
    assert texts == [describe(smirk, np.random.default_rng(seed)) for seed in range(30)]
    assert len(set(texts)) >= 10
    mentions = ("smirk", "lopsided", "one corner", "half smile", "crooked", "brow", "eyebrow", "cheek")
    for text in texts:
        assert any(word in text for word in mentions), text
    assert set(expression_features(smirk)) >= {"smirk", "raised-brow"}


def test_no_description_says_eyes_are_wide_and_narrowed_at_once():
    rng = np.random.default_rng(0)
    for expression in EXPRESSIONS.values():
        features = set(expression_features(expression))
        assert not {"wide-eyes", "narrowed-eyes"} <= features, expression.name
        for _ in range(5):
            text = describe(expression, rng, max_features=5)
            wide = any(phrase in text for phrase in ("eyes wide", "wide-eyed", "staring eyes"))
            narrowed = any(phrase in text for phrase in ("narrowed", "squint"))
            assert not (wide and narrowed), (expression.name, text)


def test_describe_reads_a_rendered_pose(teacher):
    take = teacher.animate([], [], 1.0, expression="angry-seething", seed=0)
    features = expression_features(take.peak_pose)
    assert {"furrowed", "narrowed-eyes", "pressed-lips"} <= set(features)
    text = describe(take.peak_pose, np.random.default_rng(4), max_features=5)
    assert "," in text or " and " in text
    relaxed = ("relaxed", "neutral", "calm", "expressionless", "blank", "composed")
    for seed in range(10):
        text = describe(get_expression("neutral-rest"), np.random.default_rng(seed))
        assert any(word in text for word in relaxed), text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("smirking, raised brow", "happy-smirk"),
        ("a lopsided smile with one eyebrow up", "happy-smirk"),
        ("eyes narrowed, lips pressed", "angry"),
        ("nose wrinkled, sneering", "disgust"),
        ("wide-eyed, jaw dropped", "surprise"),
        ("a frown, worried brows", "sad"),
        ("big toothy grin", "happy"),
        ("terrified", "fear"),
    ],
)
def test_match_description_finds_the_closest_expression(text, expected):
    found = match_description(text)
    assert found.name == expected or (found.emotion == expected and "-" not in expected), found.name


def test_described_expressions_match_back_to_their_emotion():
    rng = np.random.default_rng(0)
    hits = total = 0
    for expression in EXPRESSIONS.values():
        for _ in range(5):
            total += 1
            hits += match_description(describe(expression, rng, max_features=4)).emotion == expression.emotion
    assert hits / total >= 0.7


def test_a_description_with_no_known_feature_is_refused():
    with pytest.raises(InputError) as caught:
        match_description("purple spaceship")
    assert str(caught.value) == (
        "text guidance 'purple spaceship' names no face feature or emotion the teacher knows: describe the "
        "face (e.g. 'smirking, raised brow', 'eyes narrowed, lips pressed') or name an emotion"
    )


# ------------------------------------------------------------------------------------------ intensity


def test_emotional_words_lexicon_covers_every_emotion():
    assert set(EMOTIONAL_WORDS.values()) == set(EMOTIONS)
    assert all(word == word.lower() and " " not in word for word in EMOTIONAL_WORDS)
    assert EMOTIONAL_WORDS["furious"] == "angry"


def test_intensity_rises_on_a_strong_word(teacher):
    spoken = phones(*[("AH", 0.1), ("N", 0.1)] * 15)
    words = [Word("and", 0.2 * i, 0.2 * i + 0.2) for i in range(15)]
    words[8] = Word("furious", 1.6, 1.8)
    take = teacher.animate(spoken, words, 3.0, "angry", seed=0)
    times = np.arange(take.intensity.shape[0]) / FPS
    around = take.intensity[(times > 1.6) & (times < 1.9)].mean()
    elsewhere = take.intensity[(times < 1.2) | (times > 2.4)].mean()
    assert around > elsewhere + 0.1


def test_intensity_follows_loudness_of_the_audio(teacher):
    speech = synthesized("We walk along the road. We walk along the road.")
    samples = speech.samples.copy()
    half = len(samples) // 2
    samples[:half] *= 0.1
    audio = audio_from_array(samples, speech.sample_rate)
    take = teacher.animate(speech.phones, [], speech.duration, "angry", audio=audio, seed=0)
    frames = take.intensity.shape[0]
    assert take.intensity[frames // 2 :].mean() > take.intensity[: frames // 2].mean() + 0.05


# ------------------------------------------------------------------------------------------ blinks, gaze


def test_blinks_come_at_log_normal_intervals_and_last_about_a_tenth_of_a_second(teacher, rig):
    take = teacher.animate(phones(("SIL", 40.0)), [], 40.0, "neutral", seed=5)
    blink = take.sequence.values[:, sided(rig, "eye_blink")].mean(axis=1)
    shut = blink > 0.95
    onsets = np.flatnonzero(shut[1:] & ~shut[:-1]) + 1
    intervals = np.diff(onsets) / FPS
    assert 6 <= len(onsets) <= 20
    assert intervals.min() >= 0.6 and 2.0 <= np.median(intervals) <= 6.0 and intervals.std() > 0.3
    closing = blink > 0.5
    starts = np.flatnonzero(closing[1:] & ~closing[:-1]) + 1
    ends = np.flatnonzero(~closing[1:] & closing[:-1]) + 1
    lengths = (ends[: len(starts)] - starts[: len(ends)]) / FPS
    assert lengths.min() >= 0.03 and lengths.max() <= 0.15


def test_gaze_makes_small_saccades(teacher, rig):
    take = teacher.animate(phones(("SIL", 10.0)), [], 10.0, seed=5)
    gaze = take.sequence.values[
        :, [column(rig, "CTRL_C_eye-translateX"), column(rig, "CTRL_C_eye-translateY")]
    ]
    steps = np.abs(np.diff(gaze, axis=0)).max(axis=1)
    fixations = np.mean(steps < 1e-6)
    assert np.abs(gaze).max() <= 0.15 and gaze.std() > 0.01
    assert fixations > 0.8  # held between quick moves


# ------------------------------------------------------------------------------------------ real clip


@pytest.mark.parametrize("variant", [e.name for e in expressions_for("angry")])
def test_takes_stay_within_the_real_clips_ranges_and_lip_activity(rig, real_clip, variant):
    # Blinks off: the 3.4 s real clip holds none, while a take blinks every few seconds (docs/teacher.md).
    quiet = Teacher(TeacherConfig(blink_interval_log_mean=20.0))
    lows = real_clip.min(axis=0) - RANGE_MARGIN
    highs = real_clip.max(axis=0) + RANGE_MARGIN
    lip = list(rig.index_set("lip"))
    real_lip_std = real_clip[:, lip].std(axis=0).mean()
    for text in SENTENCES:
        speech = synthesized(text)
        values = quiet.animate(speech.phones, speech.words, speech.duration, expression=variant, seed=0)
        values = values.sequence.values
        outside = [rig.controls[i] for i in range(rig.num_controls)
                   if values[:, i].min() < lows[i] or values[:, i].max() > highs[i]]  # fmt: skip
        assert not outside, (variant, text, outside)
        lip_std = values[:, lip].std(axis=0).mean()
        assert real_lip_std / LIP_STD_FACTOR <= lip_std <= real_lip_std * LIP_STD_FACTOR, (text, lip_std)


# ------------------------------------------------------------------------------------------ emotion tracks


def test_parse_emotion_track_reads_times_labels_and_strengths():
    assert parse_emotion_track("0:neutral,1.5:angry@0.8, 3:happy") == [
        Keyframe(0.0, "neutral", 1.0),
        Keyframe(1.5, "angry", 0.8),
        Keyframe(3.0, "happy", 1.0),
    ]


@pytest.mark.parametrize(
    ("track", "message"),
    [
        (
            "",
            "emotion track '' has an empty keyframe: give TIME:EMOTION[@STRENGTH] items, "
            "e.g. 0:neutral,1.5:angry@0.8,3:happy",
        ),
        (
            "0:neutral,,2:sad",
            "emotion track '0:neutral,,2:sad' has an empty keyframe: give TIME:EMOTION[@STRENGTH] "
            "items, e.g. 0:neutral,1.5:angry@0.8,3:happy",
        ),
        (
            "angry",
            "emotion track keyframe 'angry' is not TIME:EMOTION[@STRENGTH]: "
            "e.g. 0:neutral,1.5:angry@0.8,3:happy",
        ),
        (
            "x:angry",
            "emotion track keyframe 'x:angry': time 'x' is not a number of seconds: "
            "e.g. 0:neutral,1.5:angry@0.8,3:happy",
        ),
        ("-1:angry", "emotion track keyframe '-1:angry': time -1 must be 0 or more seconds"),
        (
            "1:joy",
            "emotion track keyframe '1:joy': unknown emotion 'joy': use one of angry, disgust, fear, happy, "
            "neutral, sad, surprise",
        ),
        (
            "1:angry@2",
            "emotion track keyframe '1:angry@2': strength '2' is not a number from 0 to 1: e.g. angry@0.8",
        ),
        (
            "1:angry@x",
            "emotion track keyframe '1:angry@x': strength 'x' is not a number from 0 to 1: e.g. angry@0.8",
        ),
        (
            "2:sad,1:happy",
            "emotion track keyframe '1:happy' is not after the one before it (2 s): list keyframes in "
            "increasing time",
        ),
    ],
)
def test_parse_emotion_track_names_the_bad_keyframe(track, message):
    with pytest.raises(InputError) as caught:
        parse_emotion_track(track)
    assert str(caught.value) == message


def test_emotion_weights_blend_smoothly_and_sum_to_one():
    keyframes = parse_emotion_track("0.5:neutral,1.5:angry@0.8,3:happy")
    weights, strengths = emotion_weights(keyframes, 240, FPS)
    assert weights.shape == (240, 7) and strengths.shape == (240,)
    assert np.allclose(weights.sum(axis=1), 1.0)
    angry, happy, neutral = (EMOTIONS.index(e) for e in ("angry", "happy", "neutral"))
    assert weights[:31, neutral].min() == 1.0  # held before the first keyframe
    assert weights[90, angry] == pytest.approx(1.0) and strengths[90] == pytest.approx(0.8)
    assert weights[180:, happy].min() == 1.0 and strengths[-1] == 1.0
    assert np.abs(np.diff(weights, axis=0)).max() < 0.05  # no jumps
    assert 0.0 < weights[60, angry] < 1.0


def test_a_take_follows_an_emotion_track(teacher, rig):
    speech = synthesized(SENTENCES[2])
    track = [Keyframe(0.0, "neutral"), Keyframe(speech.duration, "angry")]
    take = teacher.animate(
        speech.phones, speech.words, speech.duration, track, expression="angry-glare", seed=0
    )
    brow = take.sequence.values[:, sided(rig, "brow_down")].mean(axis=1)
    assert brow[:10].mean() < 0.1 < 0.4 < brow[-10:].mean()
    assert take.emotion in ("neutral", "angry")


# ------------------------------------------------------------------------------------------ the model


def test_the_teacher_model_animates_audio_with_a_transcript():
    from medtalk.core.pipeline import Pipeline

    pipeline = Pipeline.from_pretrained("teacher")
    speech = synthesized(SENTENCES[0])
    audio = audio_from_array(speech.samples, speech.sample_rate)
    sequence = pipeline(audio, guidance="label:angry", transcript=SENTENCES[0])
    assert sequence.values.shape == (round(audio.duration * FPS), 174) and sequence.rig == "metahuman-174"
    rig = metahuman_174()
    aligned = pipeline.transcribe(audio, SENTENCES[0])
    assert bilabial_closure_rate(sequence.values, aligned.phones, FPS, rig) >= MIN_BILABIAL_CLOSURE
    assert sequence.values[:, sided(rig, "brow_down")].mean() > 0.3
    smirk = pipeline.take(audio, guidance='text:"smirking, raised brow"', transcript=SENTENCES[0])
    assert smirk.expression == "happy-smirk"
    tracked = pipeline(audio, "label:happy", SENTENCES[0], emotion_track="0:neutral,1:angry")
    assert not np.array_equal(tracked.values, sequence.values)


@pytest.mark.parametrize(
    ("guidance", "message"),
    [
        (
            "image:face.png",
            'the teacher takes label:NAME or text:"..." guidance, not image: use a trained model '
            "for image guidance",
        ),
        (
            "label:joyful",
            "unknown expression 'joyful': use an emotion (angry, disgust, fear, happy, neutral, sad, "
            "surprise) or a variant such as angry-glare, angry-snarl, angry-seething, angry-one-brow "
            "(see docs/teacher.md)",
        ),
        ("happy", "guidance 'happy' is not label:NAME, text:\"...\" or image:PATH: e.g. label:happy"),
    ],
)
def test_the_teacher_model_refuses_bad_guidance_in_one_line(guidance, message):
    from medtalk.core.pipeline import Pipeline

    pipeline = Pipeline.from_pretrained("teacher")
    speech = synthesized("Hello there.")
    audio = audio_from_array(speech.samples, speech.sample_rate)
    with pytest.raises(InputError) as caught:
        pipeline(audio, guidance=guidance, transcript="Hello there.")
    assert str(caught.value) == message


def test_the_plugin_module_imports_neither_numpy_nor_torch():
    code = "import sys, medtalk.plugins.teacher; print('numpy' in sys.modules, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_without_a_transcript_a_failed_alignment_falls_back_to_the_recognisers_word_times():
    from medtalk.core.errors import MedtalkWarning
    from medtalk.core.types import Transcript
    from medtalk.teacher.pipeline import TeacherPipeline

    speech = synthesized(SENTENCES[2])
    audio = audio_from_array(speech.samples, speech.sample_rate)
    heard = Transcript(SENTENCES[2], "en", speech.words)

    def recognise(audio, text=None):
        return heard

    def refuse(audio, text=None):
        raise InputError("pocketsphinx-align: the transcript does not match the audio")

    pipeline = TeacherPipeline(aligner=refuse, recogniser=recognise)
    with pytest.warns(
        MedtalkWarning, match=r"^pocketsphinx-align: the transcript does not match the audio -- "
    ):
        timed = pipeline.transcribe(audio)
    assert timed.words == speech.words
    assert [p.symbol for p in timed.phones if p.symbol != "SIL"][:3] == ["M", "EY", "B"]
    with pytest.warns(MedtalkWarning):
        take = pipeline.take(audio, "label:neutral")
    assert bilabial_closure_rate(take.sequence.values, speech.phones, FPS, metahuman_174()) >= 0.6


def test_a_transcript_the_aligner_cannot_follow_is_spread_over_the_speech_with_a_warning():
    from medtalk.core.audio import Audio
    from medtalk.core.errors import MedtalkWarning
    from medtalk.teacher.pipeline import TeacherPipeline

    def refuse(audio, text=None):
        raise InputError("pocketsphinx-align: the transcript does not match the audio")

    speech = synthesized(SENTENCES[0])
    audio = audio_from_array(speech.samples, speech.sample_rate)
    pipeline = TeacherPipeline(aligner=refuse)
    with pytest.warns(
        MedtalkWarning, match=r"^pocketsphinx-align: the transcript does not match the audio -- "
    ):
        take = pipeline.take(audio, "label:angry", transcript=SENTENCES[0])
    assert take.sequence.num_frames == round(audio.duration * FPS)
    with pytest.warns(MedtalkWarning):
        timed = [w.text for w in pipeline.transcribe(audio, SENTENCES[0]).words]
    assert timed == ["Bob", "bought", "a", "big", "map", "but", "the", "moon", "was", "blue"]
    # Rough times, but the lips still close on most bilabials.
    assert bilabial_closure_rate(take.sequence.values, speech.phones, FPS, metahuman_174()) >= 0.5
    silent = Audio(np.zeros(16000, dtype=np.float32))
    with pytest.raises(InputError) as caught:
        pipeline.transcribe(silent, "hello")
    assert str(caught.value) == "the audio is silent: give the recording of the transcript"


def test_takes_of_one_utterance_under_two_emotions_share_blinks_and_gaze(teacher, rig):
    speech = synthesized(SENTENCES[1])
    angry, happy = (
        teacher.animate(speech.phones, speech.words, speech.duration, emotion, seed=11).sequence.values
        for emotion in ("angry", "happy")
    )
    gaze_x = column(rig, "CTRL_C_eye-translateX")
    assert np.array_equal(angry[:, gaze_x], happy[:, gaze_x])
    shut = [np.flatnonzero(v[:, sided(rig, "eye_blink")].min(axis=1) > 0.99) for v in (angry, happy)]
    assert len(shut[0]) and np.array_equal(*shut)
    assert not np.allclose(angry[:, rig.index_set("upper")], happy[:, rig.index_set("upper")])


def test_the_expression_sheet_draws_each_expression_in_its_own_cell(tmp_path):
    from medtalk.teacher.sheet import expression_sheet, main

    sheet = np.asarray(expression_sheet(["neutral", "happy-smirk", "neutral"], size=128, columns=3))
    assert sheet.shape == (128, 3 * 128, 3)
    neutral, smirk, neutral_again = (sheet[:, k * 128 : (k + 1) * 128] for k in range(3))
    assert np.array_equal(neutral, neutral_again)
    assert np.abs(neutral.astype(int) - smirk.astype(int)).sum() > 0
    main([str(tmp_path / "sheet.png")])
    assert (tmp_path / "sheet.png").stat().st_size > 10_000
