"""A compact BERT encoder in plain torch, for the embedded MiniLM without transformers.

``import transformers`` and its Auto classes cost 1.5-3 s of a cold start; the embedded all-MiniLM-L6-v2 is
a plain BERT, so this module runs it on its own: the weights come from the folder's model.safetensors
(read here, no extra dependency), the tokens from its tokenizer.json through the ``tokenizers`` library.
It computes what transformers' ``BertModel(...).last_hidden_state`` and its fast tokenizer give (the
tests hold it to that within 1e-5); anything that is not a plain BERT folder (``plain_bert_folder``) stays
on transformers.
"""

from __future__ import annotations

import json
import math
import struct
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medtalk.core.errors import ConfigError

# transformers' ACT2FN names this encoder computes; BERT's "gelu" is the exact (erf) GELU.
_ACTIVATIONS = {
    "gelu": lambda x: nn.functional.gelu(x),
    "gelu_new": lambda x: nn.functional.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: nn.functional.gelu(x, approximate="tanh"),
    "relu": nn.functional.relu,
    "silu": nn.functional.silu,
    "swish": nn.functional.silu,
}
_TOKENIZER_CLASSES = (None, "BertTokenizer", "BertTokenizerFast")
# Weights a BertModel checkpoint may carry that the encoder's last hidden state does not use.
_UNUSED_WEIGHTS = ("pooler.", "embeddings.position_ids")
_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
}


def plain_bert_folder(config: dict[str, Any], folder: Path) -> bool:
    """Whether ``folder`` is a BERT this module computes exactly: model_type "bert", absolute positions,
    a known activation, an encoder (not a decoder), with model.safetensors and a BERT tokenizer.json."""
    tokenizer_class = None
    tokenizer_config = folder / "tokenizer_config.json"
    if tokenizer_config.is_file():
        try:
            tokenizer_class = json.loads(tokenizer_config.read_text(encoding="utf-8")).get("tokenizer_class")
        except (OSError, ValueError, AttributeError):
            return False
    return (
        config.get("model_type") == "bert"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and config.get("hidden_act", "gelu") in _ACTIVATIONS
        and not config.get("is_decoder", False)
        and not config.get("add_cross_attention", False)
        and tokenizer_class in _TOKENIZER_CLASSES
        and (folder / "model.safetensors").is_file()
        and (folder / "tokenizer.json").is_file()
    )


# ------------------------------------------------------------------------------------------- the model


# Every weight comes from the checkpoint, so the random initialisation torch would do first is skipped:
# for MiniLM it costs more than reading the file. (The meta device would avoid it too, but its first use
# imports torch's meta kernels, over a second.)
class _Linear(nn.Linear):
    def reset_parameters(self) -> None:
        pass


class _Embedding(nn.Embedding):
    def reset_parameters(self) -> None:
        pass


