"""Torch implementations of the open_clip guidance encoders: a frozen open_clip tower, then P_text/P_image.

The open_clip model is held outside the module's parameters and buffers (in a plain dict), so it is never
in the state_dict: a bundle stores only the trainable projection, and the frozen model loads on the first
``embed`` from the config's ``model`` and ``pretrained``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from medtalk.core.errors import ConfigError, InputError
from medtalk.core.model.modules import ImageFeatureGuidance, TextFeatureGuidance
from medtalk_open_clip import OpenClipConfig, OpenClipImageGuidanceSpec, OpenClipTextGuidanceSpec

# Inputs per forward pass of the frozen model, so a long list never holds every activation at once.
_BATCH = 64
_SCHEMAS = ("hf-hub:", "local-dir:")


def import_open_clip(component: str) -> Any:
    """open_clip, or a one-line ConfigError naming the component and why it cannot import."""
    try:
        import open_clip
    except Exception as error:  # ImportError, or torchvision's RuntimeError when its build mismatches torch
        lines = str(error).strip().splitlines()
        raise ConfigError(
            f"{component} needs open_clip_torch (and torchvision): pip install open_clip_torch with the "
            f"torchvision build that matches your torch ({type(error).__name__}: {lines[0] if lines else ''})"
        ) from None
    return open_clip


def resolve_device(component: str, requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"{component}: device '{requested}' was asked for, but this machine has no CUDA device: "
                "use device cpu"
            )
        index, count = int(requested.partition(":")[2] or 0), torch.cuda.device_count()
        if index >= count:
            raise ConfigError(
                f"{component}: device '{requested}' does not exist (this machine has {count} CUDA "
                f"devices): use cuda:0 .. cuda:{count - 1}"
            )
    return requested


def load_open_clip(component: str, config: OpenClipConfig) -> dict[str, Any]:
    """The frozen model, its tokenizer and image preprocessing, from the config's model and pretrained."""
    open_clip = import_open_clip(component)
    architecture, weights = config.model, config.pretrained
    if architecture.startswith(_SCHEMAS):
        weights = None  # open_clip takes the weights from the hub repository or folder itself
    else:
        if architecture.endswith(".json"):
            path = Path(architecture).expanduser()
            if not path.is_file():
                raise ConfigError(
                    f"{component}: no architecture file at '{architecture}': give an open_clip model name "
                    "(e.g. ViT-B-32) or an existing .json architecture file"
                )
            open_clip.add_model_config(path)
            architecture = path.stem
        architecture = architecture.replace("/", "-")  # open_clip's own spelling of ViT-B/32
        if architecture not in open_clip.list_models():
            raise ConfigError(
                f"{component}: open_clip has no architecture '{config.model}': give one of "
                "open_clip.list_models() (e.g. ViT-B-32) or a .json architecture file"
            )
        tags = open_clip.list_pretrained_tags_by_model(architecture)
        checkpoint = Path(weights).expanduser()
        if checkpoint.is_file():
            weights = str(checkpoint)
        elif weights not in tags:
            raise ConfigError(
                f"{component}: pretrained '{weights}' is neither a checkpoint file nor a pretrained tag of "
                f"{architecture} (its tags: {', '.join(tags) or 'none'}): give a local checkpoint file or "
                "one of the tags"
            )
    device = resolve_device(component, config.device)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            architecture, pretrained=weights, device=device
        )
        tokenizer = open_clip.get_tokenizer(architecture)
    except Exception as error:  # no network for a tag not yet cached, a checkpoint of another architecture
        lines = str(error).strip().splitlines()
        raise ConfigError(
            f"{component}: could not load {config.model} with weights '{config.pretrained}' "
            f"({type(error).__name__}: {lines[0][:200] if lines else ''}): download a tag once with network "
            "access, or give a checkpoint file made for this architecture"
        ) from None
    model.eval()
    model.requires_grad_(False)
    return {"model": model, "tokenizer": tokenizer, "preprocess": preprocess, "device": device}


class _OpenClipEncoder:
    """The frozen open_clip tower in front of the trainable projection; subclasses say how values become
    model inputs (``_inputs``) and which tower encodes them (``_encode``)."""

    config: OpenClipConfig
    name: str

    def __init__(self, config: OpenClipConfig | None = None) -> None:
        super().__init__(config)  # type: ignore[call-arg]
        import_open_clip(self.name)  # fail at build time, not at the first embed, when it cannot import
        # A dict, not an attribute holding the model, so nn.Module never registers it as a submodule.
        self._frozen: dict[str, Any] = {}

    def frozen(self) -> dict[str, Any]:
        if not self._frozen:
            self._frozen.update(load_open_clip(self.name, self.config))
        return self._frozen

    def embed(self, values: Sequence[str]) -> Any:
        """Texts or image paths -> (B, input_dim) float32 numpy vectors from the frozen open_clip tower."""
        import numpy as np

        frozen = self.frozen()
        chunks = []
        for start in range(0, len(values), _BATCH):
            inputs = self._inputs(list(values[start : start + _BATCH]), frozen).to(frozen["device"])
            with torch.inference_mode():
                vectors = self._encode(frozen["model"], inputs).float()
            if self.config.normalize:
                vectors = torch.nn.functional.normalize(vectors, dim=-1)
            chunks.append(vectors.cpu().numpy())
        if not chunks:
            return np.zeros((0, self.config.input_dim), dtype=np.float32)
        out = np.concatenate(chunks).astype(np.float32, copy=False)
        if out.shape[1] != self.config.input_dim:
            raise ConfigError(
                f"{self.name}: {self.config.model} gives {out.shape[1]}-value vectors, but input_dim is "
                f"{self.config.input_dim}: set input_dim to {out.shape[1]}"
            )
        return out


class OpenClipTextGuidance(_OpenClipEncoder, OpenClipTextGuidanceSpec, TextFeatureGuidance):
    """P_text on open_clip text vectors: a frozen open_clip text tower (ViT-B-32), then 256 -> 256."""

    def _inputs(self, values: Sequence[str], frozen: dict[str, Any]) -> Any:
        return frozen["tokenizer"](list(values))

    def _encode(self, model: Any, inputs: Any) -> Any:
        return model.encode_text(inputs)


class OpenClipImageGuidance(_OpenClipEncoder, OpenClipImageGuidanceSpec, ImageFeatureGuidance):
    """P_image on open_clip image vectors: a frozen open_clip image tower (ViT-B-32), then 256 -> 256."""

    def _inputs(self, values: Sequence[str], frozen: dict[str, Any]) -> Any:
        return torch.stack([frozen["preprocess"](read_image(value)) for value in values])

    def _encode(self, model: Any, inputs: Any) -> Any:
        return model.encode_image(inputs)


def read_image(value: str) -> Any:
    """An RGB PIL image, or a one-line InputError for a missing or unreadable file."""
    from PIL import Image, UnidentifiedImageError

    path = Path(value)
    if not path.is_file():
        raise InputError(f"{path}: no such image file: check the path")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(
            f"{path}: not an image that Pillow can read ({type(error).__name__}): give a PNG or JPEG file"
        ) from None
