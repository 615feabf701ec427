"""Built-in rigs: the authors' 174 MetaHuman board controls, and Apple's 52 ARKit blendshapes.

How the index sets were chosen is written up in docs/rigs.md.
"""

from __future__ import annotations

from importlib.resources import files

from medtalk import hookimpl
from medtalk.core.rig import RigSpec


def _inclusive(*spans: tuple[int, int]) -> tuple[int, ...]:
    return tuple(i for lo, hi in spans for i in range(lo, hi + 1))


def _read_data(filename: str) -> list[str]:
    text = files("medtalk").joinpath("data", filename).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


# The authors' S_int (MEDTalk eq. 8), 0-based: brows, blinks, inner squints, mouth-corner pulls.
METAHUMAN_INTENSITY = (29, 30, 31, 32, 98, 99, 100, 101, 36, 43, 105, 112, 53, 122)
# The authors' S_lip: jaw and central mouth, then the left and right mouth/jaw/chin blocks.
METAHUMAN_LIP = _inclusive((3, 12), (46, 91), (115, 160))
# Upper face as the face board splits it: brows, eyelids, squints, cheek raise, scrunch, lashes,
# nose and ears. Gaze and pupils are left out: they move with attention, not with emotion.
_UPPER_FEATURES = (
    "brow_",
    "eye_blink",
    "eye_cheekRaise",
    "eye_eyelid",
    "eye_faceScrunch",
    "eye_lidPress",
    "eye_squintInner",
    "eyelashes_",
    "nose",
    "ear_up",
)
# Neck tension (mastoid contract, platysma stretch) shows fear and anger without being speech.
_EMOTION_EXTRA = ("neck_mastoidContract", "neck_stretch")


def metahuman_174() -> RigSpec:
    controls = _read_data("metahuman_controls_174.txt")
    table = [line.split("\t") for line in _read_data("metahuman_174_ranges.tsv")[1:]]
    if [row[1] for row in table] != controls:
        raise RuntimeError(
            "metahuman_174_ranges.tsv does not list the controls of metahuman_controls_174.txt"
        )
    sided = [i for i, c in enumerate(controls) if c.startswith(("CTRL_L_", "CTRL_R_"))]
    upper = tuple(i for i in sided if any(f"_{key}" in controls[i] for key in _UPPER_FEATURES))
    extra = tuple(i for i in sided if any(key in controls[i] for key in _EMOTION_EXTRA))
    return RigSpec(
        name="metahuman-174",
        controls=tuple(controls),
        ranges=tuple((float(row[2]), float(row[3])) for row in table),
        sets={
            "intensity": METAHUMAN_INTENSITY,
            "lip": METAHUMAN_LIP,
            "upper": upper,
            "emotion": tuple(sorted(upper + extra)),
        },
        description="MetaHuman face-board controls in the MEDTalk authors' order (174 columns)",
    )


# Live Link Face / ARKit order, with ARKit's own names.
ARKIT_52 = (
    "eyeBlinkLeft",
    "eyeLookDownLeft",
    "eyeLookInLeft",
    "eyeLookOutLeft",
    "eyeLookUpLeft",
    "eyeSquintLeft",
    "eyeWideLeft",
    "eyeBlinkRight",
    "eyeLookDownRight",
    "eyeLookInRight",
    "eyeLookOutRight",
    "eyeLookUpRight",
    "eyeSquintRight",
    "eyeWideRight",
    "jawForward",
    "jawRight",
    "jawLeft",
    "jawOpen",
    "mouthClose",
    "mouthFunnel",
    "mouthPucker",
    "mouthRight",
    "mouthLeft",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "browDownLeft",
    "browDownRight",
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekPuff",
    "cheekSquintLeft",
    "cheekSquintRight",
    "noseSneerLeft",
    "noseSneerRight",
    "tongueOut",
)


def arkit_52() -> RigSpec:
    def where(*prefixes: str) -> tuple[int, ...]:
        return tuple(i for i, name in enumerate(ARKIT_52) if name.startswith(prefixes))

    upper = where("brow", "eyeBlink", "eyeSquint", "eyeWide", "cheekSquint", "noseSneer")
    return RigSpec(
        name="arkit-52",
        controls=ARKIT_52,
        ranges=((0.0, 1.0),) * len(ARKIT_52),
        sets={
            # The ARKit counterparts of the MetaHuman S_int controls.
            "intensity": where(
                "browDown", "browInnerUp", "browOuterUp", "eyeBlink", "eyeSquint", "mouthSmile"
            ),
            "lip": where("jaw", "mouth", "cheekPuff", "tongueOut"),
            "upper": upper,
            "emotion": upper,
        },
        description="Apple ARKit blendshapes in Live Link Face order (52 columns, each 0..1)",
    )


@hookimpl
def register_rigs(register):
    register(metahuman_174())
    register(arkit_52())
