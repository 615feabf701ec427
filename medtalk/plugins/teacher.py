"""The procedural teacher as the model ``teacher``: ``Pipeline.from_pretrained("teacher")``.

A baseline animator that needs no trained weights (docs/teacher.md). This module imports neither numpy
nor torch: the teacher loads on ``load()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from medtalk import hookimpl
from medtalk.core.components import ComponentConfig, Model

if TYPE_CHECKING:
    from medtalk.teacher.pipeline import TeacherPipeline


class TeacherModelConfig(ComponentConfig):
    seed: int = Field(
        default=0, description="Seed of blinks, gaze and intensity drift (the same take for a seed)"
    )
    coarticulation: float = Field(
        default=1.0,
        ge=0,
        le=3,
        description="How far each phone's mouth shape reaches into its neighbours (0: none)",
    )
    expression_intensity: float = Field(default=1.0, ge=0, le=2, description="Scale of the expression")
    fps: float = Field(default=60.0, gt=0, le=240, description="Frames per second of the output")


class TeacherModel(Model):
    """Procedural teacher: visemes + expression library + blinks, no trained weights (baseline)."""

    name = "teacher"
    Config = TeacherModelConfig
    config: TeacherModelConfig

    def load(self) -> TeacherPipeline:
        from medtalk.teacher.animate import Teacher, TeacherConfig
        from medtalk.teacher.pipeline import TeacherPipeline

        config = TeacherConfig(
            seed=self.config.seed,
            coarticulation=self.config.coarticulation,
            expression_intensity=self.config.expression_intensity,
            fps=self.config.fps,
        )
        return TeacherPipeline(Teacher(config), seed=self.config.seed)


@hookimpl
def register_models(register):
    register(TeacherModel)
