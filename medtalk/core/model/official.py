"""Import the MEDTalk authors' released checkpoints into medtalk model bundles.

The authors save each training stage's ``state_dict()`` as a ``.pth`` file (cross_recon, audio_cont,
audio_semantic, clip_emotion). It is read with ``torch.load(..., weights_only=True)``, so a file that
would need code to unpickle is refused, never run. Their parameter names are mapped to ours (KEY_MAP;
the table in docs/model.md), the parts present decide the model config, and the frozen backbones their
files also carry (wav2vec2, the RoBERTa text encoder, CLIP) are kept in the bundle as separate
safetensors files with the prefix stripped, so that ``transformers``' models load them as they are.
"""

from __future__ import annotations

import os
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medtalk.core.errors import FileFormatError, InputError
from medtalk.core.model.bundle import Backbone, check_state_dict, check_target, file_sha256, save_bundle
from medtalk.plugins.model_parts import EMOTION_LABELS

if TYPE_CHECKING:
    import torch

AUTHORS_REPOSITORY = "https://github.com/SJTU-Lucy/MEDTalk"

# The authors' parameter prefix -> ours (MedtalkModel's state dict). Everything after the prefix is equal.
KEY_MAP: tuple[tuple[str, str], ...] = (
    ("emo_encoder.", "motion.emotion_encoder."),
    ("cont_encoder.", "motion.content_encoder."),
    ("decoder.", "motion.decoder."),
    ("audio_content_map.", "content_mapper."),
    ("fusion_predictor.cross_attn.", "intensity_predictor.cross_attention."),
    ("fusion_predictor.norm1.", "intensity_predictor.attention_norm."),
    ("fusion_predictor.linear.", "intensity_predictor.feed_forward."),
    ("fusion_predictor.norm2.", "intensity_predictor.output_norm."),
    ("fusion_predictor.predictor.", "intensity_predictor.head."),
    ("fusion_predictor.fc1.", "intensity_predictor.fc1."),
    ("fusion_predictor.fc2.", "intensity_predictor.fc2."),
    ("emotion_embedding.", "guidance.label.layers."),
    ("clip_text_map.", "guidance.text."),
    ("clip_image_map.", "guidance.image."),
    ("semantic_emotion_map.", "fusion."),
)

# The frozen pretrained encoders inside the authors' files: prefix -> bundle backbone name and what it is.
BACKBONES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "audio_content_encoder.",
        "wav2vec2",
        {
            "architecture": "transformers Wav2Vec2Model",
            "pretrained": "facebook/wav2vec2-base-960h",
            "used_for": "content features (see inputs.content_features)",
        },
    ),
    (
        "text_encoder.",
        "roberta",
        {
            "architecture": "transformers BertModel",
            "pretrained": "hfl/chinese-roberta-wwm-ext",
            "used_for": "text tokens of the intensity predictor (last_hidden_state)",
        },
    ),
    (
        "clip_encoder.",
        "clip",
        {
            "architecture": "transformers CLIPModel",
            "pretrained": "openai/clip-vit-base-patch32",
            "used_for": "text and image guidance vectors (get_text_features, get_image_features)",
        },
    ),
)

# The authors' sizes (main.py: input_dim 174, hidden_dim 256, latent_dim 256; wav2vec2-base and
# emotion2vec-base give 768-d features, CLIP ViT-B/32 512-d vectors; the CMF runs at 768 with 8 heads).
_MOTION = {"type": "medtalk-autoencoder", "num_controls": 174, "hidden": 256, "embedding": 256}
_CONTENT = {"type": "mlp", "input_dim": 768, "hidden": 256, "embedding": 256}
_CMF = {"type": "cmf", "emotion_dim": 768, "text_dim": 768, "model_dim": 768, "heads": 8, "dropout": 0.1}
_EMOTION_MLP = {"type": "emotion-mlp", "emotion_dim": 768, "hidden": 256}
_GUIDANCE = (
    ("emotion_embedding.", "label", {"type": "label", "embedding": 256, "hidden": 512, "output_dim": 256}),
    ("clip_text_map.", "text", {"type": "text-features", "input_dim": 512, "hidden": 256, "output_dim": 256}),
    (
        "clip_image_map.",
        "image",
        {"type": "image-features", "input_dim": 512, "hidden": 256, "output_dim": 256},
    ),
)
_CMF_PREFIXES = tuple(
    theirs
    for theirs, ours in KEY_MAP
    if ours.startswith("intensity_predictor.") and not ours.startswith("intensity_predictor.fc")
)

