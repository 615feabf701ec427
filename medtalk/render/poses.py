"""Five expression poses on the metahuman-174 controls, HAND-AUTHORED from what each control does.

They are not model output and not captured data: there is no trained model yet, and the only real clip
is one angry take. They exist to check that the preview renderer tells expressions apart, and as
readable examples of which controls carry which emotion (FACS-style: happy = cheek raiser + lip-corner
puller, sad = inner-brow raiser + lip-corner depressor, surprise = brow raisers + upper-lid raiser + jaw
drop, anger = brow lowerer + lid tightener + lip presser/upper-lip raiser).

A name without a side prefix is set on both sides (``brow_down`` sets ``CTRL_L_brow_down-translateY``
and ``CTRL_R_brow_down-translateY``); names starting with ``CTRL_`` are full control names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medtalk.core.rig import RigSpec
    from medtalk.core.sequence import RigSequence

POSES: Mapping[str, Mapping[str, float]] = {
    "neutral": {},
    "happy": {
        "mouth_cornerPull": 0.9,
        "mouth_sharpCornerPull": 0.2,
        "mouth_dimple": 0.3,
        "eye_cheekRaise": 0.75,
        "eye_squintInner": 0.25,
        "eye_blink": 0.15,
        "nose_nasolabialDeepen": 0.5,
        "mouth_upperLipRaise": 0.3,
        "mouth_lowerLipDepress": 0.2,
        "brow_raiseOut": 0.15,
        "CTRL_C_jaw-translateY": 0.12,
    },
    "sad": {
        "brow_raiseIn": 0.95,
        "brow_lateral": 0.35,
        "brow_down": 0.1,
        "eye_blink": 0.3,
        "eye_squintInner": 0.2,
        "mouth_cornerDepress": 0.9,
        "mouth_stretch": 0.1,
        "mouth_pressU": 0.3,
        "jaw_ChinRaiseD": 0.6,
        "jaw_ChinRaiseU": 0.4,
        "CTRL_C_eye-translateY": -0.35,
    },
    "surprised": {
        "brow_raiseIn": 1.0,
        "brow_raiseOut": 1.0,
        "eye_blink": -0.9,
        "eye_eyelidU": 0.4,
        "mouth_funnelU": 0.35,
        "mouth_funnelD": 0.35,
        "mouth_stretch": 0.1,
        "CTRL_C_jaw-translateY": 0.55,
        "eye_pupil": -0.3,
    },
    "angry": {
        "brow_down": 0.9,
        "brow_lateral": 0.95,
        "eye_blink": -0.25,
        "eye_lidPress": 0.5,
        "eye_squintInner": 0.7,
        "eye_faceScrunch": 0.2,
        "nose_wrinkleUpper": 0.6,
        "nose_nasolabialDeepen": 0.4,
        "mouth_upperLipRaise": 0.35,
        "mouth_pressU": 0.6,
        "mouth_pressD": 0.6,
        "mouth_tightenU": 0.5,
        "mouth_tightenD": 0.5,
        "mouth_cornerDepress": 0.3,
        "jaw_chinCompress": 0.3,
        "neck_stretch": 0.5,
    },
}

POSE_NAMES = tuple(POSES)


def control_names(name: str) -> list[str]:
    """The rig control names a pose entry sets: itself if it is a full name, else the left and right one."""
    if name.startswith("CTRL_"):
        return [name]
    return [f"CTRL_{side}_{name}-translateY" for side in ("L", "R")]


def pose_values(pose: str, rig: RigSpec):
    """One frame of ``rig`` values (a float32 array) holding the pose; every other control at rest (0)."""
    import numpy as np

    from medtalk.core.errors import ConfigError

    if pose not in POSES:
        raise ConfigError(f"no pose '{pose}': the poses are {', '.join(POSE_NAMES)}")
    values = np.zeros(rig.num_controls, dtype=np.float32)
    for entry, value in POSES[pose].items():
        for column in rig.indices_of(control_names(entry)):
            values[column] = value
    return values


def pose_sequence(pose: str, rig: RigSpec, frames: int = 1, fps: float = 60.0) -> RigSequence:
    """``frames`` frames of one pose, as a sequence of rig ``rig``."""
    import numpy as np

    from medtalk.core.sequence import RigSequence

    return RigSequence(np.tile(pose_values(pose, rig), (frames, 1)), fps=fps, rig=rig.name)


def pose_sheet(
    rig: RigSpec, extra: Sequence[tuple[str, RigSequence, int]] = (), size: int = 320, columns: int = 3
):
    """A grid image of the five poses, then each ``(label, sequence, frame)`` of ``extra``, smoothly drawn."""
    from PIL import Image

    from medtalk.render.face2d import FaceRenderer

    cells = [(f"{pose} (hand-authored pose)", pose_sequence(pose, rig), 0) for pose in POSE_NAMES]
    cells += list(extra)
    rows = -(-len(cells) // columns)
    sheet = Image.new("RGB", (columns * size, rows * size), "white")
    for index, (label, sequence, frame) in enumerate(cells):
        renderer = FaceRenderer(rig, size=size, labels=[label], supersample=2)
        image = next(renderer.frames([sequence], [frame]))
        sheet.paste(image, ((index % columns) * size, (index // columns) * size))
    return sheet


def main(argv: Sequence[str] | None = None) -> None:
    """Regenerate the docs image: ``python -m medtalk.render.poses OUT.png [REAL_CLIP.txt FRAME]``."""
    import sys

    import medtalk
    from medtalk.core.fileio import atomic_output
    from medtalk.core.plugins import get_registry

    args = list(sys.argv[1:] if argv is None else argv)
    rig = get_registry("rig").get("metahuman-174")
    extra = []
    if len(args) == 3:
        clip, frame = medtalk.read_sequence(args[1]), int(args[2])
        extra.append((f"real clip {Path(args[1]).stem}, frame {frame}", clip, frame))
    with atomic_output(args[0], overwrite=True) as temp:
        pose_sheet(rig, extra).save(temp, format="PNG", optimize=True)


if __name__ == "__main__":
    main()
