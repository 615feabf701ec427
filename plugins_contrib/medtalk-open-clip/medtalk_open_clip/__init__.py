"""medtalk plugin: open_clip text and image encoders as frozen encoders for emotion guidance.

A separate package because open_clip_torch needs torchvision, which must match the installed torch
build exactly (medtalk's CPU torch 2.13.0 has no matching torchvision). The components are declared
here, torch-free, so listing them never imports torch; ``medtalk_open_clip._torch`` implements them.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from medtalk import hookimpl
from medtalk.plugins.model_parts import (
    FeatureProjectionConfig,
    ImageFeatureGuidanceSpec,
    TextFeatureGuidanceSpec,
)

__version__ = "0.1.0"


class OpenClipConfig(FeatureProjectionConfig):
    model: str = Field(
        default="ViT-B-32",
        min_length=1,
        description="open_clip architecture (open_clip.list_models(), e.g. ViT-B-32), a path to an "
        "architecture .json file, or an 'hf-hub:ORG/REPO' / 'local-dir:PATH' model (weights included)",
    )
    pretrained: str = Field(
        default="laion2b_s34b_b79k",
        min_length=1,
        description="Weights: a local checkpoint file (.pt, .bin, .safetensors), or a pretrained tag of "
        "the architecture (open_clip.list_pretrained()), downloaded once into the cache",
    )
    normalize: bool = Field(
        default=True, description="Scale each vector to unit length, as CLIP compares them by cosine"
    )
    device: str = Field(
        default="cpu",
        description="Where the frozen encoder runs: cpu, cuda, cuda:N, or auto (cuda if there is one)",
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if not re.fullmatch(r"cpu|auto|cuda(:[0-9]+)?", device):
            raise ValueError(f"device '{device}' is not one of cpu, cuda, cuda:N, auto")
        return device


class OpenClipTextGuidanceSpec(TextFeatureGuidanceSpec):
    """P_text on open_clip text vectors: a frozen open_clip text tower (ViT-B-32), then 256 -> 256."""

    name = "open-clip-text"
    embeds = True
    Config = OpenClipConfig
    implementation = "medtalk_open_clip._torch:OpenClipTextGuidance"


class OpenClipImageGuidanceSpec(ImageFeatureGuidanceSpec):
    """P_image on open_clip image vectors: a frozen open_clip image tower (ViT-B-32), then 256 -> 256."""

    name = "open-clip-image"
    embeds = True
    Config = OpenClipConfig
    implementation = "medtalk_open_clip._torch:OpenClipImageGuidance"


@hookimpl
def register_guidance_encoders(register) -> None:
    register(OpenClipTextGuidanceSpec)
    register(OpenClipImageGuidanceSpec)
