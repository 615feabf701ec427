"""The emotion featurizers: prosody on signals whose answers are known and on real speech; emotion2vec
through funasr's own loading path, with a tiny randomly initialised Emotion2vec saved the way funasr
saves a model folder."""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import shutil
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import REAL_WAV

import medtalk
import medtalk.plugins.emotion_features
from medtalk.core.audio import Audio, audio_from_array, load_audio
from medtalk.core.errors import AudioError, ConfigError
from medtalk.core.plugins import get_plugin_manager
from medtalk.plugins.emotion_features import PROSODY_FEATURES

RATE = 16_000
COLUMN = {name: index for index, (name, _unit) in enumerate(PROSODY_FEATURES)}


@pytest.fixture(scope="module", autouse=True)
def emotion_plugin():
    """Registers the plugin module unless the built-ins already did (once it is in DEFAULT_PLUGINS)."""
    pm = get_plugin_manager()
    plugin_name = "medtalk.plugins.emotion_features"
    if pm.get_plugin(plugin_name) is not None:
        yield
        return
    pm.register(medtalk.plugins.emotion_features, name=plugin_name)
    yield
    pm.unregister(name=plugin_name)


def prosody(audio: Audio, **options) -> np.ndarray:
    return medtalk.build("featurizer", {"type": "prosody", "normalize": "none", **options})(audio).values


def harmonic_tone(frequency: float, seconds: float = 1.0, amplitude: float = 0.3) -> Audio:
    """Five harmonics with 1/k amplitudes: a voice-like periodic signal whose F0 is ``frequency``."""
    time = np.arange(round(seconds * RATE)) / RATE
    signal = sum(amplitude / k * np.sin(2 * np.pi * frequency * k * time) for k in range(1, 6))
    return audio_from_array(signal.astype(np.float32), RATE)


def semitones(hz: float) -> float:
    return 12.0 * math.log2(hz / 27.5)


def middle(values: np.ndarray) -> np.ndarray:
    """Frames away from the zero-padded ends."""
    return values[10:-10]


# ------------------------------------------------------------------------------------------------ prosody


def test_prosody_is_a_14_d_emotion_featurizer_at_100_hz():
    featurizer = medtalk.build("featurizer", "prosody")
    assert (featurizer.role, featurizer.supports_streaming) == ("emotion", False)
    assert (featurizer.dim, featurizer.rate_hz) == (14, 100.0) == (len(PROSODY_FEATURES), 100.0)
    assert featurizer.config.normalize == "utterance" and featurizer.config.pitch_method == "dio"