_INPUTS = {
    "content_features": (
        "facebook/wav2vec2-base-960h as the authors run it: the CNN features linearly interpolated "
        "(align_corners) to the T output frames, then the feature projection and positional convolution; "
        "that is the encoder's hidden_states[0] (768-d), not its last layer"
    ),
    "emotion_features": (
        "emotion2vec_base frame features (iic/emotion2vec_base through funasr; 768-d at 50 Hz) linearly "
        "interpolated (align_corners) to the T frames; emotion2vec is not in the checkpoint"
    ),
    "text_tokens": (
        "hfl/chinese-roberta-wwm-ext last_hidden_state over the tokenized transcript, special tokens "
        "included (768-d)"
    ),
    "guidance_text": "CLIP ViT-B/32 get_text_features of the description (512-d)",
    "guidance_image": "CLIP ViT-B/32 get_image_features of the reference face (512-d)",
}

_TRAINING_DATA = (
    "the authors' own, not recorded in the checkpoint: MetaHuman rig curves generated with EmoFace (stages "
    "1-3) and RAVDESS converted to MetaHuman controls through Live Link (guidance); paper section 4.1"
)
_UNTRAINED_INTENSITY_NOTE = (
    "In the authors' stage-4 code the intensity predictor (fusion_predictor, here emotion-mlp) is neither "
    "loaded from stage 3 nor trained: its weights are the random initialization, frozen."
)


@dataclass
class ImportResult:
    """What ``import_official`` wrote."""

    folder: Path
    source: Path
    stage: str
    parameters: int
    backbones: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        kept = ", ".join(f"{name} ({count} tensors)" for name, count in self.backbones.items()) or "none"
        return (
            f"wrote {self.folder} from {self.source.name} ({self.stage}): {self.parameters:,} parameters; "
            f"backbones kept: {kept}"
        )


