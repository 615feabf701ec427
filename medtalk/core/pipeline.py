"""Pipeline: audio + emotion guidance -> a RigSequence, with a trained model bundle (DESIGN.md section 1).

``Pipeline.from_pretrained(NAME_OR_FOLDER)`` loads a bundle written by ``medtalk train`` (or
``medtalk import-official``), or a model registered by a plugin under that name (``embedded`` is the
one that ships with medtalk). The featurizers, encoders and transcriber its card names are built on
first use and kept on the pipeline, so a second call pays for none of them again, and a call that does
not need one (a given transcript, label guidance) never loads it.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medtalk.core.errors import ConfigError, InputError

if TYPE_CHECKING:
    from medtalk.core.audio import Audio
    from medtalk.core.sequence import RigSequence
    from medtalk.core.types import Transcript

DEFAULT_POSTPROCESSORS: tuple[dict[str, Any], ...] = ({"type": "savgol"},)
DEFAULT_GUIDANCE = "label:neutral"
# The recogniser for a model trained with transcripts whose card names none. Greedy decoding: the
# intensity predictor needs the gist of the words, and a 5-wide beam costs about twice the time.
DEFAULT_TRANSCRIBER: dict[str, Any] = {"type": "faster-whisper", "beam_size": 1}


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


def parse_track(track: str) -> Any:
    """An ``--emotion-track`` string -> the teacher's keyframes (one-line InputError when malformed)."""
    from medtalk.teacher.animate import parse_emotion_track

    return parse_emotion_track(track)


def check_request(guidance: str | None, emotion_track: str | None) -> tuple[tuple[str, str], Any]:
    """Check a call's emotion before any work: ((modality, value), keyframes or None).

    Giving both ``guidance`` and ``emotion_track`` is refused: the track sets the emotion on its own.
    """
    if guidance is not None and emotion_track is not None:
        raise InputError(
            "both --guidance and --emotion-track were given: the emotion track sets the emotion over time "
            "on its own, so give only one"
        )
    keyframes = parse_track(emotion_track) if emotion_track is not None else None
    return parse_guidance(guidance if guidance is not None else DEFAULT_GUIDANCE), keyframes


def check_fps(fps: float) -> float:
    """A positive, finite frame rate, or a one-line InputError."""
    import math

    if not (math.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps:g}: e.g. 60")
    return float(fps)


@dataclass(frozen=True)
class Animation:
    """What one pipeline call made: the sequence, and the transcript the intensity predictor read.

    ``transcript`` is None when the model reads no text; ``transcribed`` says whether it came from the
    card's speech recogniser (True) or from the caller (False).
    """

    sequence: RigSequence
    transcript: str | None
    transcribed: bool


