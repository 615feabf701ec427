"""The `given` and `pocketsphinx-align` transcribers, and the G2P behind the aligner, on speech synthesized
here with known word times."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import medtalk.plugins.alignment
from medtalk.core.audio import Audio, audio_from_array
from medtalk.core.errors import ConfigError, InputError
from medtalk.core.plugins import build
from medtalk.g2p import ARPABET, NeuralG2P, spell_digits, spell_number
from medtalk.plugins.alignment import transcript_words

pytest.importorskip("pocketsphinx", reason="pocketsphinx is not installed")
speech_module = pytest.importorskip("medtalk.synth.speech")
pytest.importorskip("espeakng_loader", reason="the synth extra (espeakng-loader) is not installed")

SENTENCES = [
    "Hello world, the quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "I never said she stole my money.",
    "Most of the time, one of the best.",
]
# The acceptance criterion for the aligner's word onsets against the synthesizer's own.
MAX_MEDIAN_ONSET_ERROR_S = 0.060


@pytest.fixture(scope="module", autouse=True)
def alignment_plugin():
    from medtalk.core.plugins import get_plugin_manager

    pm = get_plugin_manager()
    if pm.get_plugin("medtalk.plugins.alignment") is None:
        pm.register(medtalk.plugins.alignment, name="medtalk.plugins.alignment")
        yield
        pm.unregister(name="medtalk.plugins.alignment")
    else:
        yield


@pytest.fixture(scope="module")
def aligner():
    return build("transcriber", {"type": "pocketsphinx-align"})


def synthesized(text: str, engine: str = "espeak"):
    speech = speech_module.speak(text, engine=engine)
    return speech, audio_from_array(speech.samples, speech.sample_rate)


@pytest.mark.parametrize("engine", ["espeak", "piper"])
def test_word_onsets_match_the_synthesizers_timings(aligner, engine):
    if engine == "piper":
        pytest.importorskip("piper", reason="piper-tts is not installed")
    errors = []
    for text in SENTENCES:
        speech, audio = synthesized(text, engine)
        transcript = aligner(audio, text)
        assert [word.text for word in transcript.words] == [word.text for word in speech.words]
        errors += [
            abs(got.start - want.start) for got, want in zip(transcript.words, speech.words, strict=True)
        ]
    median = float(np.median(errors))
    print(f"\n{engine}: median word-onset error {median * 1000:.1f} ms over {len(errors)} words")
    assert median < MAX_MEDIAN_ONSET_ERROR_S


def test_transcript_has_words_and_phones_in_seconds(aligner):
    speech, audio = synthesized(SENTENCES[0])
    transcript = aligner(audio, SENTENCES[0])
    assert transcript.text == SENTENCES[0]
    assert transcript.language == "en"
    assert {phone.symbol for phone in transcript.phones} <= ARPABET
    assert "SIL" in {phone.symbol for phone in transcript.phones}
    for before, after in zip(transcript.phones, transcript.phones[1:], strict=False):
        assert before.start < before.end <= after.start + 1e-9
    assert transcript.phones[-1].end <= audio.duration + 1e-9
    fox = transcript.words[5]
    assert fox.text == "fox"
    inside = [p.symbol for p in transcript.phones if fox.start <= p.start and p.end <= fox.end]
    assert inside == ["F", "AA", "K", "S"]


def test_the_same_call_gives_the_same_alignment(aligner):
    _, audio = synthesized(SENTENCES[2])
    assert aligner(audio, SENTENCES[2]) == aligner(audio, SENTENCES[2])


def test_words_missing_from_the_dictionary_get_a_g2p_pronunciation(aligner):
    text = "The zorblax glimmered at 42 degrees."
    speech, audio = synthesized(text)
    transcript = aligner(audio, text)
    assert [word.text for word in transcript.words] == ["The", "zorblax", "glimmered", "at", "42", "degrees"]
    zorblax = transcript.words[1]
    phones = [p.symbol for p in transcript.phones if zorblax.start <= p.start and p.end <= zorblax.end]
    assert phones == NeuralG2P()("zorblax")
    forty_two = transcript.words[4]
    phones = [p.symbol for p in transcript.phones if forty_two.start <= p.start and p.end <= forty_two.end]
    assert phones == ["F", "AO", "R", "T", "IY", "T", "UW"]
    assert abs(zorblax.start - speech.words[1].start) < 0.06


def test_a_dictionary_file_adds_pronunciations(tmp_path):
    dictionary = tmp_path / "extra.dict"
    dictionary.write_text(";;; ours\nzorblax Z AO1 R B L AE0 K S\n", encoding="utf-8")
    aligner = build(
        "transcriber", {"type": "pocketsphinx-align", "dictionary": str(dictionary), "g2p": False}
    )
    text = "The zorblax is here."
    _, audio = synthesized(text)
    transcript = aligner(audio, text)
    zorblax = transcript.words[1]
    phones = [p.symbol for p in transcript.phones if zorblax.start <= p.start and p.end <= zorblax.end]
    assert phones == ["Z", "AO", "R", "B", "L", "AE", "K", "S"]


def test_without_g2p_an_unknown_word_is_named():
    aligner = build("transcriber", {"type": "pocketsphinx-align", "g2p": False})
    _, audio = synthesized("The zorblax glimmered.")
    with pytest.raises(InputError) as raised:
        aligner(audio, "The zorblax glimmered.")
    assert str(raised.value) == (
        "pocketsphinx-align: the word 'zorblax' is not in the dictionary: add it to a dictionary file "
        "(config 'dictionary') or turn g2p on"
    )


def test_a_transcript_of_other_words_is_refused(aligner):
    _, audio = synthesized("I never said she stole my money.")
    with pytest.raises(InputError) as raised:
        aligner(audio, "Please call Stella and ask her to bring")
    assert str(raised.value) == (
        "pocketsphinx-align: the transcript does not match the audio (the alignment found no path through "
        "all its words): check that the transcript is what was said"
    )


def test_a_transcript_of_part_of_the_speech_is_refused(aligner):
    _, audio = synthesized("I never said she stole my money.")
    with pytest.raises(InputError) as raised:
        aligner(audio, "hello")
    message = re.fullmatch(
        r"pocketsphinx-align: (\d+)% of the speech is not covered by the transcript's words \(at most 35% "
        r"may be\): check that the transcript is all that was said",
        str(raised.value),
    )
    assert message is not None, str(raised.value)
    assert int(message.group(1)) > 60


def test_silence_is_refused(aligner):
    audio = Audio(np.zeros(16000, dtype=np.float32))
    with pytest.raises(InputError) as raised:
        aligner(audio, "hello world")
    assert str(raised.value) == (
        "pocketsphinx-align: the audio is silent: give the recording of the transcript"
    )


@pytest.mark.parametrize("text", [None, "   "])
def test_the_aligner_needs_a_transcript(aligner, text):
    audio = Audio(np.zeros(16000, dtype=np.float32))
    with pytest.raises(InputError) as raised:
        aligner(audio, text)
    assert str(raised.value) == "pocketsphinx-align needs the transcript: pass --transcript TEXT"
    assert type(aligner).needs_text is True


def test_a_bad_dictionary_line_is_named(tmp_path):
    dictionary = tmp_path / "bad.dict"
    dictionary.write_text("zorblax Z AO1 QQ\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        build("transcriber", {"type": "pocketsphinx-align", "dictionary": str(dictionary)})
    assert str(raised.value) == (
        f"pocketsphinx-align: {dictionary}:1: expected 'word PH ON ES' with ARPAbet phones, got 'QQ'"
    )


def test_given_returns_the_text_without_times():
    given = build("transcriber", {"type": "given", "language": "en"})
    audio = Audio(np.zeros(1600, dtype=np.float32))
    transcript = given(audio, "  Hello   there. ")
    assert transcript.text == "Hello there."
    assert transcript.language == "en"
    assert transcript.words == () and transcript.phones == ()
    assert type(given).needs_text is True


def test_given_call_text_wins_over_the_config():
    given = build("transcriber", {"type": "given", "text": "from the config"})
    audio = Audio(np.zeros(1600, dtype=np.float32))
    assert given(audio).text == "from the config"
    assert given(audio, "from the call").text == "from the call"


def test_given_without_any_text_is_one_line():
    given = build("transcriber", {"type": "given"})
    audio = Audio(np.zeros(1600, dtype=np.float32))
    with pytest.raises(InputError) as raised:
        given(audio)
    assert (
        str(raised.value) == "given needs the transcript: pass --transcript TEXT (or set the config's text)"
    )


def test_transcript_words_normalise_for_the_dictionary():
    assert transcript_words("Don't stop, well-known Café — and/or 'quoted' 42!") == [
        ("Don't", "don't"),
        ("stop", "stop"),
        ("well-known", "well-known"),
        ("Café", "cafe"),
        ("and/or", "and-or"),
        ("quoted", "quoted"),
        ("42", "42"),
    ]


def test_numbers_are_spelled_in_english():
    assert spell_number(42) == ["forty", "two"]
    assert spell_number(1999) == ["one", "thousand", "nine", "hundred", "ninety", "nine"]
    assert spell_number(0) == ["zero"]
    assert spell_digits("21st") == ["twenty", "first"]
    assert spell_digits("30th") == ["thirtieth"]


def test_the_g2p_runs_without_importing_nltk():
    phones = NeuralG2P()("glimmered")
    assert phones == ["G", "L", "IH", "M", "ER", "D"]
    assert "nltk" not in sys.modules
    assert "g2p_en" not in sys.modules
