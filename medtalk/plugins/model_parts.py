"""Built-in model parts: the motion autoencoder, ACM, CMF, guidance encoders, and `medtalk import-official`.

The registries are built whenever the CLI lists or builds components, and the classes they hold must be
importable without torch (``medtalk --help`` stays fast). So each network is *declared* here, torch-free:
its registered name, its ``Config`` and its description. It is *implemented* in
``medtalk.core.model.modules`` by a subclass that also inherits ``torch.nn.Module``. Constructing a
declaration (which is what ``medtalk.build`` does) imports that module and returns an instance of the
implementation, so every built part is a real ``nn.Module`` and an instance of its declaration.

No ``from __future__ import annotations`` here: Typer reads the command's options from the annotations,
which must be evaluated where the command is defined, inside the hook, where ``typer`` is imported.
"""

from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, model_validator

from medtalk import hookimpl
from medtalk.core.components import (
    ComponentConfig,
    ContentMapper,
    GuidanceEncoder,
    IntensityPredictor,
    MotionModel,
)

# The authors' label order (their emotion_id table): the index is the row of the label embedding.
EMOTION_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


class ImplementedWithTorch:
    """Mixin of a torch-free declaration: constructing it builds its torch implementation instead.

    A declaration names its implementation with ``implementation``: a class name in
    ``medtalk.core.model.modules``, or ``"package.module:ClassName"`` for one elsewhere (a plugin's own
    torch module). The implementation subclasses the declaration and ``nn.Module`` and inherits name and
    Config. Python then runs the implementation's ``__init__`` on the instance returned here.
    """

    implementation: ClassVar[str]

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if "implementation" in vars(cls):
            import importlib

            module_name, _, class_name = cls.implementation.rpartition(":")
            module = importlib.import_module(module_name or "medtalk.core.model.modules")
            cls = getattr(module, class_name)
        return super().__new__(cls)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        # Never reached: instances are always of the implementation, which defines forward. It is here so
        # that the declaration is a concrete class, as the registry requires.
        raise NotImplementedError(f"{type(self).__name__} is implemented in medtalk.core.model.modules")


# ---------------------------------------------------------------------------------------- motion model


class MotionAutoencoderConfig(ComponentConfig):
    num_controls: int = Field(
        default=174, ge=1, description="Rig controls per frame C (174 for metahuman-174)"
    )
    hidden: int = Field(default=256, ge=1, description="Width of the hidden layer of E_e, E_c and D")
    embedding: int = Field(
        default=256, ge=1, description="Size of the emotion and of the content embedding (D takes both)"
    )


class MotionAutoencoderSpec(ImplementedWithTorch, MotionModel):
    """Disentangled motion autoencoder: E_e, E_c (C -> 256 -> 256 per frame), D ([emotion; content] -> C)."""

    name = "medtalk-autoencoder"
    Config = MotionAutoencoderConfig
    implementation = "MotionAutoencoder"


# ----------------------------------------------------------------------------------- content mappers


class MlpContentMapperConfig(ComponentConfig):
    input_dim: int = Field(
        default=768, ge=1, description="Size D of the content features (768 wav2vec2-base, 384 whisper tiny)"
    )
    hidden: int = Field(default=256, ge=1, description="Width of the hidden layer")
    embedding: int = Field(
        default=256, ge=1, description="Size of the content embedding (the motion model's)"
    )


class MlpContentMapperSpec(ImplementedWithTorch, ContentMapper):
    """ACM for features that carry context (wav2vec2, whisper): D -> 256 -> 256 per frame."""

    name = "mlp"
    Config = MlpContentMapperConfig
    implementation = "MlpContentMapper"


class TemporalConvContentMapperConfig(ComponentConfig):
    input_dim: int = Field(default=80, ge=1, description="Size D of the content features (e.g. log-mel bins)")
    window: int = Field(
        default=9, ge=1, description="Frames the convolution sees around each frame (9 = 150 ms at 60 fps)"
    )
    hidden: int = Field(default=256, ge=1, description="Channels of the convolution")
    layers: int = Field(
        default=1,
        ge=1,
        le=8,
        description="Convolutions stacked with ReLU between them; each adds window - 1 frames of context",
    )
    embedding: int = Field(
        default=256, ge=1, description="Size of the content embedding (the motion model's)"
    )


class TemporalConvContentMapperSpec(ImplementedWithTorch, ContentMapper):
    """ACM for context-free features (log-mel): a 1-D convolution over a window of frames, then to 256."""

    name = "temporal-conv"
    Config = TemporalConvContentMapperConfig
    implementation = "TemporalConvContentMapper"


# ------------------------------------------------------------------------------ intensity predictors