@pytest.mark.parametrize("num_samples", [0, 1, 159, 160, 399, 401, 1600, 8000, 19_753, 53_760])
def test_prosody_frames_are_floor_of_samples_over_160_plus_one(num_samples):
    noise = 0.1 * np.random.default_rng(num_samples).standard_normal(num_samples).astype(np.float32)
    features = medtalk.build("featurizer", "prosody")(Audio(noise))
    assert features.values.shape == (num_samples // 160 + 1, 14)
    assert features.values.dtype == np.float32 and features.rate_hz == 100.0
    assert np.isfinite(features.values).all()


def test_a_220_hz_harmonic_tone_reads_as_voiced_at_220_hz():
    values = middle(prosody(harmonic_tone(220.0)))
    assert np.all(values[:, COLUMN["voiced"]] == 1.0)
    np.testing.assert_allclose(values[:, COLUMN["f0"]], semitones(220.0), atol=0.5)
    assert np.all(np.abs(values[:, COLUMN["f0_delta"]]) < 1.0)  # steady: under 1 semitone per second
    assert np.median(values[:, COLUMN["hnr"]]) > 15.0


def test_a_glide_from_150_to_300_hz_rises_one_octave_at_12_semitones_per_second():
    time = np.arange(RATE) / RATE
    phase = 2 * np.pi * 150.0 * (2.0**time - 1.0) / math.log(2.0)  # F0 = 150 x 2^t Hz, 0 <= t < 1 s
    glide = sum(0.3 / k * np.sin(k * phase) for k in range(1, 6))
    values = middle(prosody(audio_from_array(glide.astype(np.float32), RATE)))
    pitch = values[:, COLUMN["f0"]]
    assert np.all(np.diff(pitch) > 0.0)
    assert abs(pitch[0] - semitones(150.0 * 2.0**0.1)) < 0.5  # the first frame kept is at 100 ms
    assert abs(pitch[-1] - semitones(150.0 * 2.0**0.9)) < 0.5
    assert abs(np.median(values[:, COLUMN["f0_delta"]]) - 12.0) < 1.0


def test_twice_the_amplitude_is_6_db_more_energy_and_nothing_else():
    quiet, loud = harmonic_tone(220.0, amplitude=0.1), harmonic_tone(220.0, amplitude=0.2)
    quiet_values, loud_values = middle(prosody(quiet)), middle(prosody(loud))
    gain = loud_values[:, COLUMN["energy"]] - quiet_values[:, COLUMN["energy"]]
    np.testing.assert_allclose(gain, 20 * math.log10(2.0), atol=0.5)
    others = [column for name, column in COLUMN.items() if name not in ("energy", "hnr")]
    np.testing.assert_allclose(loud_values[:, others], quiet_values[:, others], rtol=1e-4, atol=1e-4)
    # d4c adds a tiny absolute guard to its spectra, so its ratio moves by a hair with the level.
    np.testing.assert_allclose(loud_values[:, COLUMN["hnr"]], quiet_values[:, COLUMN["hnr"]], atol=0.5)


def test_utterance_normalization_reads_speech_at_any_gain_the_same(real_speech):
    build = medtalk.build("featurizer", "prosody")
    quiet, loud = (
        build(Audio(real_speech.samples * 0.25)).values,
        build(Audio(real_speech.samples * 2.0)).values,
    )
    others = [column for name, column in COLUMN.items() if name != "hnr"]
    np.testing.assert_allclose(loud[:, others], quiet[:, others], atol=1e-3)
    np.testing.assert_allclose(loud[:, COLUMN["hnr"]], quiet[:, COLUMN["hnr"]], atol=0.02)


def test_white_noise_is_unvoiced_and_brighter_than_a_low_tone():
    noise = audio_from_array(0.1 * np.random.default_rng(0).standard_normal(RATE).astype(np.float32), RATE)
    noise_values, tone_values = middle(prosody(noise)), middle(prosody(harmonic_tone(150.0)))
    assert noise_values[:, COLUMN["voiced"]].mean() < 0.1
    assert np.median(noise_values[:, COLUMN["hnr"]]) == -10.0  # the floor: no periodic power
    assert np.median(noise_values[:, COLUMN["spectral_centroid"]]) > 3000.0
    assert np.median(tone_values[:, COLUMN["spectral_centroid"]]) < 500.0
    assert abs(np.median(noise_values[:, COLUMN["zero_crossing_rate"]]) - 0.5) < 0.05
    assert np.median(noise_values[:, COLUMN["spectral_flatness"]]) > 0.5
    assert np.median(tone_values[:, COLUMN["spectral_flatness"]]) < 0.1


@pytest.mark.parametrize("normalize", ["none", "utterance"])
@pytest.mark.parametrize("num_samples", [0, 100, 399, 16_000])
def test_silence_gives_finite_features(normalize, num_samples):
    values = prosody(Audio(np.zeros(num_samples, np.float32)), normalize=normalize)
    assert np.isfinite(values).all()
    assert np.all(values[:, COLUMN["voiced"]] == 0.0)
    if normalize == "none":
        assert np.all(values[:, COLUMN["energy"]] == -100.0)
        # No voiced frame: F0 sits at the geometric centre of the 60..500 Hz search range.
        np.testing.assert_allclose(values[:, COLUMN["f0"]], semitones(math.sqrt(60.0 * 500.0)), atol=1e-4)
    else:
        np.testing.assert_allclose(values, 0.0, atol=1e-6)


def test_prosody_refuses_audio_at_another_rate():
    with pytest.raises(ConfigError) as error:
        medtalk.build("featurizer", "prosody")(Audio(np.zeros(22_050, np.float32), sample_rate=22_050))
    assert str(error.value) == "prosody needs 16000 Hz audio, got 22050 Hz: load it with load_audio"


def test_an_empty_pitch_range_is_refused_at_build_time():
    with pytest.raises(ConfigError) as error:
        medtalk.build("featurizer", {"type": "prosody", "f0_floor": 300, "f0_ceil": 200})
    assert str(error.value) == (
        "invalid config for featurizer 'prosody': field '(root)': value error, f0_floor (300 Hz) must be "
        "below f0_ceil (200 Hz); its fields are: f0_floor, f0_ceil, pitch_method, normalize"
    )


@pytest.fixture(scope="module")
def real_speech() -> Audio:
    return load_audio(REAL_WAV)


def test_real_speech_has_a_plausible_voiced_share_and_pitch(real_speech):
    values = prosody(real_speech)
    voiced = values[:, COLUMN["voiced"]] == 1.0
    assert 0.3 <= voiced.mean() <= 0.9
    median_hz = 27.5 * 2.0 ** (np.median(values[voiced, COLUMN["f0"]]) / 12.0)
    assert 75.0 <= median_hz <= 400.0
    assert np.median(values[voiced, COLUMN["hnr"]]) > np.median(values[~voiced, COLUMN["hnr"]])
    # Speech (about 20 dB below full scale at its loudest here) rises well above its pauses.
    assert (
        np.percentile(values[:, COLUMN["energy"]], 95) - np.percentile(values[:, COLUMN["energy"]], 5) > 30.0
    )


def test_long_clips_are_tracked_in_pieces_with_the_same_result(real_speech, monkeypatch):
    """DIO is run on 30 s pieces with 1 s of context each side (memory); on the real clip cut into 0.5 s
    pieces with 0.2 s of context the contour comes out identical to one pass over the whole clip."""
    whole = prosody(real_speech)
    monkeypatch.setattr(medtalk.plugins.emotion_features, "PITCH_PIECE_FRAMES", 50)
    monkeypatch.setattr(medtalk.plugins.emotion_features, "PITCH_CONTEXT_FRAMES", 20)
    np.testing.assert_array_equal(prosody(real_speech), whole)


def test_harvest_finds_the_same_median_pitch_as_dio_on_real_speech(real_speech):
    dio, harvest = prosody(real_speech), prosody(real_speech, pitch_method="harvest")
    dio_voiced, harvest_voiced = dio[:, COLUMN["voiced"]] == 1.0, harvest[:, COLUMN["voiced"]] == 1.0
    both = dio_voiced & harvest_voiced
    assert both.sum() > 50
    assert abs(np.median(dio[both, COLUMN["f0"]] - harvest[both, COLUMN["f0"]])) < 0.5


def test_utterance_normalization_gives_zero_mean_unit_variance_but_keeps_the_voicing_flag(real_speech):
    values = medtalk.build("featurizer", "prosody")(real_speech).values.astype(np.float64)
    others = [column for name, column in COLUMN.items() if name != "voiced"]
    np.testing.assert_allclose(values[:, others].mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(values[:, others].std(axis=0), 1.0, atol=1e-4)
    np.testing.assert_array_equal(values[:, COLUMN["voiced"]], prosody(real_speech)[:, COLUMN["voiced"]])


# -------------------------------------------------------------------------------------------- emotion2vec

TINY_DIM = 32
# The base model's feature encoder shape (total stride 320 samples: 50 Hz), at a tiny width.
TINY_ENCODER_SPEC = f"[({TINY_DIM}, 10, 5)] + [({TINY_DIM}, 3, 2)] * 4 + [({TINY_DIM}, 2, 2)] * 2"


def tiny_emotion2vec_config() -> dict:
    """The keys funasr's Emotion2vec reads, with emotion2vec_base's values but 2 blocks of width 32."""
    audio = {
        "type": "AUDIO",
        "prenet_depth": 1,
        "prenet_layerdrop": 0.0,
        "prenet_dropout": 0.0,
        "start_drop_path_rate": 0.0,
        "end_drop_path_rate": 0.0,
        "num_extra_tokens": 2,
        "init_extra_token_zero": True,
        "mask_noise_std": 0.01,
        "mask_prob_min": None,
        "mask_prob": 0.5,
        "inverse_mask": False,
        "mask_prob_adjust": 0.05,
        "keep_masked_pct": 0.0,
        "mask_length": 5,
        "add_masks": False,
        "remove_masks": False,
        "mask_dropout": 0.0,
        "encoder_zero_mask": True,
        "mask_channel_prob": 0.0,
        "mask_channel_length": 64,
        "ema_local_encoder": False,
        "local_grad_mult": 1.0,
        "use_alibi_encoder": True,
        "alibi_scale": 1.0,
        "learned_alibi": False,
        "alibi_max_pos": None,
        "learned_alibi_scale": True,
        "learned_alibi_scale_per_head": True,
        "learned_alibi_scale_per_layer": False,
        "num_alibi_heads": 2,
        "model_depth": 2,
        "decoder": None,
        "extractor_mode": "layer_norm",
        "feature_encoder_spec": TINY_ENCODER_SPEC,
        "conv_pos_width": 8,
        "conv_pos_groups": 4,
        "conv_pos_depth": 2,
        "conv_pos_pre_ln": False,
    }
    model_conf = {
        "loss_beta": 0.0,
        "loss_scale": None,
        "depth": 2,
        "start_drop_path_rate": 0.0,
        "end_drop_path_rate": 0.0,
        "num_heads": 2,
        "norm_eps": 1e-5,
        "norm_affine": True,
        "encoder_dropout": 0.1,
        "post_mlp_drop": 0.1,
        "attention_dropout": 0.1,
        "activation_dropout": 0.0,
        "dropout_input": 0.0,
        "layerdrop": 0.05,
        "embed_dim": TINY_DIM,
        "mlp_ratio": 4.0,
        "layer_norm_first": False,
        "average_top_k_layers": 2,
        "end_of_block_targets": False,
        "clone_batch": 8,
        "normalize": True,
        "modalities": {"audio": audio},
    }
    return {"model": "Emotion2vec", "model_conf": model_conf}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A randomly initialised Emotion2vec saved as funasr's model folders are: config.yaml + model.pt."""
    pytest.importorskip("funasr", reason="the emotion2vec backend needs funasr (the paper extra)")
    with contextlib.redirect_stdout(io.StringIO()):  # funasr prints an ffmpeg notice on import
        from funasr.models.emotion2vec.model import Emotion2vec as FunasrEmotion2vec
    folder = tmp_path_factory.mktemp("tiny-emotion2vec")
    config = tiny_emotion2vec_config()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = FunasrEmotion2vec(**config).eval()
    torch.save(model.state_dict(), folder / "model.pt")
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder, model


@pytest.fixture(scope="module")
def loaded(tiny_model):
    folder, _model = tiny_model
    return medtalk.build("featurizer", {"type": "emotion2vec", "model": str(folder)})


def speech_like(seconds: float) -> Audio:
    time = np.arange(round(seconds * RATE)) / RATE
    signal = 0.2 * np.sin(2 * np.pi * 180.0 * time) * (1.0 + np.sin(2 * np.pi * 3.0 * time))
    noise = 0.01 * np.random.default_rng(1).standard_normal(time.size)
    return audio_from_array((signal + noise).astype(np.float32), RATE)


def test_emotion2vec_loads_a_local_folder_through_funasr_and_gives_50_hz_frames(loaded):
    features = loaded(speech_like(2.0))
    assert (loaded.role, loaded.rate_hz, loaded.dim) == ("emotion", 50.0, TINY_DIM)
    assert features.rate_hz == 50.0
    assert features.values.shape == ((32_000 - 400) // 320 + 1, TINY_DIM) == (99, TINY_DIM)
    assert features.values.dtype == np.float32 and np.isfinite(features.values).all()


@pytest.mark.parametrize("num_samples", [400, 1_600, 16_000, 53_760])
def test_emotion2vec_frames_follow_its_convolution_stack(loaded, num_samples):
    audio = Audio(0.1 * np.random.default_rng(num_samples).standard_normal(num_samples).astype(np.float32))
    assert loaded(audio).values.shape == ((num_samples - 400) // 320 + 1, TINY_DIM)


def test_emotion2vec_features_are_funasrs_own_model_on_the_samples_as_given(loaded, tiny_model):
    """The array goes to the model unchanged (no file round trip, no resampling): the output equals the
    funasr model class run by hand on the same samples, with the waveform normalization its config asks."""
    _folder, model = tiny_model
    audio = speech_like(1.5)
    with torch.no_grad():
        source = torch.from_numpy(np.array(audio.samples))
        source = torch.nn.functional.layer_norm(source, source.shape).view(1, -1)
        expected = model.extract_features(source, padding_mask=None)["x"].squeeze(0).numpy()
    np.testing.assert_allclose(loaded(audio).values, expected, rtol=1e-4, atol=1e-5)


def test_a_folder_laid_out_as_the_hubs_ship_emotion2vec_base_loads_too(tiny_model, tmp_path):
    """iic/emotion2vec_base names its weights emotion2vec_base.pt in configuration.json, not model.pt."""
    folder, _model = tiny_model
    shutil.copy(folder / "config.yaml", tmp_path / "config.yaml")
    shutil.copy(folder / "model.pt", tmp_path / "emotion2vec_base.pt")
    (tmp_path / "configuration.json").write_text(
        json.dumps(
            {
                "framework": "pytorch",
                "task": "emotion-recognition",
                "model": {"type": "funasr"},
                "file_path_metas": {"init_param": "emotion2vec_base.pt", "config": "config.yaml"},
            }
        )
    )
    audio = speech_like(1.0)
    hub_layout = medtalk.build("featurizer", {"type": "emotion2vec", "model": str(tmp_path)})
    saved_layout = medtalk.build("featurizer", {"type": "emotion2vec", "model": str(folder)})
    np.testing.assert_array_equal(hub_layout(audio).values, saved_layout(audio).values)


def test_emotion2vec_loads_once_quietly_and_leaves_global_state_alone(tiny_model, capsys):
    folder, _model = tiny_model
    featurizer = medtalk.build("featurizer", {"type": "emotion2vec", "model": str(folder)})
    threads = torch.get_num_threads()
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    expected = (random.random(), np.random.random(), torch.rand(1).item())
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    first = featurizer.load()
    assert featurizer.load() is first
    featurizer(speech_like(0.5))
    assert (random.random(), np.random.random(), torch.rand(1).item()) == expected
    assert torch.get_num_threads() == threads
    assert capsys.readouterr().out == ""


def test_a_missing_model_folder_is_refused_with_the_fix(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError) as error:
        medtalk.build("featurizer", {"type": "emotion2vec", "model": str(missing)}).load()
    assert str(error.value) == (
        f"emotion2vec: no model folder at '{missing}': give a funasr model folder, or a hub id such as "
        "iic/emotion2vec_base"
    )


def test_a_folder_that_is_not_a_funasr_model_is_refused(tmp_path):
    pytest.importorskip("funasr", reason="the emotion2vec backend needs funasr (the paper extra)")
    (tmp_path / "config.yaml").write_text("model: Emotion2vec\n")
    with pytest.raises(ConfigError) as error:
        medtalk.build("featurizer", {"type": "emotion2vec", "model": str(tmp_path)}).load()
    assert str(error.value) == (
        f"emotion2vec: '{tmp_path}' is not a funasr model folder (it needs configuration.json, or "
        "config.yaml and model.pt): give the folder funasr downloaded, e.g. "
        "~/.cache/modelscope/hub/models/iic/emotion2vec_base"
    )


def test_without_funasr_emotion2vec_names_the_extra(monkeypatch, tiny_model):
    folder, _model = tiny_model
    monkeypatch.setitem(sys.modules, "funasr", None)  # makes `import funasr` fail as if it were absent
    with pytest.raises(ConfigError) as error:
        medtalk.build("featurizer", {"type": "emotion2vec", "model": str(folder)}).load()
    assert str(error.value) == "emotion2vec needs funasr: pip install 'medtalk[paper]'"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_asking_for_cuda_without_one_is_refused_not_silently_cpu(tiny_model):
    folder, _model = tiny_model
    with pytest.raises(ConfigError) as error:
        medtalk.build("featurizer", {"type": "emotion2vec", "model": str(folder), "device": "cuda"}).load()
    assert str(error.value) == (
        "emotion2vec: device 'cuda' was asked for, but torch sees no CUDA device: use device 'cpu' or 'auto'"
    )


def test_auto_device_runs_where_torch_can(tiny_model):
    folder, _model = tiny_model
    featurizer = medtalk.build("featurizer", {"type": "emotion2vec", "model": str(folder), "device": "auto"})
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(featurizer.load().model.parameters()).device.type == expected


def test_an_unknown_device_is_refused_at_build_time():
    with pytest.raises(ConfigError) as error:
        medtalk.build("featurizer", {"type": "emotion2vec", "device": "gpu"})
    assert str(error.value) == (
        "invalid config for featurizer 'emotion2vec': field 'device': value error, unknown device 'gpu': "
        "use cpu, cuda, cuda:N or auto; its fields are: model, hub, device"
    )


def test_emotion2vec_refuses_audio_it_cannot_frame(loaded):
    with pytest.raises(AudioError) as error:
        loaded(Audio(np.zeros(300, np.float32)))
    assert str(error.value) == "emotion2vec needs at least 0.025 s of audio, got 0.0187 s: give a longer clip"
    with pytest.raises(ConfigError) as error:
        loaded(Audio(np.zeros(8_000, np.float32), sample_rate=8_000))
    assert str(error.value) == "emotion2vec needs 16000 Hz audio, got 8000 Hz: load it with load_audio"
