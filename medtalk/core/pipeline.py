"""Pipeline: audio + emotion guidance -> a RigSequence, with a trained model bundle (DESIGN.md section 1).

``Pipeline.from_pretrained(NAME_OR_FOLDER)`` loads a bundle written by ``medtalk train`` (or
``medtalk import-official``), or a model registered by a plugin under that name, and builds the
featurizers and encoders its card names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medtalk.core.errors import ConfigError, InputError

if TYPE_CHECKING:
    from medtalk.core.audio import Audio
    from medtalk.core.sequence import RigSequence

DEFAULT_POSTPROCESSORS: tuple[dict[str, Any], ...] = ({"type": "savgol"},)


def parse_guidance(guidance: str) -> tuple[str, str]:
    """``label:happy`` / ``text:"smirking, raised brow"`` / ``image:face.png`` -> (modality, value)."""
    modality, separator, value = guidance.partition(":")
    if not separator or modality not in ("label", "text", "image"):
        raise InputError(
            f"guidance '{guidance}' is not label:NAME, text:\"...\" or image:PATH: e.g. label:happy"
        )
    if not value.strip():
        raise InputError(f"guidance '{guidance}' is empty: give a {modality} after '{modality}:'")
    return modality, value.strip()


class Pipeline:
    """A trained model with the featurizers and encoders it was trained with."""

    def __init__(self, model: Any, card: dict[str, Any], device: str = "cpu") -> None:
        from medtalk.core.plugins import build, get_registry

        self.model = model.to(device).eval()
        self.card = card
        self.device = device
        pipeline = card.get("pipeline", {})
        features = pipeline.get("features", {})
        self.rig = get_registry("rig").get(pipeline.get("rig", card.get("rig", "metahuman-174")))
        self.fps = float(pipeline.get("fps", card.get("fps", 60.0)))

        def optional(kind: str, spec: Any) -> Any:
            return build(kind, spec) if spec is not None else None

        self.content_featurizer = optional("featurizer", features.get("content"))
        self.emotion_featurizer = optional("featurizer", features.get("emotion"))
        self.text_encoder = optional("text_encoder", features.get("text"))
        self.guidance_text_encoder = optional("text_encoder", features.get("guidance_text"))
        self.postprocessors = [
            build("postprocessor", spec) for spec in pipeline.get("postprocessors", DEFAULT_POSTPROCESSORS)
        ]

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str], device: str = "cpu") -> Pipeline:
        """A registered model by name, or a bundle folder."""
        from medtalk.core.model.bundle import load_bundle
        from medtalk.core.plugins import get_registry

        name = str(name_or_path)
        models = get_registry("model")
        if name in models:
            return models.build({"type": name}).load()
        folder = Path(name_or_path)
        if not folder.exists():
            known = ", ".join(models.names()) or "none registered"
            raise InputError(
                f"{name}: no such model: give a bundle folder (from 'medtalk train') "
                f"or a model name ({known})"
            )
        model, card = load_bundle(folder)
        return cls(model, card, device)

    def __call__(
        self,
        audio: Audio | str | os.PathLike[str],
        guidance: str = "label:neutral",
        transcript: str | None = None,
    ) -> RigSequence:
        import numpy as np
        import torch

        from medtalk.core.audio import Audio, load_audio
        from medtalk.core.data.batching import interpolate_to_frames
        from medtalk.core.sequence import RigSequence

        if not isinstance(audio, Audio):
            audio = load_audio(audio)
        frames = round(audio.duration * self.fps)
        if frames < 1:
            raise InputError(
                f"the audio is too short for one frame at {self.fps:g} fps: give a longer recording"
            )
        modality, value = parse_guidance(guidance)
        streams = []
        for role, featurizer in (("content", self.content_featurizer), ("emotion", self.emotion_featurizer)):
            if featurizer is None:
                raise ConfigError(f"this model's card names no {role} featurizer: it cannot animate audio")
            features = featurizer(audio)
            streams.append(interpolate_to_frames(features.values, features.rate_hz, frames, self.fps))
        content, emotion = (torch.from_numpy(s.astype(np.float32))[None].to(self.device) for s in streams)
        tokens = mask = None
        if transcript and self.text_encoder is not None:
            encoded = self.text_encoder(transcript).tokens
            if len(encoded):
                tokens = torch.from_numpy(np.asarray(encoded, dtype=np.float32))[None].to(self.device)
                mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=self.device)
        with torch.no_grad():
            feature = self.model.encode_guidance(modality, self._guidance_input(modality, value))
            output = self.model(content, emotion, tokens, mask, feature)
        sequence = RigSequence(output["rig"][0].cpu().numpy(), fps=self.fps, rig=self.rig.name)
        for postprocessor in self.postprocessors:
            sequence = postprocessor(sequence, self.rig)
        return sequence

    def _guidance_input(self, modality: str, value: str) -> Any:
        import numpy as np
        import torch

        from medtalk.core.data.samples import EMOTIONS

        if modality == "label":
            if value not in EMOTIONS:
                raise InputError(f"unknown emotion label '{value}': use one of {', '.join(EMOTIONS)}")
            return torch.tensor([EMOTIONS.index(value)], device=self.device)
        encoder = dict(self.model.guidance.items()).get(modality)
        path = Path(value)
        precomputed = modality == "image" and path.suffix.lower() in (".npy", ".json")
        if encoder is not None and encoder.embeds and not precomputed:
            vector = encoder.embed([value])[0]
        elif modality == "text":
            if self.guidance_text_encoder is None:
                raise ConfigError("this model was trained without text guidance: use label:NAME")
            vector = self.guidance_text_encoder(value).sentence
        elif path.suffix.lower() == ".npy" and path.is_file():
            vector = np.load(path, allow_pickle=False)
        elif path.suffix.lower() == ".json" and path.is_file():
            vector = json.loads(path.read_text(encoding="utf-8"))
        elif precomputed:
            raise InputError(f"{path}: no such file: check the path")
        else:
            raise InputError(
                f"{path}: this model's image guidance takes a precomputed vector (.npy or .json): "
                "give one, or use a model trained with an image encoder such as face-blendshapes"
            )
        return torch.from_numpy(np.asarray(vector, dtype=np.float32).reshape(1, -1)).to(self.device)


class BundleModel:
    """Base of a model a plugin registers by name: set ``name`` and ``bundle_path`` (a bundle folder).

    ``Pipeline.from_pretrained(name)`` then loads that bundle::

        class StudioFace(BundleModel, medtalk.Model):
            \"\"\"Our studio's face, trained on our captures.\"\"\"
            name = "studio-face"
            bundle_path = Path(__file__).parent / "studio-face"
    """

    bundle_path: os.PathLike[str] | str

    def load(self) -> Pipeline:
        from medtalk.core.model.bundle import load_bundle

        model, card = load_bundle(self.bundle_path)
        return Pipeline(model, card)