def import_official(
    checkpoint: str | os.PathLike[str], folder: str | os.PathLike[str], *, overwrite: bool = False
) -> ImportResult:
    """Read an authors' ``.pth`` checkpoint and write it as a medtalk bundle at ``folder``."""
    from medtalk.core.model.modules import MedtalkModel

    source, target = Path(checkpoint), Path(folder)
    check_target(target, overwrite)  # before reading a file that may be large
    state = read_checkpoint(source)
    config, weights, backbones = map_checkpoint(state, source)
    model = MedtalkModel.from_config(config)
    expected = model.state_dict()
    check_state_dict(
        expected,
        weights,
        str(source),
        "import-official reads the authors' checkpoints as released (their code's names and sizes)",
        display=_their_key,
    )
    model.load_state_dict(weights, strict=True)
    stage = _stage(config)
    card = {
        "name": source.stem,
        "description": f"The MEDTalk authors' model after {stage}, imported from {source.name}",
        "source": {
            "origin": "MEDTalk authors' release",
            "repository": AUTHORS_REPOSITORY,
            "file": source.name,
            "sha256": file_sha256(source),
            "stage": stage,
        },
        "rig": "metahuman-174",
        "fps": 60,
        "inputs": _inputs(config),
        "training_data": _TRAINING_DATA,
        "notes": [_UNTRAINED_INTENSITY_NOTE] if config.get("intensity_predictor") == _EMOTION_MLP else [],
    }
    save_bundle(target, model, card, backbones=backbones, overwrite=overwrite)
    return ImportResult(
        folder=target,
        source=source,
        stage=stage,
        parameters=sum(p.numel() for p in model.parameters()),
        backbones={name: len(backbone.tensors) for name, backbone in backbones.items()},
    )


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A ``.pth`` state dict, loaded weights-only: anything that needs code to unpickle is refused."""
    import torch

    if not path.exists():
        raise InputError(f"{path}: no such file: check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a folder: give the path of an authors' .pth checkpoint")
    try:
        with warnings.catch_warnings():
            # torch notes pickle protocols it did not write; the weights-only reader is what keeps us safe.
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise InputError(
            f"{path}: not a weights-only PyTorch checkpoint: {_why_unreadable(path, error)}; "
            "pass one of the authors' .pth files (medtalk never runs code from a checkpoint)"
        ) from None
    if not isinstance(state, Mapping):
        raise InputError(
            f"{path}: holds a {type(state).__name__}, not a state dict (names -> tensors): "
            "pass one of the authors' .pth files"
        )
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise InputError(
                f"{path}: entry {key!r} holds a {type(value).__name__}, not a tensor: pass a checkpoint "
                "that holds only a model's state dict"
            )
    return dict(state)


def _why_unreadable(path: Path, error: Exception) -> str:
    if path.stat().st_size == 0:
        return "it is empty"
    with open(path, "rb") as stream:
        head = stream.read(1)
    if not zipfile.is_zipfile(path) and head != b"\x80":  # torch.save writes a zip, or a binary pickle
        return "it is neither a PyTorch zip archive nor a pickle"
    message = str(error)
    needs_code = re.search(r"Unsupported global: GLOBAL (\S+)", message)
    if needs_code:
        return f"it needs code to unpickle ({needs_code.group(1)})"
    if "Weights only load failed" in message:
        return "it holds objects other than tensors and plain containers"
    first_line = message.strip().splitlines()[0] if message.strip() else ""
    return f"{type(error).__name__}: {first_line}"[:200].rstrip(": ")


def map_checkpoint(
    state: Mapping[str, torch.Tensor], source: Path
) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Backbone]]:
    """(model config, weights under our names, backbones) for an authors' state dict."""
    weights: dict[str, torch.Tensor] = {}
    backbone_tensors: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        backbone = next(((p, n) for p, n, _ in BACKBONES if key.startswith(p)), None)
        if backbone is not None:
            prefix, name = backbone
            backbone_tensors.setdefault(name, {})[key[len(prefix) :]] = tensor
            continue
        ours = _our_key(key)
        if ours is None:
            known = ", ".join(f"{theirs}*" for theirs, _ in KEY_MAP)
            raise FileFormatError(
                f"{source}: key '{key}' belongs to no MEDTalk part (theirs are {known}): pass one of the "
                "authors' checkpoints (cross_recon, audio_cont, audio_semantic or clip_emotion .pth)"
            )
        weights[ours] = tensor

    def present(prefixes: tuple[str, ...]) -> bool:
        return any(key.startswith(prefixes) for key in state)

    config: dict[str, Any] = {"motion_model": dict(_MOTION)}
    if present(("audio_content_map.",)):
        config["content_mapper"] = dict(_CONTENT)
    if present(_CMF_PREFIXES):
        config["intensity_predictor"] = dict(_CMF)
    elif present(("fusion_predictor.",)):
        config["intensity_predictor"] = dict(_EMOTION_MLP)
    guidance = {modality: dict(spec) for prefix, modality, spec in _GUIDANCE if present((prefix,))}
    if guidance:
        config["guidance_encoders"] = guidance
        config["fusion"] = {"hidden": 256}
    backbones = {
        name: Backbone(backbone_tensors[name], {**info, "source_prefix": prefix})
        for prefix, name, info in BACKBONES
        if name in backbone_tensors
    }
    return config, weights, backbones


def _our_key(theirs: str) -> str | None:
    for their_prefix, our_prefix in KEY_MAP:
        if theirs.startswith(their_prefix):
            return our_prefix + theirs[len(their_prefix) :]
    return None


def _their_key(ours: str) -> str:
    for their_prefix, our_prefix in KEY_MAP:
        if ours.startswith(our_prefix):
            return their_prefix + ours[len(our_prefix) :]
    return ours


def _stage(config: Mapping[str, Any]) -> str:
    guidance = config.get("guidance_encoders", {})
    if "text" in guidance or "image" in guidance:
        return "stage 4, multimodal guidance"
    if guidance or "intensity_predictor" in config:
        return "stage 3, fusion intensity modelling"
    if "content_mapper" in config:
        return "stage 2, audio content mapping"
    return "stage 1, cross-reconstruction"


def _inputs(config: Mapping[str, Any]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    if "content_mapper" in config:
        inputs["content_features"] = _INPUTS["content_features"]
    if "intensity_predictor" in config:
        inputs["emotion_features"] = _INPUTS["emotion_features"]
    if config.get("intensity_predictor") == _CMF:
        inputs["text_tokens"] = _INPUTS["text_tokens"]
    guidance = config.get("guidance_encoders", {})
    if guidance:
        inputs["guidance"] = {
            modality: list(EMOTION_LABELS) if modality == "label" else _INPUTS[f"guidance_{modality}"]
            for modality in guidance
        }
    return inputs