class Pipeline:
    """A trained model with the featurizers and encoders it was trained with."""

    def __init__(self, model: Any, card: dict[str, Any], device: str = "cpu") -> None:
        from medtalk.core.plugins import get_registry

        self.model = model.to(device).eval()
        self.card = card
        self.device = device
        pipeline = card.get("pipeline", {})
        self._features: dict[str, Any] = dict(pipeline.get("features") or {})
        self._transcriber_spec = pipeline.get("transcriber", self._features.pop("transcriber", None))
        self.rig = get_registry("rig").get(pipeline.get("rig", card.get("rig", "metahuman-174")))
        self.fps = float(pipeline.get("fps", card.get("fps", 60.0)))
        self._postprocessor_specs = pipeline.get("postprocessors", DEFAULT_POSTPROCESSORS)

    # --------------------------------------------------------------------- parts, built on first use

    def _feature_part(self, kind: str, role: str) -> Any:
        from medtalk.core.plugins import build

        spec = self._features.get(role)
        return build(kind, spec) if spec is not None else None

    @functools.cached_property
    def content_featurizer(self) -> Any:
        return self._feature_part("featurizer", "content")

    @functools.cached_property
    def emotion_featurizer(self) -> Any:
        return self._feature_part("featurizer", "emotion")

    @functools.cached_property
    def text_encoder(self) -> Any:
        """The transcript encoder of the intensity predictor, or None for a model that reads no text."""
        return self._feature_part("text_encoder", "text")

    @functools.cached_property
    def guidance_text_encoder(self) -> Any:
        return self._feature_part("text_encoder", "guidance_text")

    @property
    def reads_text(self) -> bool:
        """Whether the model was trained with transcripts (its card names a text encoder)."""
        return self._features.get("text") is not None

    @functools.cached_property
    def transcriber(self) -> Any:
        """The speech recogniser that gives the transcript when the caller has none."""
        from medtalk.core.plugins import build

        return build("transcriber", self._transcriber_spec or DEFAULT_TRANSCRIBER)

    @functools.cached_property
    def postprocessors(self) -> list[Any]:
        from medtalk.core.plugins import build

        return [build("postprocessor", spec) for spec in self._postprocessor_specs]

    @functools.cached_property
    def _label_features(self) -> Any:
        """f of each of the seven labels, (7, 256): what an emotion track blends frame by frame."""
        import torch

        from medtalk.core.data.samples import EMOTIONS

        labels = torch.arange(len(EMOTIONS), device=self.device)
        with torch.no_grad():
            return self.model.encode_guidance("label", labels)

    # ------------------------------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str], device: str = "cpu") -> Pipeline:
        """A registered model by name, or a bundle folder."""
        from medtalk.core.model.bundle import load_bundle
        from medtalk.core.plugins import get_registry

        name = str(name_or_path)
        models = get_registry("model")
        if name in models:
            pipeline = models.build({"type": name}).load()
            return pipeline.to(device) if isinstance(pipeline, Pipeline) else pipeline
        folder = Path(name_or_path)
        if not folder.exists():
            known = ", ".join(models.names()) or "none registered"
            raise InputError(
                f"{name}: no such model: give a bundle folder (from 'medtalk train') "
                f"or a model name ({known})"
            )
        model, card = load_bundle(folder)
        return cls(model, card, device)

    def to(self, device: str) -> Pipeline:
        """Move the model to ``device`` (``cpu``, ``cuda``); returns the pipeline."""
        if device != self.device:
            self.model.to(device)
            self.device = device
            self.__dict__.pop("_label_features", None)
        return self

    # ---------------------------------------------------------------------------------- inference

    def __call__(
        self,
        audio: Audio | str | os.PathLike[str],
        guidance: str | None = None,
        transcript: str | None = None,
        *,
        emotion_track: str | None = None,
        fps: float | None = None,
    ) -> RigSequence:
        """Animate ``audio``: a RigSequence of round(duration x fps) frames (see ``animate``)."""
        return self.animate(audio, guidance, transcript, emotion_track=emotion_track, fps=fps).sequence

    def animate(
        self,
        audio: Audio | str | os.PathLike[str],
        guidance: str | None = None,
        transcript: str | None = None,
        *,
        emotion_track: str | None = None,
        fps: float | None = None,
    ) -> Animation:
        """Animate ``audio`` under ``guidance`` (default ``label:neutral``) or an ``emotion_track``.

        ``guidance``: ``label:NAME``, ``text:...`` or ``image:PATH``. ``emotion_track``: keyframes
        ``"0:neutral,1.5:angry@0.8"`` (docs/run.md), blended per frame; it replaces ``guidance``, and
        giving both is an error. ``transcript``: what was said, for a model whose intensity predictor
        reads text; when None, the card's speech recogniser transcribes the audio. ``fps``: output frame
        rate, default the model's.
        """
        import numpy as np
        import torch

        from medtalk.core.audio import Audio, load_audio
        from medtalk.core.data.batching import interpolate_to_frames
        from medtalk.core.sequence import RigSequence

        # Check the emotion before any audio work, so a typo costs no featurizing.
        _, keyframes = check_request(guidance, emotion_track)
        fps = self.fps if fps is None else check_fps(fps)
        if not isinstance(audio, Audio):
            audio = load_audio(audio)
        frames = round(audio.duration * fps)
        if frames < 1:
            raise InputError(f"the audio is too short for one frame at {fps:g} fps: give a longer recording")
        if keyframes is None:
            feature = self.encode_guidance(guidance if guidance is not None else DEFAULT_GUIDANCE)
            strength = None
        else:
            with torch.no_grad():
                feature, strength = self._track_feature(keyframes, frames, fps)
        recognition = None
        if self.reads_text and transcript is None:
            # CTranslate2 (faster-whisper) decodes without holding the GIL, so the words are heard while
            # the features are computed and the text encoder loads: on 2 cores that saves most of the
            # recogniser's time.
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medtalk-asr")
            recognition = pool.submit(self.transcribe, audio)
            pool.shutdown(wait=False)
        streams = []
        for role, featurizer in (("content", self.content_featurizer), ("emotion", self.emotion_featurizer)):
            if featurizer is None:
                raise ConfigError(f"this model's card names no {role} featurizer: it cannot animate audio")
            features = featurizer(audio)
            streams.append(interpolate_to_frames(features.values, features.rate_hz, frames, fps))
        content, emotion = (torch.from_numpy(s.astype(np.float32))[None].to(self.device) for s in streams)
        if recognition is not None:
            load = getattr(self.text_encoder, "load", None)
            if callable(load):
                load()
            transcript = recognition.result().text
        tokens = mask = None
        if transcript and self.text_encoder is not None:
            encoded = self.text_encoder(transcript).tokens
            if len(encoded):
                tokens = torch.from_numpy(np.asarray(encoded, dtype=np.float32))[None].to(self.device)
                mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=self.device)
        with torch.no_grad():
            rig = self._generate(content, emotion, tokens, mask, feature, strength)
        sequence = RigSequence(rig[0].cpu().numpy(), fps=fps, rig=self.rig.name)
        for postprocessor in self.postprocessors:
            sequence = postprocessor(sequence, self.rig)
        return Animation(sequence, transcript if self.reads_text else None, recognition is not None)

    def encode_guidance(self, guidance: str) -> Any:
        """The emotion feature f of ``label:NAME``, ``text:...`` or ``image:PATH`` guidance: a (1, 256)
        tensor (the model's guidance size) on the pipeline's device, what ``animate`` conditions a clip on.
        Text or image guidance loads its frozen encoder on first use; bad guidance is a one-line
        ``InputError`` or ``ConfigError``."""
        import torch

        modality, value = parse_guidance(guidance)
        with torch.no_grad():
            return self.model.encode_guidance(modality, self._guidance_input(modality, value))

    def transcribe(self, audio: Audio) -> Transcript:
        """The card's speech recogniser on ``audio`` (loaded on the first call, then kept)."""
        return self.transcriber(audio)

    def _generate(
        self,
        content_features: Any,
        emotion_features: Any,
        tokens: Any,
        mask: Any,
        guidance_feature: Any,
        strength: Any,
    ) -> Any:
        """Eq. 5 as ``MedtalkModel.forward``, with the predicted intensity scaled by a track's strength."""
        model = self.model
        if model.content_mapper is None or model.intensity_predictor is None:
            return model(content_features, emotion_features, tokens, mask, guidance_feature)["rig"]
        if content_features.shape[:2] != emotion_features.shape[:2]:
            raise InputError(
                f"content features are (B, T) = {tuple(content_features.shape[:2])}, emotion features "
                f"{tuple(emotion_features.shape[:2])}: interpolate both to the same frames"
            )
        content = model.content_mapper(content_features)
        intensity = model.intensity_predictor(emotion_features, tokens, mask)
        if strength is not None:
            intensity = intensity * strength
        return model.motion.decode(model.emotion_embedding(guidance_feature, intensity), content)

    def _track_feature(self, keyframes: Any, frames: int, fps: float) -> tuple[Any, Any]:
        """Per-frame f (1, T, 256): the seven label features blended with the track's weights, and the
        track's strength per frame (1, T, 1)."""
        import torch

        from medtalk.teacher.animate import emotion_weights

        weights, strengths = emotion_weights(keyframes, frames, fps)
        weights = torch.from_numpy(weights.astype("float32")).to(self.device)
        feature = weights @ self._label_features
        strength = torch.from_numpy(strengths.astype("float32")).to(self.device)
        return feature[None], strength[None, :, None]

    def _guidance_input(self, modality: str, value: str) -> Any:
        import numpy as np
        import torch

        from medtalk.core.data.samples import EMOTIONS

        if modality == "label":
            if value not in EMOTIONS:
                raise InputError(f"unknown emotion label '{value}': use one of {', '.join(EMOTIONS)}")
            return torch.tensor([EMOTIONS.index(value)], device=self.device)
        encoder = dict(self.model.guidance.items()).get(modality)
        if encoder is None:
            self.model.encode_guidance(modality, None)  # raises: this model has no such encoder
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

        self.check_installed()
        model, card = load_bundle(self.bundle_path)
        return Pipeline(model, card)

    def check_installed(self) -> None:
        """Raise a one-line InputError when the bundle folder is not there (override to say more)."""

    @classmethod
    def installed(cls) -> bool:
        """Whether the bundle folder holds a model card (``medtalk models`` shows it)."""
        return (Path(cls.bundle_path) / "model.json").is_file()