class _Embeddings(nn.Module):
    def __init__(self, config: dict[str, Any], eps: float) -> None:
        super().__init__()
        hidden = int(config["hidden_size"])
        self.word_embeddings = _Embedding(int(config["vocab_size"]), hidden)
        self.position_embeddings = _Embedding(int(config.get("max_position_embeddings", 512)), hidden)
        self.token_type_embeddings = _Embedding(int(config.get("type_vocab_size", 2)), hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        summed = (
            self.word_embeddings(input_ids)
            + self.token_type_embeddings(token_type_ids)
            + self.position_embeddings(positions)[None]
        )
        return self.LayerNorm(summed)


class _Dense(nn.Module):
    """A linear map then LayerNorm(output + residual): BERT's "output" blocks."""

    def __init__(self, size_in: int, size_out: int, eps: float) -> None:
        super().__init__()
        self.dense = _Linear(size_in, size_out)
        self.LayerNorm = nn.LayerNorm(size_out, eps=eps)

    def forward(self, values: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(values) + residual)


class _SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
        self.heads = heads
        self.query = _Linear(hidden, hidden)
        self.key = _Linear(hidden, hidden)
        self.value = _Linear(hidden, hidden)

    def forward(self, states: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = states.shape

        def split(values: torch.Tensor) -> torch.Tensor:
            return values.view(batch, length, self.heads, hidden // self.heads).transpose(1, 2)

        context = nn.functional.scaled_dot_product_attention(
            split(self.query(states)),
            split(self.key(states)),
            split(self.value(states)),
            attn_mask=attend,
            scale=1.0 / math.sqrt(hidden // self.heads),
        )
        return context.transpose(1, 2).reshape(batch, length, hidden)


class _Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, eps: float) -> None:
        super().__init__()
        # "self" is the checkpoint's name for this part (encoder.layer.N.attention.self.query ...).
        self.self = _SelfAttention(hidden, heads)
        self.output = _Dense(hidden, hidden, eps)

    def forward(self, states: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(states, attend), states)


class _Intermediate(nn.Module):
    def __init__(self, hidden: int, inner: int, activation: str) -> None:
        super().__init__()
        self.dense = _Linear(hidden, inner)
        self.activation = _ACTIVATIONS[activation]

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(states))


class _Layer(nn.Module):
    def __init__(self, config: dict[str, Any], eps: float) -> None:
        super().__init__()
        hidden, inner = int(config["hidden_size"]), int(config["intermediate_size"])
        self.attention = _Attention(hidden, int(config["num_attention_heads"]), eps)
        self.intermediate = _Intermediate(hidden, inner, config.get("hidden_act", "gelu"))
        self.output = _Dense(inner, hidden, eps)

    def forward(self, states: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        attended = self.attention(states, attend)
        return self.output(self.intermediate(attended), attended)


class _Layers(nn.Module):
    def __init__(self, config: dict[str, Any], eps: float) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(config, eps) for _ in range(int(config["num_hidden_layers"])))


class BertEncoder(nn.Module):
    """BERT's last hidden state: embeddings (word + position + token type, LayerNorm), then
    num_hidden_layers of masked self-attention and feed-forward, each closed by residual + LayerNorm.
    Parameter names are the checkpoint's (embeddings.*, encoder.layer.N.*), so weights load as saved.
    Built directly, its weights are uninitialised: ``load_bert`` builds it with a checkpoint's."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        eps = float(config.get("layer_norm_eps", 1e-12))
        self.embeddings = _Embeddings(config, eps)
        self.encoder = _Layers(config, eps)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, N) token ids -> (B, N, hidden) states; padding (attention_mask 0) is never attended to."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        attend = attention_mask.bool()[:, None, None, :]
        states = self.embeddings(input_ids, token_type_ids)
        for layer in self.encoder.layer:
            states = layer(states, attend)
        return states


def read_safetensors(component: str, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors file: an 8-byte little-endian header size, a JSON header of
    {name: {dtype, shape, data_offsets}}, then the raw bytes (read without the safetensors package)."""
    unreadable = f"{component}: {path} is not a readable safetensors file: reinstall the model"
    try:
        with path.open("rb") as file:
            (header_size,) = struct.unpack("<Q", file.read(8))
            header = json.loads(file.read(header_size))
            data = bytearray(path.stat().st_size - 8 - header_size)
            file.readinto(data)
    except (OSError, ValueError, struct.error) as error:
        raise ConfigError(unreadable) from error
    tensors = {}
    try:
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            dtype = _SAFETENSORS_DTYPES[entry["dtype"]]
            begin, end = entry["data_offsets"]
            if not 0 <= begin <= end <= len(data):
                raise ValueError(name)
            values = (
                torch.frombuffer(data, dtype=dtype, offset=begin, count=(end - begin) // dtype.itemsize)
                if end > begin
                else torch.empty(0, dtype=dtype)
            )
            tensors[name] = values.reshape(entry["shape"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ConfigError(unreadable) from error
    return tensors


def load_bert(component: str, folder: Path, config: dict[str, Any], fix: str) -> BertEncoder:
    """The BertEncoder of ``folder`` with its model.safetensors weights; a checkpoint whose weights do not
    name exactly this encoder's parameters (a "bert." prefix and the pooler aside) is refused, ``fix``
    saying what to do."""
    path = folder / "model.safetensors"
    weights = {}
    for name, values in read_safetensors(component, path).items():
        name = name.removeprefix("bert.")
        if not name.startswith(_UNUSED_WEIGHTS):
            weights[name] = values
    try:
        model = BertEncoder(config)
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(
            f"{component}: {folder / 'config.json'} is not a BERT config ({error}): {fix}"
        ) from error
    expected = model.state_dict()
    unknown = sorted(set(weights) - set(expected))
    missing = sorted(set(expected) - set(weights))
    misshapen = sorted(
        name for name in set(weights) & set(expected) if weights[name].shape != expected[name].shape
    )
    if unknown or missing or misshapen:
        problems = [
            f"{label} {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
            for label, names in (("unknown", unknown), ("missing", missing), ("wrong shape", misshapen))
            if names
        ]
        raise ConfigError(
            f"{component}: {path} does not hold this BERT's weights ({'; '.join(problems)}): {fix}"
        )
    # The file's tensors become the parameters (float32, as medtalk computes in float32), no copy made.
    model.load_state_dict({name: values.float() for name, values in weights.items()}, assign=True)
    return model


# --------------------------------------------------------------------------------------- the tokenizer


class BertTokenizer:
    """tokenizer.json through the ``tokenizers`` library, padded and cut as transformers' fast tokenizer
    does with padding=True, truncation=True: the file's own padding and truncation settings are ignored."""

    def __init__(self, component: str, folder: Path) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ConfigError(f"{component} needs tokenizers: pip install 'medtalk[embedded]'") from None
        try:
            self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            settings_path = folder / "tokenizer_config.json"
            settings = (
                json.loads(settings_path.read_text(encoding="utf-8")) if settings_path.is_file() else {}
            )
        except Exception as error:  # tokenizers raises a bare Exception on a malformed file
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ConfigError(
                f"{component}: cannot read {folder / 'tokenizer.json'} ({reason}): reinstall the model"
            ) from error
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        # enable_truncation changes the shared tokenizer: one batch at a time.
        self._lock = threading.Lock()
        pad_token = settings.get("pad_token", "[PAD]")
        pad_id = self._tokenizer.token_to_id(pad_token if isinstance(pad_token, str) else "[PAD]")
        self.pad_id = 0 if pad_id is None else pad_id
        limit = settings.get("model_max_length")
        self.model_max_length = limit if isinstance(limit, int) else None

    def __getstate__(self) -> dict[str, Any]:
        # A lock cannot be pickled; a copy gets its own.
        return {key: value for key, value in self.__dict__.items() if key != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str], max_length: int) -> tuple[dict[str, torch.Tensor], list[int]]:
        """({input_ids, token_type_ids, attention_mask, special_tokens_mask}, each (B, N) int64, padded to
        the longest text) and every text's token count before cutting at ``max_length``."""
        with self._lock:
            encodings = self._tokenizer.encode_batch(list(texts))
            lengths = [len(encoding.ids) for encoding in encodings]
            if max(lengths, default=0) > max_length:
                self._tokenizer.enable_truncation(max_length=max_length)
                try:
                    encodings = self._tokenizer.encode_batch(list(texts))
                finally:
                    self._tokenizer.no_truncation()
        width = max((len(encoding.ids) for encoding in encodings), default=0)
        columns = {
            "input_ids": np.full((len(encodings), width), self.pad_id, dtype=np.int64),
            "token_type_ids": np.zeros((len(encodings), width), dtype=np.int64),
            "attention_mask": np.zeros((len(encodings), width), dtype=np.int64),
            "special_tokens_mask": np.ones((len(encodings), width), dtype=np.int64),
        }
        for row, encoding in enumerate(encodings):
            size = len(encoding.ids)
            columns["input_ids"][row, :size] = encoding.ids
            columns["token_type_ids"][row, :size] = encoding.type_ids
            columns["attention_mask"][row, :size] = encoding.attention_mask
            columns["special_tokens_mask"][row, :size] = encoding.special_tokens_mask
        return {key: torch.from_numpy(values) for key, values in columns.items()}, lengths
