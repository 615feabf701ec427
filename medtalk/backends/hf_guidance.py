"""Torch implementations of the transformers guidance encoders declared in ``medtalk.plugins.hf``.

Each is the trainable projection (P_text or P_image, inherited: ``forward``) plus a frozen encoder that
``embed`` runs on the user's texts or image files. The frozen encoder sits in a ``FrozenEncoder`` holder,
not in an ``nn.Module`` attribute, so it never enters ``state_dict``, ``parameters()``, ``.to()`` or an
optimiser, and a bundle holds only the projection. It loads on the first ``embed``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medtalk.core.errors import ConfigError, InputError, MedtalkWarning
from medtalk.core.model.modules import ImageFeatureGuidance, TextFeatureGuidance
from medtalk.plugins.hf import (
    ClipGuidanceConfig,
    ClipImageGuidanceSpec,
    ClipTextGuidanceSpec,
    MiniLMConfig,
    MiniLMGuidanceConfig,
    MiniLMTextEncoder,
    MiniLMTextGuidanceSpec,
    frozen_on,
    import_transformers,
    load_pretrained,
    quiet_transformers,
    resolve_device,
    resolve_model_folder,
)


class FrozenEncoder:
    """Holds a frozen backbone outside the module tree; ``get(load)`` loads it the first time.

    ``copy.deepcopy`` of the owning module shares the holder (the backbone is read-only, and copying
    hundreds of MB for every model copy would be waste); pickling drops the loaded backbone, which the
    copy loads again on its first ``embed``.
    """

    def __init__(self) -> None:
        self._value: Any = None

    def get(self, load: Callable[[], Any]) -> Any:
        if self._value is None:
            self._value = load()
        return self._value

    @property
    def loaded(self) -> bool:
        return self._value is not None

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenEncoder:
        return self

    def __getstate__(self) -> dict[str, Any]:
        return {"_value": None}


def _check_strings(component: str, values: Sequence[str], what: str) -> list[str]:
    if isinstance(values, (str, Path)):
        raise InputError(f"{component}: embed takes a list of {what}, got one {type(values).__name__}")
    items = []
    for value in values:
        if not isinstance(value, (str, Path)):
            raise InputError(f"{component}: embed takes {what} as strings, got {type(value).__name__}")
        items.append(str(value))
    return items


class _Clip:
    """A loaded CLIPModel with its tokenizer or image processor, on its device, checked against input_dim."""

    def __init__(self, component: str, config: ClipGuidanceConfig, modality: str) -> None:
        transformers = import_transformers(component, "paper")
        self.component = component
        self.normalize = config.normalize
        folder = resolve_model_folder(component, config.model)
        self.device = resolve_device(component, config.device)
        model = load_pretrained(component, transformers.CLIPModel, folder)
        size = int(model.config.projection_dim)
        if size != config.input_dim:
            raise ConfigError(
                f"{component}: input_dim is {config.input_dim}, but the CLIP model '{config.model}' gives "
                f"{size}-d vectors: set input_dim to {size}"
            )
        self.model = frozen_on(model, self.device)
        self.max_tokens = int(model.config.text_config.max_position_embeddings)
        if modality == "text":
            self.tokenizer = load_pretrained(component, transformers.AutoTokenizer, folder)
        else:
            if not (folder / "preprocessor_config.json").is_file():
                raise ConfigError(
                    f"{component}: '{config.model}' has no preprocessor_config.json, so its image "
                    "preprocessing is unknown: give the folder of a full CLIP snapshot"
                )
            # The PIL/numpy processor: the default one in transformers 5 needs torchvision (in
            # transformers 4, CLIPImageProcessor is the PIL/numpy one).
            processor = (
                getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
            )
            self.processor = load_pretrained(component, processor, folder)

    def _finish(self, features: Any) -> np.ndarray:
        # transformers 5 returns a BaseModelOutputWithPooling whose pooler_output is the projected vector;
        # transformers 4 returns the tensor itself.
        if not isinstance(features, torch.Tensor):
            features = features.pooler_output
        if self.normalize:
            features = torch.nn.functional.normalize(features, p=2, dim=-1)
        return features.float().cpu().numpy().astype(np.float32)

    def text_features(self, texts: list[str]) -> np.ndarray:
        with quiet_transformers():
            lengths = [len(ids) for ids in self.tokenizer(texts)["input_ids"]]
            batch = self.tokenizer(
                texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
            )
        if max(lengths) > self.max_tokens:
            warnings.warn(
                f"{self.component}: a text has {max(lengths)} tokens, CLIP reads {self.max_tokens}: "
                "the rest is ignored",
                MedtalkWarning,
                stacklevel=3,
            )
        inputs = {key: value.to(self.device) for key, value in batch.items()}
        with torch.inference_mode():
            return self._finish(self.model.get_text_features(**inputs))

    def image_features(self, paths: list[str]) -> np.ndarray:
        images = [_read_rgb(self.component, path) for path in paths]
        with quiet_transformers():
            pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            return self._finish(self.model.get_image_features(pixel_values=pixels.to(self.device)))


def _read_rgb(component: str, path: str) -> Any:
    from PIL import Image

    if not Path(path).is_file():
        raise InputError(f"{component}: {path}: no such image file: check the path")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise InputError(f"{component}: {path}: not a readable image: give a PNG or JPEG") from None


class ClipTextGuidance(ClipTextGuidanceSpec, TextFeatureGuidance):
    """P_text on frozen CLIP text features (transformers CLIPModel.get_text_features, 512-d for ViT-B/32)."""

    config: ClipGuidanceConfig

    def __init__(self, config: ClipGuidanceConfig | None = None) -> None:
        super().__init__(config)
        object.__setattr__(self, "frozen", FrozenEncoder())

    def embed(self, values: Sequence[str]) -> np.ndarray:
        """Texts -> (B, input_dim) CLIP text vectors (a text past 77 tokens is cut, with a warning)."""
        texts = _check_strings(self.name, values, "texts")
        if not texts:
            return np.zeros((0, self.config.input_dim), dtype=np.float32)
        return self.frozen.get(lambda: _Clip(self.name, self.config, "text")).text_features(texts)


class ClipImageGuidance(ClipImageGuidanceSpec, ImageFeatureGuidance):
    """P_image on frozen CLIP image features (CLIPModel.get_image_features of an image file, 512-d)."""

    config: ClipGuidanceConfig

    def __init__(self, config: ClipGuidanceConfig | None = None) -> None:
        super().__init__(config)
        object.__setattr__(self, "frozen", FrozenEncoder())

    def embed(self, values: Sequence[str]) -> np.ndarray:
        """Image paths -> (B, input_dim) float32 CLIP image vectors (resize, centre crop and normalise as
        the model's preprocessor_config.json says)."""
        paths = _check_strings(self.name, values, "image paths")
        if not paths:
            return np.zeros((0, self.config.input_dim), dtype=np.float32)
        return self.frozen.get(lambda: _Clip(self.name, self.config, "image")).image_features(paths)


class MiniLMTextGuidance(MiniLMTextGuidanceSpec, TextFeatureGuidance):
    """P_text on the embedded all-MiniLM-L6-v2 sentence vector (384-d, unit length; no download)."""

    config: MiniLMGuidanceConfig

    def __init__(self, config: MiniLMGuidanceConfig | None = None) -> None:
        super().__init__(config)
        object.__setattr__(self, "frozen", FrozenEncoder())

    def _load_encoder(self) -> MiniLMTextEncoder:
        encoder = MiniLMTextEncoder(MiniLMConfig(device=self.config.device))
        if encoder.dim != self.config.input_dim:
            raise ConfigError(
                f"{self.name}: input_dim is {self.config.input_dim}, but MiniLM gives {encoder.dim}-d "
                f"vectors: set input_dim to {encoder.dim}"
            )
        encoder.load()
        return encoder

    def embed(self, values: Sequence[str]) -> np.ndarray:
        """Texts -> (B, 384) float32 unit-length MiniLM sentence vectors."""
        texts = _check_strings(self.name, values, "texts")
        if not texts:
            return np.zeros((0, self.config.input_dim), dtype=np.float32)
        return self.frozen.get(self._load_encoder).encode_sentences(texts)