class CrossModalityFusionConfig(ComponentConfig):
    emotion_dim: int = Field(
        default=768, ge=1, description="Size of the frame-wise emotion features (768 for emotion2vec base)"
    )
    text_dim: int = Field(
        default=768, ge=1, description="Size of the text token features (768 for RoBERTa base)"
    )
    model_dim: int = Field(
        default=768,
        ge=1,
        description="Width of the attention; emotion features of another size are projected to it",
    )
    heads: int = Field(default=8, ge=1, description="Attention heads (model_dim must divide by it)")
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0, description="Dropout in training, as the authors use")

    @model_validator(mode="after")
    def _heads_divide_the_width(self) -> "CrossModalityFusionConfig":
        if self.model_dim % self.heads:
            raise ValueError(f"model_dim {self.model_dim} is not a multiple of heads {self.heads}")
        return self


class CrossModalityFusionSpec(ImplementedWithTorch, IntensityPredictor):
    """CMF: emotion features attend to text tokens (8 heads), then residual layers -> intensity per frame."""

    name = "cmf"
    Config = CrossModalityFusionConfig
    implementation = "CrossModalityFusion"


class EmotionMlpIntensityConfig(ComponentConfig):
    emotion_dim: int = Field(default=768, ge=1, description="Size of the frame-wise emotion features")
    hidden: int = Field(default=256, ge=1, description="Width of the hidden layer")


class EmotionMlpIntensitySpec(ImplementedWithTorch, IntensityPredictor):
    """Intensity from emotion features alone, no text: D -> 256 -> 1 per frame (the authors' stage 4)."""

    name = "emotion-mlp"
    Config = EmotionMlpIntensityConfig
    implementation = "EmotionMlpIntensity"


# --------------------------------------------------------------------------------- guidance encoders


class LabelGuidanceConfig(ComponentConfig):
    embedding: int = Field(default=256, ge=1, description="Size of each label's table row")
    hidden: int = Field(default=512, ge=1, description="Width of the hidden layer")
    output_dim: int = Field(default=256, ge=1, description="Size of the emotion feature f (E_fuse's input)")


class LabelGuidanceSpec(ImplementedWithTorch, GuidanceEncoder):
    """Emotion label -> f: a table of 7 rows, then 512 -> LeakyReLU(0.2) -> 256."""

    name = "label"
    modality = "label"
    Config = LabelGuidanceConfig
    implementation = "LabelGuidance"


class FeatureProjectionConfig(ComponentConfig):
    input_dim: int = Field(
        default=512, ge=1, description="Size of the frozen encoder's vector (512 for CLIP ViT-B/32)"
    )
    hidden: int = Field(default=256, ge=1, description="Width of the hidden layer")
    output_dim: int = Field(default=256, ge=1, description="Size of the emotion feature f (E_fuse's input)")


class TextFeatureGuidanceSpec(ImplementedWithTorch, GuidanceEncoder):
    """P_text: a precomputed text-encoder vector (CLIP, MiniLM) -> f, through 256 -> 256."""

    name = "text-features"
    modality = "text"
    Config = FeatureProjectionConfig
    implementation = "TextFeatureGuidance"


class ImageFeatureGuidanceSpec(ImplementedWithTorch, GuidanceEncoder):
    """P_image: a precomputed image-encoder vector (CLIP, face blendshapes) -> f, through 256 -> 256."""

    name = "image-features"
    modality = "image"
    Config = FeatureProjectionConfig
    implementation = "ImageFeatureGuidance"


# -------------------------------------------------------------------------------------------- hooks


@hookimpl
def register_motion_models(register) -> None:
    register(MotionAutoencoderSpec)


@hookimpl
def register_content_mappers(register) -> None:
    register(MlpContentMapperSpec)
    register(TemporalConvContentMapperSpec)


@hookimpl
def register_intensity_predictors(register) -> None:
    register(CrossModalityFusionSpec)
    register(EmotionMlpIntensitySpec)


@hookimpl
def register_guidance_encoders(register) -> None:
    register(LabelGuidanceSpec)
    register(TextFeatureGuidanceSpec)
    register(ImageFeatureGuidanceSpec)


@hookimpl
def register_commands(app) -> None:
    import typer

    @app.command("import-official")
    def import_official_command(
        checkpoint: Annotated[
            Path,
            typer.Argument(
                metavar="PATH.pth",
                help="One of the MEDTalk authors' checkpoints (cross_recon, audio_cont, audio_semantic or "
                "clip_emotion .pth).",
            ),
        ],
        output: Annotated[
            Path, typer.Option("--output", "-o", metavar="BUNDLE", help="The model bundle folder to write.")
        ],
        force: Annotated[bool, typer.Option("--force", "-f", help="Replace BUNDLE if it exists.")] = False,
    ) -> None:
        """Turn an authors' .pth checkpoint into a medtalk model bundle (weights only: no code is run)."""
        from medtalk.core.model.official import import_official

        typer.echo(import_official(checkpoint, output, overwrite=force).summary())
