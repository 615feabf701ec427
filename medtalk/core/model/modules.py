"""The MEDTalk networks (paper section 3; sizes and parameter layout of the authors' released code).

Each registered network is declared torch-free in ``medtalk.plugins.model_parts`` (its name, ``Config``
and description, so that listing components never imports torch) and implemented here by a subclass
that also inherits ``nn.Module``. Build them with ``medtalk.build(kind, {"type": name, ...})``, or
directly: ``MotionAutoencoder(MotionAutoencoder.Config(num_controls=52))``.

Shapes: B clips, T frames, C rig controls. Everything works per frame on (B, T, ...) tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from medtalk.core.config import format_validation_error
from medtalk.core.errors import ConfigError, InputError
from medtalk.plugins import model_parts as declared
from medtalk.plugins.model_parts import EMOTION_LABELS

GUIDANCE_MODALITIES = ("label", "text", "image")
INTENSITY_SCALE = 0.1  # DESIGN section 4: the authors' get_intensity scale


def _check_size(tensor: torch.Tensor, dims: int, size: int, what: str, fix: str) -> None:
    """One-line InputError when ``tensor`` is not ``dims``-D with ``size`` values on its last axis."""
    if tensor.dim() != dims or tensor.shape[-1] != size:
        raise InputError(
            f"{what} have shape {tuple(tensor.shape)}, expected {dims}-D with {size} last: {fix}"
        )


# ------------------------------------------------------------------------------------ motion model


class TwoLayerMLP(nn.Module):
    """Linear -> ReLU -> Linear on the last axis (per frame on (B, T, D)); the authors' Encoder/Decoder."""

    def __init__(self, input_dim: int, hidden: int, output_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden)
        self.fc2 = nn.Linear(hidden, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class MotionAutoencoder(declared.MotionAutoencoderSpec, nn.Module):
    """Disentangled motion autoencoder: E_e, E_c (C -> 256 -> 256 per frame), D ([emotion; content] -> C)."""

    def __init__(self, config: declared.MotionAutoencoderConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        self.emotion_encoder = TwoLayerMLP(c.num_controls, c.hidden, c.embedding)
        self.content_encoder = TwoLayerMLP(c.num_controls, c.hidden, c.embedding)
        self.decoder = TwoLayerMLP(2 * c.embedding, c.hidden, c.num_controls)

    @property
    def embedding_dim(self) -> int:
        return self.config.embedding

    def _check_rig(self, rig: torch.Tensor) -> None:
        _check_size(
            rig, 3, self.config.num_controls, "rig values", "pass (B, T, C) values of the model's rig"
        )

    def encode_emotion(self, rig: torch.Tensor) -> torch.Tensor:
        """E_e: (B, T, C) -> (B, T, 256)."""
        self._check_rig(rig)
        return self.emotion_encoder(rig)

    def encode_content(self, rig: torch.Tensor) -> torch.Tensor:
        """E_c: (B, T, C) -> (B, T, 256)."""
        self._check_rig(rig)
        return self.content_encoder(rig)

    def decode(self, emotion: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """D([emotion; content]): two (B, T, 256) embeddings -> (B, T, C). The order is the authors'."""
        return self.decoder(torch.cat((emotion, content), dim=-1))

    def forward(self, rig: torch.Tensor) -> torch.Tensor:
        """Self-reconstruction (eq. 2): D(E_e(R), E_c(R))."""
        return self.decode(self.encode_emotion(rig), self.encode_content(rig))


# --------------------------------------------------------------------------------- content mappers


class MlpContentMapper(declared.MlpContentMapperSpec, nn.Module):
    """ACM for features that carry context (wav2vec2, whisper): D -> 256 -> 256 per frame."""

    def __init__(self, config: declared.MlpContentMapperConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        self.fc1 = nn.Linear(c.input_dim, c.hidden)
        self.fc2 = nn.Linear(c.hidden, c.embedding)

    @property
    def embedding_dim(self) -> int:
        return self.config.embedding

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, 256)."""
        _check_size(features, 3, self.config.input_dim, "content features", "set input_dim to their size")
        return self.fc2(F.relu(self.fc1(features)))


class TemporalConvContentMapper(declared.TemporalConvContentMapperSpec, nn.Module):
    """ACM for context-free features (log-mel): a 1-D convolution over a window of frames, then to 256."""

    def __init__(self, config: declared.TemporalConvContentMapperConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        # Edges repeat the first and last frames: zero padding would read as a loud or silent frame
        # (log-mel of silence is far from 0) and twitch the lips at both ends of every clip.
        self.conv = nn.Conv1d(c.input_dim, c.hidden, c.window, padding="same", padding_mode="replicate")
        # Named apart from ``conv`` so a one-layer mapper keeps the parameter names it always had.
        self.deeper = nn.ModuleList(
            nn.Conv1d(c.hidden, c.hidden, c.window, padding="same", padding_mode="replicate")
            for _ in range(c.layers - 1)
        )
        self.fc = nn.Linear(c.hidden, c.embedding)

    @property
    def embedding_dim(self) -> int:
        return self.config.embedding

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, 256); with one layer frame t sees frames t - window//2 .. t + (window-1)//2,
        and each further layer widens that by the same amounts."""
        _check_size(features, 3, self.config.input_dim, "content features", "set input_dim to their size")
        hidden = F.relu(self.conv(features.transpose(1, 2)))
        for conv in self.deeper:
            hidden = F.relu(conv(hidden))
        return self.fc(hidden.transpose(1, 2))


# ---------------------------------------------------------------------------- intensity predictors


class CrossModalityFusion(declared.CrossModalityFusionSpec, nn.Module):
    """CMF (Fig. 2b): emotion features attend to text tokens (8 heads), then residual layers -> intensity.

    queries = the frame-wise emotion features, projected to ``model_dim`` when their size differs (the
    authors' 768-d emotion2vec features are used as they are); keys and values = the text tokens.
    x = LayerNorm(q + attention); x = LayerNorm(x + Linear(x)); intensity = Linear(x) -> 1.

    Without text (no tokens, or every token of a clip masked out) the attention output of that clip is
    zero, so the residual path carries the emotion features alone: the same layers then predict the
    intensity from audio, rather than attending to nothing (which is NaN).
    """

    def __init__(self, config: declared.CrossModalityFusionConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        self.query_projection: nn.Module = (
            nn.Identity() if c.emotion_dim == c.model_dim else nn.Linear(c.emotion_dim, c.model_dim)
        )
        self.cross_attention = nn.MultiheadAttention(
            c.model_dim, c.heads, dropout=c.dropout, kdim=c.text_dim, vdim=c.text_dim, batch_first=True
        )
        self.attention_norm = nn.LayerNorm(c.model_dim)
        self.feed_forward = nn.Linear(c.model_dim, c.model_dim)
        self.dropout = nn.Dropout(c.dropout)
        self.output_norm = nn.LayerNorm(c.model_dim)
        self.head = nn.Linear(c.model_dim, 1)

    def forward(
        self,
        emotion_features: torch.Tensor,
        text_tokens: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T, De), (B, N, Dt) or None, (B, N) bool with True on real tokens or None -> (B, T, 1)."""
        c = self.config
        _check_size(emotion_features, 3, c.emotion_dim, "emotion features", "set emotion_dim to their size")
        queries = self.query_projection(emotion_features)
        attended = self._attend(queries, text_tokens, text_mask)
        x = self.attention_norm(queries + attended)
        x = self.output_norm(x + self.dropout(self.feed_forward(x)))
        return self.head(x)

    def _attend(
        self, queries: torch.Tensor, text_tokens: torch.Tensor | None, text_mask: torch.Tensor | None
    ) -> torch.Tensor:
        if text_tokens is None or text_tokens.shape[1] == 0:
            return torch.zeros_like(queries)
        _check_size(text_tokens, 3, self.config.text_dim, "text tokens", "set text_dim to their size")
        if text_tokens.shape[0] != queries.shape[0]:
            raise InputError(
                f"text tokens are for {text_tokens.shape[0]} clips, emotion features for {queries.shape[0]}: "
                "pass one token sequence per clip"
            )
        if text_mask is None:
            text_mask = torch.ones(text_tokens.shape[:2], dtype=torch.bool, device=text_tokens.device)
        elif tuple(text_mask.shape) != tuple(text_tokens.shape[:2]):
            raise InputError(
                f"the text mask has shape {tuple(text_mask.shape)}, the tokens "
                f"{tuple(text_tokens.shape[:2])}: pass one flag per token"
            )
        text_mask = text_mask.bool()
        has_text = text_mask.any(dim=1)
        # A clip without a real token attends to its padding (to keep softmax finite), then drops the result.
        ignored = ~text_mask & has_text[:, None]
        attended, _ = self.cross_attention(
            queries, text_tokens, text_tokens, key_padding_mask=ignored, need_weights=False
        )
        return torch.where(has_text[:, None, None], attended, torch.zeros_like(attended))


class EmotionMlpIntensity(declared.EmotionMlpIntensitySpec, nn.Module):
    """Intensity from emotion features alone, no text: D -> 256 -> 1 per frame (the authors' stage 4)."""

    def __init__(self, config: declared.EmotionMlpIntensityConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        self.fc1 = nn.Linear(c.emotion_dim, c.hidden)
        self.fc2 = nn.Linear(c.hidden, 1)

    def forward(
        self,
        emotion_features: torch.Tensor,
        text_tokens: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T, De) -> (B, T, 1); the text arguments are accepted and ignored."""
        _check_size(
            emotion_features, 3, self.config.emotion_dim, "emotion features", "set emotion_dim to their size"
        )
        return self.fc2(F.relu(self.fc1(emotion_features)))


# ------------------------------------------------------------------------------- guidance encoders


def emotion_label_indices(labels: Sequence[str]) -> torch.Tensor:
    """Label names -> (B,) indices into EMOTION_LABELS, for LabelGuidance."""
    indices = []
    for label in labels:
        if label not in EMOTION_LABELS:
            raise InputError(f"unknown emotion label '{label}': use one of {', '.join(EMOTION_LABELS)}")
        indices.append(EMOTION_LABELS.index(label))
    return torch.tensor(indices, dtype=torch.long)


class LabelGuidance(declared.LabelGuidanceSpec, nn.Module):
    """Emotion label -> f: a table of 7 rows, then 512 -> LeakyReLU(0.2) -> 256."""

    def __init__(self, config: declared.LabelGuidanceConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        self.layers = nn.Sequential(
            nn.Embedding(len(EMOTION_LABELS), c.embedding),
            nn.Linear(c.embedding, c.hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(c.hidden, c.output_dim),
        )

    @property
    def output_dim(self) -> int:
        return self.config.output_dim

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        """(B,) indices into EMOTION_LABELS -> (B, 256)."""
        if labels.dim() != 1 or labels.is_floating_point() or labels.dtype == torch.bool:
            raise InputError(
                f"emotion labels must be a 1-D tensor of indices, got shape {tuple(labels.shape)} of "
                f"{labels.dtype}: use emotion_label_indices(names)"
            )
        labels = labels.long()
        if labels.numel() and not bool(((labels >= 0) & (labels < len(EMOTION_LABELS))).all()):
            raise InputError(
                f"emotion label indices must be 0..{len(EMOTION_LABELS) - 1} "
                f"({', '.join(EMOTION_LABELS)}), got {labels.tolist()}"
            )
        return self.layers(labels)


class _FeatureProjection:
    """P_text / P_image body: a precomputed frozen-encoder vector (B, D) -> f (B, 256) through 256."""

    def __init__(self, config: declared.FeatureProjectionConfig | None = None) -> None:
        super().__init__(config)  # type: ignore[call-arg]
        c = self.config
        self.fc1 = nn.Linear(c.input_dim, c.hidden)
        self.fc2 = nn.Linear(c.hidden, c.output_dim)

    @property
    def output_dim(self) -> int:
        return self.config.output_dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, 256)."""
        _check_size(features, 2, self.config.input_dim, "guidance features", "set input_dim to their size")
        return self.fc2(F.relu(self.fc1(features)))


class TextFeatureGuidance(_FeatureProjection, declared.TextFeatureGuidanceSpec, nn.Module):
    """P_text: a precomputed text-encoder vector (CLIP, MiniLM) -> f, through 256 -> 256."""


class ImageFeatureGuidance(_FeatureProjection, declared.ImageFeatureGuidanceSpec, nn.Module):
    """P_image: a precomputed image-encoder vector (CLIP, face blendshapes) -> f, through 256 -> 256."""


# ------------------------------------------------------------------------ fusion and eq. 8, eq. 9


class FusionEncoder(TwoLayerMLP):
    """E_fuse: a norm-adjusted emotion feature -> the frozen emotion embedding space (256 -> 256 -> 256)."""


def adjust_norm(feature: torch.Tensor, intensity: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Eq. 9: f~_t = I_t / ||f|| * f, frame by frame.

    ``feature`` is (B, D) (one feature per clip) or (B, T, D) (a feature per frame, e.g. an emotion
    track that changes over time); ``intensity`` is (B, T, 1); the result is (B, T, D). The division is by
    ``||f|| + eps``, as in the authors' code: a zero feature then stays zero instead of becoming NaN, and
    for any other feature the result's norm is I_t to within a relative eps / ||f||. A negative I_t (the
    predictor is not bounded) flips the feature, as in the authors' code.
    """
    if feature.dim() == 2:
        feature = feature[:, None, :]
    norm = torch.linalg.vector_norm(feature, dim=-1, keepdim=True)
    return feature * (intensity / (norm + eps))


def intensity_target(
    rig: torch.Tensor, indices: Sequence[int], scale: float = INTENSITY_SCALE
) -> torch.Tensor:
    """Eq. 8 pseudo-intensity: ``scale`` x the L1 norm of the S_int controls, (B, T, C) -> (B, T, 1).

    ``indices`` is the rig's ``intensity`` set (``rig_spec.sets["intensity"]``); scale 0.1 as the authors.
    """
    return rig[..., list(indices)].abs().sum(dim=-1, keepdim=True) * scale


# ----------------------------------------------------------------------------------- whole model


class FusionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hidden: int = Field(default=256, ge=1, description="Width of E_fuse's hidden layer")


class MedtalkModelConfig(BaseModel):
    """What ``MedtalkModel.from_config`` accepts and ``config_dict`` returns (a bundle card's ``model``)."""

    model_config = ConfigDict(extra="forbid")

    motion_model: dict[str, Any] | str = Field(description="The motion autoencoder: {type: NAME, ...}")
    content_mapper: dict[str, Any] | str | None = Field(default=None, description="The ACM, if any")
    intensity_predictor: dict[str, Any] | str | None = Field(
        default=None, description="The intensity predictor (CMF), if any"
    )
    guidance_encoders: dict[str, dict[str, Any] | str] = Field(
        default_factory=dict, description="Guidance encoders by modality: label, text, image"
    )
    fusion: FusionConfig | None = Field(default=None, description="E_fuse sizes (built with any guidance)")


def _spec_of(part: Any) -> dict[str, Any]:
    return {"type": part.name, **part.config.model_dump(mode="json")}


class MedtalkModel(nn.Module):
    """The whole MEDTalk model: motion autoencoder, ACM, intensity predictor, guidance encoders, E_fuse.

    Parts other than the motion model may be absent (a model imported from the authors' stage-1 checkpoint
    has none); using an absent part is a one-line ConfigError. E_fuse exists when a guidance encoder does.
    """

    def __init__(
        self,
        motion: Any,
        content_mapper: Any = None,
        intensity_predictor: Any = None,
        guidance_encoders: Mapping[str, Any] | None = None,
        fusion: FusionEncoder | None = None,
        fusion_hidden: int = 256,
    ) -> None:
        super().__init__()
        self.motion = motion
        self.content_mapper = content_mapper
        self.intensity_predictor = intensity_predictor
        self.guidance = nn.ModuleDict(dict(guidance_encoders or {}))
        for modality, encoder in self.guidance.items():
            if modality not in GUIDANCE_MODALITIES:
                raise ConfigError(
                    f"unknown guidance modality '{modality}': use one of {', '.join(GUIDANCE_MODALITIES)}"
                )
            if encoder.modality != modality:
                raise ConfigError(
                    f"guidance encoder '{encoder.name}' encodes {encoder.modality} guidance, but is "
                    f"configured under '{modality}': move it under '{encoder.modality}'"
                )
        self._check_sizes()
        if fusion is None and len(self.guidance):
            fusion = FusionEncoder(self._guidance_dim(), fusion_hidden, self._embedding_dim())
        self.fusion = fusion

    def _embedding_dim(self) -> int:
        # The size the decoder takes per half; a third-party motion model without the property uses DESIGN's.
        return getattr(self.motion, "embedding_dim", 256)

    def _guidance_dim(self) -> int:
        dims = [e.output_dim for e in self.guidance.values() if hasattr(e, "output_dim")]
        return dims[0] if dims else self._embedding_dim()

    def _check_sizes(self) -> None:
        embedding = self._embedding_dim()
        mapper = self.content_mapper
        if mapper is not None and getattr(mapper, "embedding_dim", embedding) != embedding:
            raise ConfigError(
                f"content mapper '{mapper.name}' gives {mapper.embedding_dim}-d content, the motion model "
                f"takes {embedding}-d: set embedding: {embedding} in content_mapper"
            )
        dims = {m: e.output_dim for m, e in self.guidance.items() if hasattr(e, "output_dim")}
        if len(set(dims.values())) > 1:
            listed = ", ".join(f"{m} {d}" for m, d in dims.items())
            raise ConfigError(
                f"the guidance encoders give features of different sizes ({listed}): give them one output_dim"
            )

    # ------------------------------------------------------------------------------ building

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MedtalkModel:
        """Build every part through ``medtalk.build(kind, spec)`` from a ``MedtalkModelConfig`` mapping."""
        from medtalk.core.plugins import build

        if not isinstance(config, Mapping):
            raise ConfigError(
                f"a model config must be a mapping with a 'motion_model' key, got {type(config).__name__}"
            )
        try:
            parsed = MedtalkModelConfig.model_validate(dict(config))
        except ValidationError as error:
            raise ConfigError(format_validation_error("the model", MedtalkModelConfig, error)) from None
        if parsed.fusion is not None and not parsed.guidance_encoders:
            raise ConfigError("the model config sets fusion but no guidance_encoders: E_fuse needs guidance")
        optional = {
            kind: build(kind, spec) if spec is not None else None
            for kind, spec in (
                ("content_mapper", parsed.content_mapper),
                ("intensity_predictor", parsed.intensity_predictor),
            )
        }
        guidance = {}
        for modality, spec in parsed.guidance_encoders.items():
            guidance[modality] = build("guidance_encoder", spec)
        return cls(
            build("motion_model", parsed.motion_model),
            optional["content_mapper"],
            optional["intensity_predictor"],
            guidance,
            fusion_hidden=(parsed.fusion or FusionConfig()).hidden,
        )

    def config_dict(self) -> dict[str, Any]:
        """The config that rebuilds this model with ``from_config``, read from the parts themselves."""
        config: dict[str, Any] = {"motion_model": _spec_of(self.motion)}
        if self.content_mapper is not None:
            config["content_mapper"] = _spec_of(self.content_mapper)
        if self.intensity_predictor is not None:
            config["intensity_predictor"] = _spec_of(self.intensity_predictor)
        if len(self.guidance):
            config["guidance_encoders"] = {m: _spec_of(e) for m, e in self.guidance.items()}
        if self.fusion is not None:
            config["fusion"] = {"hidden": self.fusion.fc1.out_features}
        return config

    # ------------------------------------------------------------------------------ inference

    def _part(self, attribute: str, what: str) -> Any:
        part = getattr(self, attribute)
        if part is None:
            raise ConfigError(
                f"this model has no {what}: add {attribute} to its config, or use a model trained with one"
            )
        return part

    def encode_guidance(self, modality: str, guidance: torch.Tensor) -> torch.Tensor:
        """Guidance values (label indices, or a frozen encoder's vectors) -> f (B, 256)."""
        if modality not in self.guidance:
            has = ", ".join(self.guidance) or "none"
            raise ConfigError(
                f"this model has no {modality} guidance encoder (it has: {has}): use one of those, "
                f"or a model trained for {modality} guidance"
            )
        return self.guidance[modality](guidance)

    def emotion_embedding(self, guidance_feature: torch.Tensor, intensity: torch.Tensor) -> torch.Tensor:
        """E_fuse(adjust_norm(f, I)): f (B, 256) or (B, T, 256), I (B, T, 1) -> (B, T, 256)."""
        fusion = self._part("fusion", "fusion encoder (it has no guidance encoder)")
        return fusion(adjust_norm(guidance_feature, intensity))

    def forward(
        self,
        content_features: torch.Tensor,
        emotion_features: torch.Tensor,
        text_tokens: torch.Tensor | None,
        text_mask: torch.Tensor | None,
        guidance_feature: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Eq. 5: R = D(FIM(A, g), ACM(A)) through the motion model's decoder (frozen while training).

        content_features (B, T, Dc) and emotion_features (B, T, De) at the model's frame rate; text_tokens
        (B, N, Dt) or None with text_mask (B, N) (True on real tokens) or None; guidance_feature (B, 256)
        from ``encode_guidance``. Returns rig (B, T, C), intensity (B, T, 1), content and emotion (B, T, 256).
        """
        mapper = self._part("content_mapper", "content mapper")
        predictor = self._part("intensity_predictor", "intensity predictor")
        if content_features.shape[:2] != emotion_features.shape[:2]:
            raise InputError(
                f"content features are (B, T) = {tuple(content_features.shape[:2])}, emotion features "
                f"{tuple(emotion_features.shape[:2])}: interpolate both to the same frames"
            )
        content = mapper(content_features)
        intensity = predictor(emotion_features, text_tokens, text_mask)
        emotion = self.emotion_embedding(guidance_feature, intensity)
        rig = self.motion.decode(emotion, content)
        return {"rig": rig, "intensity": intensity, "content": content, "emotion": emotion}
