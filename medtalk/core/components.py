"""The small interfaces every swappable part implements.

A component is a class with a ``name``, a nested pydantic ``Config`` (``extra="forbid"``, every field
described) and a constructor taking that config. ``medtalk.build(kind, {"type": name, ...})``
validates the config before constructing. Parts that are neural networks (content mapper, intensity
predictor, guidance encoder, motion model) also inherit ``torch.nn.Module`` in their concrete class, so
this module never imports torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from medtalk.core.errors import ConfigError

if TYPE_CHECKING:
    from medtalk.core.audio import Audio
    from medtalk.core.rig import RigSpec
    from medtalk.core.sequence import RigSequence
    from medtalk.core.types import FeatureSeq, TextEncoding, Transcript


class ComponentConfig(BaseModel):
    """Base of every component's nested ``Config``: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class Component(ABC):
    """A buildable, swappable part. Subclasses set ``name`` and may define a nested ``Config``."""

    name: ClassVar[str]
    Config: ClassVar[type[ComponentConfig]] = ComponentConfig

    def __init__(self, config: ComponentConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else self.Config()

    @classmethod
    def describe(cls) -> str:
        """The first line of the class docstring: what ``medtalk components`` shows."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


@dataclass(frozen=True)
class StreamingForm:
    """How a featurizer streams when it cannot simply run on windows of a stream as it is.

    ``featurizer`` runs on short windows of the stream's audio: it gives the same ``dim`` and ``rate_hz``
    as the featurizer it stands for, and frame k centred on sample k x hop (floor(samples / hop) + 1
    frames). ``left_s`` is the audio before a frame's centre that it reads; ``right_s`` the audio after
    it that must have arrived before the frame is final (a final frame is kept as it is).
    The columns in ``running_z_score`` are z-scored with the mean and deviation of the final frames of
    the stream so far, where the featurizer itself z-scores them over the whole clip (a column that does
    not vary is only centred, as ``prosody`` does).
    """

    featurizer: Featurizer
    left_s: float
    right_s: float
    running_z_score: tuple[int, ...] = ()


class Featurizer(Component):
    """Audio -> a frame-wise feature sequence at its own rate.

    Streaming (``medtalk serve``, ``StreamingSession``): a featurizer with ``supports_streaming = True``
    runs on windows of the stream as it is (its context is measured). One that cannot (it looks ahead
    without bound, or normalizes over the whole clip) may return a ``StreamingForm`` from
    ``streaming_form``: the featurizer to run on windows instead, the context it needs and the columns
    that get a running z-score. A featurizer with neither cannot stream.
    """

    role: ClassVar[Literal["content", "emotion"]]
    supports_streaming: ClassVar[bool] = False

    @property
    @abstractmethod
    def dim(self) -> int:
        """Feature size D."""

    @property
    @abstractmethod
    def rate_hz(self) -> float:
        """Frames per second of the features it returns."""

    @abstractmethod
    def __call__(self, audio: Audio) -> FeatureSeq:
        """Featurize 16 kHz mono audio."""

    def streaming_form(self) -> StreamingForm | None:
        """How to stream this featurizer when ``supports_streaming`` is False, or None when it cannot
        stream. Not consulted when ``supports_streaming`` is True (it then runs as it is)."""
        return None


class Transcriber(Component):
    """Audio -> text with word times."""

    # True for aligners, which time a transcript the caller gives instead of recognising the words.
    needs_text: ClassVar[bool] = False

    @abstractmethod
    def __call__(self, audio: Audio, text: str | None = None) -> Transcript:
        """Transcribe 16 kHz mono audio. ``text`` is what the caller knows was said: aligners time it
        (and refuse to run without it); recognisers take it as a hint, as their documentation says."""


class TextEncoder(Component):
    """Text -> token features (N x D) and a sentence vector (D)."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Feature size D."""

    @abstractmethod
    def __call__(self, text: str) -> TextEncoding:
        """Encode one text."""


class ContentMapper(Component):
    """ACM: content features -> content embedding, per frame (an ``nn.Module`` in its concrete class)."""

    @abstractmethod
    def forward(self, features: Any) -> Any:
        """(B, T, D) features -> (B, T, 256) content embedding."""


class IntensityPredictor(Component):
    """CMF: frame-wise emotion features x text tokens -> frame intensity (an ``nn.Module``)."""

    @abstractmethod
    def forward(self, emotion_features: Any, text_tokens: Any) -> Any:
        """(B, T, De) and (B, N, Dt) -> (B, T, 1) intensity."""


class GuidanceEncoder(Component):
    """Emotion guidance (a label, a text or an image) -> emotion feature f (an ``nn.Module``).

    Text and image guidance go through a frozen encoder (CLIP, MiniLM, face blendshapes) and then a
    trainable projection (P_text, P_image). ``forward`` is the projection, on vectors; ``embed`` is the
    frozen encoder, on the user's texts or image paths. The frozen encoder's weights are never part of the
    module's state (a bundle holds only the projection) and load on the first ``embed``.
    """

    modality: ClassVar[Literal["label", "text", "image"]]
    # Whether ``embed`` runs a frozen encoder; False for encoders of precomputed vectors and for labels.
    embeds: ClassVar[bool] = False

    @abstractmethod
    def forward(self, guidance: Any) -> Any:
        """Guidance values -> (B, 256) emotion feature."""

    def embed(self, values: Sequence[str]) -> Any:
        """Texts (text modality) or image paths (image modality) -> (B, input_dim) float32 numpy vectors,
        the input ``forward`` takes. Only encoders with ``embeds = True`` implement it."""
        raise ConfigError(
            f"guidance encoder '{self.name}' has no frozen encoder: give it precomputed vectors"
        )


class MotionModel(Component):
    """The disentangled motion autoencoder E_e, E_c, D (an ``nn.Module``)."""

    @abstractmethod
    def forward(self, rig_values: Any) -> Any:
        """(B, T, C) rig values -> reconstruction."""


class Metric(Component):
    """(prediction, ground truth, rig) -> one number."""

    lower_is_better: ClassVar[bool] = True

    @abstractmethod
    def __call__(self, pred: RigSequence, gt: RigSequence, rig: RigSpec) -> float:
        """Score a prediction against its ground truth."""


class Exporter(Component):
    """Writes a rig sequence in one file format."""

    extensions: ClassVar[tuple[str, ...]]
    # The rigs the format can hold (None: any). A sequence of another rig is retargeted to the first one.
    rigs: ClassVar[tuple[str, ...] | None] = None

    @abstractmethod
    def write(self, sequence: RigSequence, rig: RigSpec, path: Path) -> None:
        """Write ``sequence`` to ``path``. Callers pass a temporary path and rename it on success."""


class Importer(Component):
    """Reads a rig sequence from one file format."""

    extensions: ClassVar[tuple[str, ...]]

    @classmethod
    def sniff(cls, head: str) -> bool:
        """Whether the file's first characters look like this format (decides between shared extensions)."""
        return True

    @abstractmethod
    def read(self, path: Path) -> RigSequence:
        """Read ``path``; a malformed file raises ``FileFormatError`` naming the file, line and fix."""


class Postprocessor(Component):
    """Rig sequence -> rig sequence (smoothing, clamping, blinks)."""

    @abstractmethod
    def __call__(self, sequence: RigSequence, rig: RigSpec) -> RigSequence:
        """Return a processed copy."""


class Dataset(Component):
    """Yields training samples from a folder layout or a manifest."""

    @abstractmethod
    def __iter__(self) -> Iterator[Any]:
        """Iterate over samples."""


class Trainer(Component):
    """One training stage of the model.

    The runner (``medtalk.core.training``) owns the optimiser, schedule, checkpoints, logs and data
    parallelism; a stage says what it needs from the data, which parts of the model train (all others
    are frozen), how an epoch's batches are drawn, and which loss terms a batch gives.
    """

    # Per-sample inputs the stage needs beyond the rig: "content", "emotion", "text", "label", "guidance".
    needs: ClassVar[frozenset[str]] = frozenset()

    def phases(self) -> list[tuple[str, int]]:
        """(phase name, epochs) in training order; one phase named after the stage by default."""
        return [(self.name, int(getattr(self.config, "epochs", 1)))]

    @abstractmethod
    def trainable_parts(self, model: Any) -> list[Any]:
        """The ``nn.Module`` parts of ``model`` that this stage trains."""

    @abstractmethod
    def batches(self, data: Any, phase: str, seed: int, rank: int, world_size: int) -> Iterator[Any]:
        """One epoch of batches of ``phase`` for this rank, deterministic for ``seed``."""

    @abstractmethod
    def losses(self, model: Any, batch: Any, phase: str) -> dict[str, Any]:
        """Loss terms of one batch as scalar tensors; ``"total"`` is the one optimised."""


class Model(Component):
    """A named pretrained bundle."""

    @abstractmethod
    def load(self) -> Any:
        """Return a ready pipeline."""
