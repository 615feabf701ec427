"""A picture of the teacher's expressions on the preview face: ``python -m medtalk.teacher.sheet OUT.png``.

Each cell is a one-second take of the teacher with no speech, drawn at its last frame, where the
expression has reached full strength (the same pose ``TeacherTake.peak_pose`` describes).
"""

from __future__ import annotations

from collections.abc import Sequence

# The default variant of each emotion, then two asymmetric ones.
SHEET_EXPRESSIONS = (
    "neutral", "happy", "sad", "surprise", "angry", "disgust", "fear", "happy-smirk", "angry-one-brow",
)  # fmt: skip


def expression_sheet(names: Sequence[str] = SHEET_EXPRESSIONS, size: int = 320, columns: int = 3):
    """A PIL image: a grid of the named expressions (an emotion gives its default variant)."""
    import math

    from PIL import Image

    from medtalk.render.face2d import FaceRenderer
    from medtalk.teacher.animate import Teacher, TeacherConfig

    # Blinks a million seconds apart and still eyes, so each cell shows the expression alone.
    teacher = Teacher(TeacherConfig(blink_interval_log_mean=math.log(1e6), saccade_amplitude=0.0))
    rows = -(-len(names) // columns)
    sheet = Image.new("RGB", (columns * size, rows * size), "white")
    for index, name in enumerate(names):
        take = teacher.animate([], [], 1.0, expression=name, seed=0)
        renderer = FaceRenderer(teacher.rig, size=size, labels=[f"teacher: {take.expression}"], supersample=2)
        image = next(renderer.frames([take.sequence], [take.sequence.num_frames - 1]))
        sheet.paste(image, ((index % columns) * size, (index // columns) * size))
    return sheet


def main(argv: Sequence[str] | None = None) -> None:
    import sys

    from medtalk.core.fileio import atomic_output

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        raise SystemExit("usage: python -m medtalk.teacher.sheet OUT.png")
    with atomic_output(args[0], overwrite=True) as temp:
        expression_sheet().save(temp, format="PNG", optimize=True)


if __name__ == "__main__":
    main()
