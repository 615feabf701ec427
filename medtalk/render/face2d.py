"""A flat 2D face drawn from the MetaHuman face-board controls, fast enough to preview every frame.

The face is a 2-D blend-shape model: every drawn point is its rest position plus, for each control that
moves it, the control's value times a displacement. A bidirectional control whose two directions do
different things (the blink closes the lids when positive and widens the eye when negative) drives
through its positive and negative parts separately. So the geometry of a whole sequence is one matrix
product; the only non-linear steps are the clamps that keep lids and lips from crossing, and fitting
the teeth and tongue inside the open mouth. Line intensities (wrinkles, folds, blush) are linear in the
same features, clipped to 0..1.

Drawing is Pillow's ImageDraw (polygons, lines, ellipses; about fifty calls a frame) on a copy of a
pre-drawn background, which is what makes ~200+ frames per second at 512x512 possible on one core.

Positions are in panel units: (0, 0) is the panel's top left, (1, 1) its bottom right, y down. The
character's left side (``CTRL_L_*``) is on the viewer's right, as in a mirror-free front view.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image, ImageDraw

    from medtalk.core.rig import RigSpec
    from medtalk.core.sequence import RigSequence

FACE_RIG = "metahuman-174"

# How a control drives the face: its value, or only its positive or negative part (as a magnitude).
LINEAR, POSITIVE, NEGATIVE = 0, 1, 2

# The character's left is drawn on the viewer's right: +1 moves a left-side feature away from the centre.
SIDES = (("L", 1.0), ("R", -1.0))

BACKGROUND = (226, 231, 238)
SHIRT = (78, 98, 130)
SKIN = (242, 206, 180)
SKIN_SHADE = (226, 186, 160)
FEATURE_LINE = (168, 112, 92)
HAIR = (70, 50, 40)
BROW = (84, 58, 44)
LASH = (50, 34, 30)
EYE_WHITE = (251, 250, 247)
IRIS = (84, 116, 150)
PUPIL = (22, 18, 20)
LIP = (204, 110, 106)
LIP_EDGE = (170, 82, 80)
LIP_LINE = (120, 48, 52)
MOUTH_CAVITY = (84, 28, 36)
TEETH = (247, 245, 236)
TONGUE = (212, 100, 110)
BLUSH = (238, 152, 146)
WRINKLE = (168, 108, 88)
LABEL = (40, 44, 52)

CHUNK_FRAMES = 240  # geometry is computed this many frames at a time, so long takes stay small in memory


def side_control(side: str, name: str) -> str:
    """``CTRL_L_brow_down-translateY`` for ("L", "brow_down"); a name with its own axis keeps it."""
    return f"CTRL_{side}_{name}" if "-translate" in name else f"CTRL_{side}_{name}-translateY"


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _closed_spline(keys: Sequence[tuple[float, float]], per_segment: int) -> np.ndarray:
    """A closed Catmull-Rom curve through ``keys``."""
    k = np.asarray(keys, dtype=np.float64)
    n = len(k)
    s = np.linspace(0.0, 1.0, per_segment, endpoint=False)[:, None]
    out = []
    for i in range(n):
        p0, p1, p2, p3 = k[i - 1], k[i], k[(i + 1) % n], k[(i + 2) % n]
        out.append(
            0.5
            * (
                2 * p1
                + (p2 - p0) * s
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s**2
                + (3 * p1 - p0 - 3 * p2 + p3) * s**3
            )
        )
    return np.concatenate(out)


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int) -> np.ndarray:
    angle = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(angle), cy + ry * np.sin(angle)], axis=1)


@dataclass(frozen=True, eq=False)
class FaceModel:
    """Rest points, and per driving feature a displacement of every point and a weight per intensity."""

    features: tuple[tuple[str, int], ...]  # (control name, LINEAR | POSITIVE | NEGATIVE)
    rest: np.ndarray  # (points, 2)
    displacement: np.ndarray  # (features, points * 2)
    groups: Mapping[str, slice]
    intensity_names: tuple[str, ...]
    intensity_rest: np.ndarray  # (intensities,)
    intensity_weights: np.ndarray  # (features, intensities)

    def columns(self, rig: RigSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per feature: the rig column it reads, the sign to apply, and whether to keep only positives."""
        columns = np.array([rig.indices_of([control])[0] for control, _ in self.features], dtype=np.intp)
        signs = np.array([-1.0 if part == NEGATIVE else 1.0 for _, part in self.features], dtype=np.float32)
        one_sided = np.array([part != LINEAR for _, part in self.features], dtype=bool)
        return columns, signs, one_sided

    def evaluate(
        self, values: np.ndarray, columns: tuple[np.ndarray, np.ndarray, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Points (frames, points, 2) and intensities (frames, intensities) for rig values (frames, C)."""
        column, sign, one_sided = columns
        features = values[:, column].astype(np.float32) * sign
        features[:, one_sided] = np.maximum(features[:, one_sided], 0.0)
        points = self.rest.reshape(1, -1) + features @ self.displacement
        points = points.reshape(len(values), -1, 2)
        _settle(points, self.groups)
        intensities = np.clip(self.intensity_rest + features @ self.intensity_weights, 0.0, 1.0)
        return points, intensities


def _settle(points: np.ndarray, groups: Mapping[str, slice]) -> None:
    """The non-linear part, in place: lids and lips never cross, and teeth and tongue stay in the mouth.

    Every group is a slice, so each ``points[:, group]`` below is a view that writes into ``points``.
    """
    for side, _ in SIDES:
        upper, lower = points[:, groups[f"lid_upper.{side}"], 1], points[:, groups[f"lid_lower.{side}"], 1]
        np.minimum(upper, lower, out=upper)
    upper_inner = points[:, groups["lip_upper_inner"]]
    lower_inner = points[:, groups["lip_lower_inner"]]
    crossing = upper_inner[..., 1] > lower_inner[..., 1]
    meet = 0.5 * (upper_inner[..., 1] + lower_inner[..., 1])
    upper_inner[..., 1] = np.where(crossing, meet, upper_inner[..., 1])
    lower_inner[..., 1] = np.where(crossing, meet, lower_inner[..., 1])
    upper_outer = points[:, groups["lip_upper_outer"], 1]
    lower_outer = points[:, groups["lip_lower_outer"], 1]
    np.minimum(upper_outer, upper_inner[..., 1] - MIN_LIP_THICKNESS, out=upper_outer)
    np.maximum(lower_outer, lower_inner[..., 1] + MIN_LIP_THICKNESS, out=lower_outer)

    # Teeth and tongue are drawn as bands between the lips' inner edges, so they can only show where the
    # mouth is open: each band's free edge is its anchor's height clipped between the two lips.
    top, bottom = upper_inner[..., 1], lower_inner[..., 1]
    inside = slice(MOUTH_SAMPLES // 2 - TEETH_HALF_SAMPLES, MOUTH_SAMPLES // 2 + TEETH_HALF_SAMPLES + 1)
    for band, anchor, from_top, curve in (
        ("teeth_upper", "anchor_teeth_upper", True, 1.0),
        ("teeth_lower", "anchor_teeth_lower", False, -0.6),
        ("tongue", "anchor_tongue", False, -1.8),
    ):
        anchor_xy = points[:, groups[anchor]][:, 0]
        edge_x = upper_inner[:, inside, 0] if from_top else lower_inner[:, inside, 0]
        # The edge curves away from the lip towards the mouth's sides, like a dental arch seen from the front.
        edge_y = anchor_xy[:, 1:2] - curve * 4.0 * (edge_x - anchor_xy[:, 0:1]) ** 2
        edge_y = np.clip(edge_y, top[:, inside], bottom[:, inside])
        lip_y = top[:, inside] if from_top else bottom[:, inside]
        band_points = points[:, groups[band]]
        n = edge_x.shape[1]
        band_points[:, :n, 0], band_points[:, :n, 1] = edge_x, lip_y
        band_points[:, n:, 0], band_points[:, n:, 1] = edge_x[:, ::-1], edge_y[:, ::-1]


class _ModelBuilder:
    """Collects named point groups, the displacement each feature gives them, and the intensities."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.groups: dict[str, slice] = {}
        self.count = 0
        self.moves: list[tuple[tuple[str, int], slice, np.ndarray]] = []
        self.intensity_index: dict[str, int] = {}
        self.intensity_rest: list[float] = []
        self.drives: list[tuple[tuple[str, int], int, float]] = []

    def points(self, name: str, xy: np.ndarray) -> None:
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        self.groups[name] = slice(self.count, self.count + len(xy))
        self.chunks.append(xy)
        self.count += len(xy)

    def rest(self, name: str) -> np.ndarray:
        sl = self.groups[name]
        return np.concatenate(self.chunks)[sl]

    def move(
        self,
        control: str,
        group: str,
        dx: float | np.ndarray = 0.0,
        dy: float | np.ndarray = 0.0,
        part: int = LINEAR,
    ) -> None:
        sl = self.groups[group]
        delta = np.zeros((sl.stop - sl.start, 2))
        delta[:, 0], delta[:, 1] = dx, dy
        self.moves.append(((control, part), sl, delta))

    def intensity(self, name: str, rest: float = 0.0) -> None:
        self.intensity_index[name] = len(self.intensity_rest)
        self.intensity_rest.append(rest)

    def drive(self, control: str, name: str, weight: float, part: int = LINEAR) -> None:
        self.drives.append(((control, part), self.intensity_index[name], weight))

    def build(self) -> FaceModel:
        features = sorted({f for f, _, _ in self.moves} | {f for f, _, _ in self.drives})
        index = {f: i for i, f in enumerate(features)}
        displacement = np.zeros((len(features), self.count, 2))
        for feature, sl, delta in self.moves:
            displacement[index[feature], sl] += delta
        weights = np.zeros((len(features), len(self.intensity_rest)))
        for feature, column, weight in self.drives:
            weights[index[feature], column] += weight
        return FaceModel(
            features=tuple(features),
            rest=np.concatenate(self.chunks).astype(np.float32),
            displacement=displacement.reshape(len(features), -1).astype(np.float32),
            groups=dict(self.groups),
            intensity_names=tuple(self.intensity_index),
            intensity_rest=np.array(self.intensity_rest, dtype=np.float32),
            intensity_weights=weights.astype(np.float32),
        )


# Rest layout, in panel units.
EYE_Y = 0.445
EYE_SPACING = 0.12
BROW_Y = 0.365
NOSE_Y = 0.585
MOUTH_Y = 0.695
MOUTH_HALF_WIDTH = 0.085
CHIN_Y = 0.865
JAW_OPEN_DROP = 0.095  # how far the lower lip's middle drops at CTRL_C_jaw-translateY = 1
IRIS_RADIUS = 0.023
MOUTH_SAMPLES = 21  # points along each lip edge, corner to corner
TEETH_HALF_SAMPLES = 7  # teeth and tongue span the middle 15 of them
MIN_LIP_THICKNESS = 0.003


def build_face_model() -> FaceModel:
    b = _ModelBuilder()
    for shared in ("forehead", "glabella", "bunny"):
        b.intensity(shared)
    _head(b)
    for side, outward in SIDES:
        _eye(b, side, outward)
        _brow(b, side, outward)
        _cheek_and_nose(b, side, outward)
    _forehead_and_nose_lines(b)
    _mouth(b)
    return b.build()


def _head(b: _ModelBuilder) -> None:
    right_half = [(0.5, 0.095), (0.665, 0.125), (0.775, 0.235), (0.805, 0.38), (0.795, 0.50), (0.765, 0.615)]
    right_half += [(0.71, 0.735), (0.62, 0.83)]
    keys = right_half + [(0.5, CHIN_Y)] + [(1.0 - x, y) for x, y in reversed(right_half[1:])]
    b.points("head", _closed_spline(keys, 8))
    head = b.rest("head")
    # The jaw hinges near the ears: the lower the point, the more it follows the jaw.
    jaw = _smoothstep((head[:, 1] - 0.56) / (CHIN_Y - 0.56))
    b.move("CTRL_C_jaw-translateY", "head", dy=0.09 * jaw)
    b.move("CTRL_C_jaw_openExtreme-translateY", "head", dy=0.035 * jaw)
    b.move("CTRL_C_jaw-translateX", "head", dx=0.03 * jaw)
    for side, outward in SIDES:
        on_side = (head[:, 0] - 0.5) * outward > 0.05
        cheek = np.exp(-(((head[:, 1] - 0.62) / 0.07) ** 2)) * on_side
        b.move(side_control(side, "mouth_suckBlow"), "head", dx=outward * 0.02 * cheek)
        b.points(f"ear.{side}", [(0.5 + outward * 0.298, 0.445)])
        b.move(side_control(side, "ear_up"), f"ear.{side}", dy=-0.018)
        # The sternocleidomastoid: a tendon from behind the ear to the collarbone, seen when the neck strains.
        b.points(
            f"tendon.{side}",
            np.stack([0.5 + outward * np.linspace(0.085, 0.035, 6), np.linspace(0.79, 0.9, 6)], axis=1),
        )
        b.intensity(f"tendon.{side}")
        b.drive(side_control(side, "neck_stretch"), f"tendon.{side}", 0.9)
        b.drive(side_control(side, "neck_mastoidContract"), f"tendon.{side}", 0.6)
    hair_right = [(0.5, 0.065), (0.69, 0.09), (0.805, 0.19), (0.83, 0.33), (0.8, 0.37), (0.778, 0.27)]
    hair_right += [(0.70, 0.195), (0.58, 0.172)]
    hair_keys = hair_right + [(0.5, 0.185)] + [(1.0 - x, y) for x, y in reversed(hair_right[1:])]
    b.points("hair", _closed_spline(hair_keys, 6))


def _eye(b: _ModelBuilder, side: str, outward: float) -> None:
    s = np.linspace(0.0, 1.0, 17)  # inner corner to outer corner
    centre = 0.5 + outward * EYE_SPACING
    x = centre + outward * (-0.061 + 0.126 * s)
    corner_y = EYE_Y + 0.004 - 0.008 * s
    upper_shape = np.sin(math.pi * s**0.9) ** 0.8
    lower_shape = np.sin(math.pi * s**1.1) ** 0.9
    upper_open, lower_open = 0.033, 0.019
    mid = np.sin(math.pi * s)
    ctrl = lambda name: side_control(side, name)  # noqa: E731

    b.points(f"lid_upper.{side}", np.stack([x, corner_y - upper_open * upper_shape], axis=1))
    b.points(f"lid_lower.{side}", np.stack([x, corner_y + lower_open * lower_shape], axis=1))
    closed_line = 0.006 * mid
    b.move(
        ctrl("eye_blink"),
        f"lid_upper.{side}",
        dy=1.05 * (upper_open * upper_shape + closed_line),
        part=POSITIVE,
    )
    b.move(ctrl("eye_blink"), f"lid_lower.{side}", dy=closed_line - lower_open * lower_shape, part=POSITIVE)
    b.move(ctrl("eye_blink"), f"lid_upper.{side}", dy=-0.013 * mid, part=NEGATIVE)
    b.move(ctrl("eye_blink"), f"lid_lower.{side}", dy=0.004 * mid, part=NEGATIVE)
    b.move(ctrl("eye_eyelidU"), f"lid_upper.{side}", dy=-0.009 * mid)
    b.move(ctrl("eye_eyelidD"), f"lid_lower.{side}", dy=-0.007 * mid)
    b.move(ctrl("eye_squintInner"), f"lid_lower.{side}", dy=-0.011 * mid * (1.0 - 0.6 * s))
    b.move(ctrl("eye_squintInner"), f"lid_upper.{side}", dy=0.004 * mid * (1.0 - s))
    b.move(ctrl("eye_lidPress"), f"lid_upper.{side}", dy=0.007 * mid)
    b.move(ctrl("eye_lidPress"), f"lid_lower.{side}", dy=-0.006 * mid)
    b.move(ctrl("eye_cheekRaise"), f"lid_lower.{side}", dy=-0.010 * mid)
    b.move(ctrl("eye_faceScrunch"), f"lid_lower.{side}", dy=-0.008 * mid)
    b.move(ctrl("eye_faceScrunch"), f"lid_upper.{side}", dy=0.005 * mid)

    # The crease above the lid follows the lid part of the way, and the brow pushes it down.
    b.points(
        f"crease.{side}", np.stack([x[2:-1], (corner_y - upper_open * upper_shape - 0.013 * mid)[2:-1]], 1)
    )
    b.move(ctrl("eye_blink"), f"crease.{side}", dy=-0.006 * mid[2:-1], part=NEGATIVE)
    b.move(ctrl("eye_blink"), f"crease.{side}", dy=0.004 * mid[2:-1], part=POSITIVE)
    b.move(ctrl("brow_down"), f"crease.{side}", dy=0.006 * mid[2:-1])
    b.move(ctrl("brow_raiseOut"), f"crease.{side}", dy=-0.004 * mid[2:-1])
    # Under the eye: the line of the cheek pushed up by a squint or a smile.
    bag = slice(3, -2)
    b.points(f"bag.{side}", np.stack([x[bag], (corner_y + lower_open * lower_shape + 0.016 * mid)[bag]], 1))
    for name, lift in (("eye_cheekRaise", 0.012), ("eye_squintInner", 0.006), ("eye_faceScrunch", 0.008)):
        b.move(ctrl(name), f"bag.{side}", dy=-lift * mid[bag])
    b.intensity(f"bag.{side}")
    for name, weight in (("eye_cheekRaise", 0.7), ("eye_squintInner", 0.45), ("eye_faceScrunch", 0.6)):
        b.drive(ctrl(name), f"bag.{side}", weight)
    b.drive(ctrl("eye_lidPress"), f"bag.{side}", 0.3)

    b.points(f"iris.{side}", [(centre, EYE_Y - 0.003)])
    for gaze in ("CTRL_C_eye", f"CTRL_{side}_eye"):
        b.move(f"{gaze}-translateX", f"iris.{side}", dx=0.022)
        b.move(f"{gaze}-translateY", f"iris.{side}", dy=-0.014)
    b.intensity(f"pupil.{side}", 0.5)
    b.drive(ctrl("eye_pupil"), f"pupil.{side}", 0.5)


def _brow(b: _ModelBuilder, side: str, outward: float) -> None:
    s = np.linspace(0.0, 1.0, 13)  # inner end to outer end
    x = 0.5 + outward * (0.042 + 0.158 * s)
    centre_y = BROW_Y - 0.018 * np.sin(math.pi * np.clip(0.12 + 0.8 * s, 0, 1)) + 0.004 * s
    half = 0.5 * (0.021 * (1.0 - s) + 0.008 * s) + 0.001
    top = np.stack([x, centre_y - half], axis=1)
    bottom = np.stack([x, centre_y + half], axis=1)[::-1]
    band = np.concatenate([top, bottom])
    along = np.concatenate([s, s[::-1]])
    group = f"brow.{side}"
    b.points(group, band)
    ctrl = lambda name: side_control(side, name)  # noqa: E731
    b.move(ctrl("brow_raiseIn"), group, dy=-0.048 * (1.0 - along) ** 1.4)
    b.move(ctrl("brow_raiseOut"), group, dy=-0.036 * (0.2 + 0.8 * along**1.2))
    b.move(
        ctrl("brow_down"), group, dx=-outward * 0.006 * (1.0 - along), dy=0.006 + 0.03 * (1.0 - along) ** 0.9
    )
    b.move(
        ctrl("brow_lateral"), group, dx=-outward * 0.018 * (1.0 - along) ** 1.3, dy=0.01 * (1.0 - along) ** 2
    )
    b.move(ctrl("eye_faceScrunch"), group, dy=0.008 * (1.0 - along))
    b.drive(ctrl("brow_raiseIn"), "forehead", 0.45)
    b.drive(ctrl("brow_raiseOut"), "forehead", 0.3)
    b.drive(ctrl("brow_lateral"), "glabella", 0.4)
    b.drive(ctrl("brow_down"), "glabella", 0.3)


def _cheek_and_nose(b: _ModelBuilder, side: str, outward: float) -> None:
    ctrl = lambda name: side_control(side, name)  # noqa: E731
    b.points(f"blush.{side}", [(0.5 + outward * 0.158, 0.548)])
    b.move(ctrl("eye_cheekRaise"), f"blush.{side}", dy=-0.02)
    b.move(ctrl("mouth_cornerPull"), f"blush.{side}", dx=outward * 0.006, dy=-0.012)
    b.move(ctrl("mouth_suckBlow"), f"blush.{side}", dx=outward * 0.01)
    b.intensity(f"blush.{side}", 0.15)
    b.drive(ctrl("eye_cheekRaise"), f"blush.{side}", 0.5)
    b.drive(ctrl("mouth_cornerPull"), f"blush.{side}", 0.35)

    # The nasolabial fold runs from the nose wing to past the mouth corner; its lower end follows the corner.
    q = np.linspace(0.0, 1.0, 8)
    fold = np.stack(
        [0.5 + outward * (0.052 + 0.05 * q + 0.012 * np.sin(math.pi * q)), NOSE_Y - 0.028 + 0.125 * q], axis=1
    )
    group = f"fold.{side}"
    b.points(group, fold)
    follow = q**1.5
    b.move(ctrl("mouth_cornerPull"), group, dx=outward * 0.022 * follow, dy=-0.024 * follow)
    b.move(ctrl("mouth_sharpCornerPull"), group, dx=outward * 0.014 * follow, dy=-0.016 * follow)
    b.move(ctrl("mouth_stretch"), group, dx=outward * 0.02 * follow, dy=0.004 * follow)
    b.move(ctrl("mouth_cornerDepress"), group, dy=0.014 * follow)
    b.move("CTRL_C_jaw-translateY", group, dy=0.018 * follow)
    b.move(ctrl("nose_wrinkleUpper"), group, dy=-0.012 * (1.0 - q))
    b.move(ctrl("mouth_upperLipRaise"), group, dy=-0.006 * (1.0 - q))
    b.move(ctrl("nose_nasolabialDeepen"), group, dx=outward * 0.004 * np.sin(math.pi * q))
    b.intensity(group, 0.06)
    for name, weight in (
        ("mouth_cornerPull", 0.55),
        ("mouth_sharpCornerPull", 0.3),
        ("nose_nasolabialDeepen", 0.6),
        ("mouth_upperLipRaise", 0.35),
        ("eye_cheekRaise", 0.2),
        ("nose_wrinkleUpper", 0.25),
    ):
        b.drive(ctrl(name), group, weight)

    wing = np.array([(0.034, -0.042), (0.048, -0.028), (0.053, -0.012), (0.047, 0.002), (0.03, 0.006)])
    b.points(f"nose_wing.{side}", np.stack([0.5 + outward * wing[:, 0], NOSE_Y + wing[:, 1]], 1))
    nostril = _ellipse(0.0, 0.0, 0.011, 0.0048, 10)
    b.points(
        f"nostril.{side}", np.stack([0.5 + outward * (0.018 + nostril[:, 0]), NOSE_Y + nostril[:, 1]], 1)
    )
    for group, spread in ((f"nose_wing.{side}", 1.0), (f"nostril.{side}", 0.6)):
        b.move(ctrl("nose_wrinkleUpper"), group, dy=-0.011)
        b.move(ctrl("nose-translateY"), group, dy=-0.01)
        b.move(ctrl("nose-translateX"), group, dx=outward * 0.009 * spread)
        b.move(ctrl("mouth_upperLipRaise"), group, dy=-0.004)
        b.move(ctrl("eye_faceScrunch"), group, dy=-0.005)


def _forehead_and_nose_lines(b: _ModelBuilder) -> None:
    x = np.linspace(-1.0, 1.0, 11)
    for row, y in enumerate((0.258, 0.28, 0.302)):
        half_width = 0.115 - 0.012 * row
        b.points(
            f"forehead.{row}", np.stack([0.5 + half_width * x, y - 0.006 * np.cos(0.5 * math.pi * x)], 1)
        )
    for side, outward in SIDES:
        b.points(f"glabella.{side}", [(0.5 + outward * 0.011, 0.338), (0.5 + outward * 0.014, 0.378)])
        b.points(f"bunny.{side}", [(0.5 + outward * 0.014, 0.488), (0.5 + outward * 0.036, 0.5)])
        b.points(f"bridge.{side}", [(0.5 + outward * 0.02, 0.45), (0.5 + outward * 0.024, 0.53)])
        b.drive(side_control(side, "nose_wrinkleUpper"), "bunny", 0.45)
        b.drive(side_control(side, "eye_faceScrunch"), "bunny", 0.3)
    b.points("nose_tip", [(0.482, NOSE_Y + 0.004), (0.5, NOSE_Y + 0.011), (0.518, NOSE_Y + 0.004)])


def _mouth(b: _ModelBuilder) -> None:
    t = np.linspace(-1.0, 1.0, MOUTH_SAMPLES)  # viewer's left corner (the character's right) to right corner
    middle = 1.0 - t**2
    upper_profile, lower_profile = middle**0.6, middle**0.7
    x = 0.5 + MOUTH_HALF_WIDTH * t
    cupid = 0.0045 * np.exp(-((t / 0.13) ** 2))
    curves = {
        "lip_upper_outer": MOUTH_Y - 0.017 * upper_profile + cupid,
        "lip_upper_inner": MOUTH_Y + 0.0012 * middle,
        "lip_lower_inner": MOUTH_Y + 0.0012 * middle,
        "lip_lower_outer": MOUTH_Y + 0.025 * lower_profile,
    }
    for name, y in curves.items():
        b.points(name, np.stack([x, y], axis=1))
    every = tuple(curves)
    upper, lower = every[:2], every[2:]
    uo, ui, li, lo = every

    def move(control: str, names: Iterable[str], dx=0.0, dy=0.0, part=LINEAR) -> None:
        for name in names:
            b.move(control, name, dx=dx, dy=dy, part=part)

    # Opening the jaw drops the lower lip most in the middle; the corners drop a little and draw in.
    corner_drop = 0.022
    for control, scale in (("CTRL_C_jaw-translateY", 1.0), ("CTRL_C_jaw_openExtreme-translateY", 0.4)):
        move(control, upper, dx=-0.012 * scale * t, dy=scale * corner_drop * t**2)
        move(
            control,
            lower,
            dx=-0.012 * scale * t,
            dy=scale * (corner_drop + (JAW_OPEN_DROP - corner_drop) * middle**0.6),
        )
    move("CTRL_C_jaw-translateX", lower, dx=0.03 * (0.5 + 0.5 * middle))
    move("CTRL_C_mouth-translateX", every, dx=0.02)
    move("CTRL_C_mouth-translateY", every, dy=-0.012)
    move("CTRL_C_mouth_lipShiftU-translateY", upper, dx=0.012 * middle)
    move("CTRL_C_mouth_lipShiftD-translateY", lower, dx=0.012 * middle)
    move("CTRL_C_mouth_stickyU-translateY", [ui], dy=0.02 * middle)
    move("CTRL_C_mouth_stickyD-translateY", [li], dy=-0.02 * middle)

    for side, outward in SIDES:
        ctrl = lambda name, side=side: side_control(side, name)  # noqa: E731
        reach = np.maximum(outward * t, 0.0)  # 1 at this side's corner, 0 from the middle to the far corner
        lift = reach**2  # corners moved up or down bend the lip line into a curve, the middle stays
        half = _smoothstep((outward * t + 0.3) / 0.6)  # this side's share of an effect across the lip
        snarl = np.exp(-(((t - outward * 0.4) / 0.35) ** 2)) * middle**0.3

        def corner(control: str, out: float, up: float, names=every) -> None:
            move(control, names, dx=outward * out * reach, dy=-up * lift)  # noqa: B023

        corner(ctrl("mouth_cornerPull"), 0.026, 0.03)
        move(ctrl("mouth_cornerPull"), [uo], dy=0.002 * upper_profile * half)
        move(ctrl("mouth_cornerPull"), [li, lo], dy=0.003 * middle * half)
        corner(ctrl("mouth_sharpCornerPull"), 0.015, 0.022)
        corner(ctrl("mouth_cornerDepress"), 0.004, -0.026)
        move(ctrl("mouth_cornerDepress"), [lo], dy=-0.003 * lower_profile * half)
        corner(ctrl("mouth_corner-translateX"), 0.022, 0.0)
        corner(ctrl("mouth_corner-translateY"), 0.0, 0.022)
        corner(ctrl("mouth_stretch"), 0.028, -0.006)
        move(ctrl("mouth_stretch"), [uo], dy=0.004 * upper_profile * half)
        move(ctrl("mouth_stretch"), [lo], dy=-0.005 * lower_profile * half)
        move(ctrl("mouth_stretch"), [li, lo], dy=0.004 * middle * half)
        corner(ctrl("mouth_stretchLipsClose"), 0.02, 0.0)
        corner(ctrl("mouth_dimple"), 0.01, 0.004)
        for part, outer, inner, sign in (("U", uo, ui, -1.0), ("D", lo, li, 1.0)):
            profile = upper_profile if part == "U" else lower_profile
            names = upper if part == "U" else lower
            # Funnel flares the lip outwards into an O; purse and towards pucker the corners in.
            corner(ctrl(f"mouth_funnel{part}"), -0.012, 0.0, names)
            move(ctrl(f"mouth_funnel{part}"), [outer], dy=sign * 0.009 * profile * half)
            move(ctrl(f"mouth_funnel{part}"), [inner], dy=sign * 0.007 * middle * half)
            corner(ctrl(f"mouth_purse{part}"), -0.017, 0.0, names)
            move(ctrl(f"mouth_purse{part}"), [outer], dy=sign * 0.004 * profile * half)
            corner(ctrl(f"mouth_towards{part}"), -0.008, 0.0, names)
            # Press, tighten, bite and roll thin the lip: its outer edge moves towards the lip line.
            for name, amount in (("pressU" if part == "U" else "pressD", 0.006), (f"tighten{part}", 0.004)):
                move(ctrl(f"mouth_{name}"), [outer], dy=-sign * amount * profile * half)
            move(ctrl(f"mouth_press{part}"), [inner], dy=-sign * 0.002 * middle * half)
            corner(ctrl(f"mouth_tighten{part}"), -0.004, 0.0, names)
            move(ctrl(f"mouth_lipBite{part}"), [outer], dy=-sign * 0.013 * profile * half)
            move(ctrl(f"mouth_lipBite{part}"), [inner], dy=-sign * 0.003 * middle * half)
            move(ctrl(f"mouth_lipsRoll{part}"), [outer], dy=-sign * 0.009 * profile * half)
            move(ctrl(f"mouth_thickness{part}"), [outer], dy=sign * 0.007 * profile * half)
            # Lips-together closes an open mouth: each lip moves towards the other.
            move(ctrl(f"mouth_lipsTogether{part}"), [outer, inner], dy=-sign * 0.045 * middle**0.5 * half)
            move(ctrl(f"mouth_lipsTowardsTeeth{part}"), [outer], dy=-sign * 0.006 * profile * half)
            # Sticky lips cling together as the jaw opens, near the corners (outer) or the middle (inner);
            # on a closed mouth the lips already touch and the crossing clamp leaves them as they are.
            move(ctrl(f"mouth_stickyOuter{part}"), [inner], dy=-sign * 0.03 * reach**0.5 * middle**0.3)
            move(ctrl(f"mouth_stickyInner{part}"), [inner], dy=-sign * 0.025 * middle * half)
        move(ctrl("mouth_lipSticky"), [ui], dy=0.012 * middle**0.5 * half)
        move(ctrl("mouth_lipSticky"), [li], dy=-0.012 * middle**0.5 * half)
        move(ctrl("mouth_lipsPressU"), [uo], dy=0.005 * upper_profile * half)
        move(ctrl("mouth_lipsBlow"), [uo], dy=-0.003 * upper_profile * half)
        move(ctrl("mouth_lipsBlow"), [lo], dy=0.003 * lower_profile * half)
        move(ctrl("mouth_upperLipRaise"), upper, dy=-0.02 * snarl)
        move(ctrl("mouth_lowerLipDepress"), lower, dy=0.02 * snarl)
        move(ctrl("jaw_ChinRaiseU"), [lo], dy=-0.006 * lower_profile * half)
        move(ctrl("jaw_ChinRaiseU"), [li], dy=-0.004 * middle * half)
        move(ctrl("jaw_ChinRaiseD"), [lo], dy=-0.003 * lower_profile * half)

    # Anchors of what shows inside an open mouth: the upper teeth hang from the skull, the lower teeth
    # and the tongue ride on the jaw.
    b.points("anchor_teeth_upper", [(0.5, MOUTH_Y + 0.014)])
    b.points("anchor_teeth_lower", [(0.5, MOUTH_Y + 0.004)])
    b.points("anchor_tongue", [(0.5, MOUTH_Y + 0.02)])
    b.move("CTRL_C_teethU-translateX", "anchor_teeth_upper", dx=0.01)
    b.move("CTRL_C_teethU-translateY", "anchor_teeth_upper", dy=-0.008)
    for anchor, drop in (("anchor_teeth_lower", JAW_OPEN_DROP), ("anchor_tongue", JAW_OPEN_DROP)):
        b.move("CTRL_C_jaw-translateY", anchor, dy=drop)
        b.move("CTRL_C_jaw_openExtreme-translateY", anchor, dy=0.4 * drop)
        b.move("CTRL_C_jaw-translateX", anchor, dx=0.03)
    b.move("CTRL_C_teethD-translateX", "anchor_teeth_lower", dx=0.01)
    b.move("CTRL_C_teethD-translateY", "anchor_teeth_lower", dy=-0.008)
    b.move("CTRL_C_tongue-translateX", "anchor_tongue", dx=0.012)
    b.move("CTRL_C_tongue-translateY", "anchor_tongue", dy=-0.02)
    b.move("CTRL_C_tongue_inOut-translateY", "anchor_tongue", dy=-0.02)
    b.move("CTRL_C_tongue_tip-translateY", "anchor_tongue", dy=-0.012)
    b.move("CTRL_C_tongue_press-translateY", "anchor_tongue", dy=-0.01)
    band = np.zeros((2 * (2 * TEETH_HALF_SAMPLES + 1), 2))
    for name in ("teeth_upper", "teeth_lower", "tongue"):
        b.points(name, band)

    # The crease between lower lip and chin deepens with a pout or a frown.
    b.points("chin_crease", [(0.47, MOUTH_Y + 0.058), (0.5, MOUTH_Y + 0.054), (0.53, MOUTH_Y + 0.058)])
    b.move("CTRL_C_jaw-translateY", "chin_crease", dy=JAW_OPEN_DROP)
    b.move("CTRL_C_jaw_openExtreme-translateY", "chin_crease", dy=0.4 * JAW_OPEN_DROP)
    b.move("CTRL_C_jaw-translateX", "chin_crease", dx=0.03)
    b.intensity("chin_crease")
    for side, _ in SIDES:
        for name, weight in (
            ("jaw_ChinRaiseD", 0.5),
            ("jaw_ChinRaiseU", 0.3),
            ("jaw_chinCompress", 0.35),
            ("mouth_cornerDepress", 0.2),
            ("mouth_pressD", 0.15),
        ):
            b.drive(side_control(side, name), "chin_crease", weight)


class FaceRenderer:
    """Draws frames of metahuman-174 sequences: one face per panel, panels side by side, with labels.

    ``size`` is each panel's side in pixels. ``supersample`` draws at that multiple of the size and
    averages down: smoother edges, at about a third of the speed for 2.
    """

    def __init__(
        self,
        rig: RigSpec,
        size: int = 512,
        panels: int = 1,
        labels: Sequence[str] = (),
        supersample: int = 1,
    ) -> None:
        if rig.name != FACE_RIG:
            raise ValueError(f"FaceRenderer draws rig {FACE_RIG}; retarget {rig.name} first")
        self.model = face_model()
        self.columns = self.model.columns(rig)
        self.size, self.panels, self.supersample = size, panels, supersample
        self.labels = tuple(labels)
        self._scale = size * supersample
        self._widths = {k: max(1, round(v * self._scale / 512)) for k, v in _LINE_WIDTHS.items()}
        self._intensity = {name: i for i, name in enumerate(self.model.intensity_names)}
        skin = np.array(SKIN, dtype=np.float32)
        ink = np.array([_INK.get(n.split(".")[0], WRINKLE) for n in self.model.intensity_names], np.float32)
        self._skin, self._ink_minus_skin = skin, ink - skin
        self._background = self._draw_background()
        self._label_stamps = self._draw_labels()

    @property
    def width(self) -> int:
        return self.size * self.panels

    @property
    def height(self) -> int:
        return self.size

    def geometry(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points in panel units (frames, points, 2) and intensities (frames, intensities)."""
        return self.model.evaluate(values, self.columns)

    def frames(
        self, sequences: Sequence[RigSequence], indices: Iterable[int] | None = None
    ) -> Iterator[Image.Image]:
        """RGB images, one per frame of the first sequence (or per index given); a shorter sequence in
        another panel holds its last frame."""
        if len(sequences) != self.panels:
            raise ValueError(f"this renderer draws {self.panels} panels, got {len(sequences)} sequences")
        wanted = np.arange(sequences[0].num_frames) if indices is None else np.fromiter(indices, np.intp)
        for start in range(0, len(wanted), CHUNK_FRAMES):
            chunk = wanted[start : start + CHUNK_FRAMES]
            panels = []
            for panel, sequence in enumerate(sequences):
                points, intensities = self.geometry(
                    sequence.values[np.minimum(chunk, sequence.num_frames - 1)]
                )
                pixels = points * self._scale
                pixels[..., 0] += panel * self._scale
                colours = np.rint(self._skin + intensities[..., None] * self._ink_minus_skin).astype(np.uint8)
                panels.append((pixels, intensities, colours))
            for i in range(len(chunk)):
                yield self._draw(
                    [(pixels[i], intensities[i], colours[i]) for pixels, intensities, colours in panels]
                )

    def _draw_background(self) -> Image.Image:
        from PIL import Image, ImageDraw

        scale = self._scale
        image = Image.new("RGB", (scale * self.panels, scale), BACKGROUND)
        draw = ImageDraw.Draw(image)
        shoulders = [(0.02, 1.01), (0.1, 0.93), (0.3, 0.885), (0.42, 0.87)]
        shoulders += [(1.0 - x, y) for x, y in reversed(shoulders)]
        neck = [(0.405, 0.6), (0.595, 0.6), (0.615, 0.9), (0.5, 0.935), (0.385, 0.9)]
        for panel in range(self.panels):
            left = panel * scale
            draw.polygon([(left + x * scale, y * scale) for x, y in shoulders], fill=SHIRT)
            draw.polygon([(left + x * scale, y * scale) for x, y in neck], fill=SKIN_SHADE)
            if panel > 0:
                draw.line([(left, 0), (left, scale)], fill=PANEL_SEPARATOR, width=self._widths["lid"])
        return image

    def _draw_labels(self) -> list[tuple[Image.Image, tuple[int, int]]]:
        """Each panel's label on a translucent card, pasted over the face so the hair never hides it."""
        from PIL import Image, ImageDraw, ImageFont

        scale = self._scale
        font = ImageFont.load_default(size=max(10, round(0.042 * scale)))
        pad = max(2, round(0.012 * scale))
        stamps = []
        for panel, label in enumerate(self.labels[: self.panels]):
            if not label:
                continue
            left, top, right, bottom = font.getbbox(label)
            card = Image.new("RGBA", (right + 2 * pad, bottom + 2 * pad), (*BACKGROUND, 210))
            ImageDraw.Draw(card).text((pad, pad), label, fill=(*LABEL, 255), font=font)
            stamps.append((card, (panel * scale + round(0.02 * scale), round(0.015 * scale))))
        return stamps

    def _draw(self, panels: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Image.Image:
        from PIL import ImageDraw

        image = self._background.copy()
        draw = ImageDraw.Draw(image)
        for pixels, intensities, colours in panels:
            self._draw_face(draw, pixels, intensities, colours)
        for card, corner in self._label_stamps:
            image.paste(card, corner, card)
        return image.reduce(self.supersample) if self.supersample > 1 else image

    def _draw_face(
        self, draw: ImageDraw.ImageDraw, pixels: np.ndarray, intensities: np.ndarray, colours: np.ndarray
    ) -> None:
        groups, widths, scale, intensity = self.model.groups, self._widths, self._scale, self._intensity
        thin = widths["thin"]

        def points(group: str) -> list[float]:
            return pixels[groups[group]].ravel().tolist()

        def closed(group: str) -> list[float]:
            outline = points(group)
            return outline + outline[:2]

        def point(group: str) -> tuple[float, float]:
            x, y = pixels[groups[group].start]
            return float(x), float(y)

        def circle(x: float, y: float, rx: float, ry: float, **style) -> None:
            draw.ellipse((x - rx, y - ry, x + rx, y + ry), **style)

        def faint_line(group: str, intensity_name: str, width: int) -> None:
            # Wrinkles and folds fade in with their controls; under a twentieth they are not drawn at all.
            i = intensity[intensity_name]
            if intensities[i] > 0.05:
                draw.line(points(group), fill=tuple(colours[i].tolist()), width=width)

        for side, _ in SIDES:
            faint_line(f"tendon.{side}", f"tendon.{side}", widths["tendon"])
            circle(*point(f"ear.{side}"), 0.036 * scale, 0.066 * scale, fill=SKIN_SHADE, outline=FEATURE_LINE)
        draw.polygon(points("head"), fill=SKIN)
        draw.line(closed("head"), fill=FEATURE_LINE, width=thin)
        draw.polygon(points("hair"), fill=HAIR)
        for row in range(3):
            faint_line(f"forehead.{row}", "forehead", thin)

        for side, _ in SIDES:
            upper, lower = pixels[groups[f"lid_upper.{side}"]], pixels[groups[f"lid_lower.{side}"]]
            upper_xy, lower_xy = upper.ravel().tolist(), lower.ravel().tolist()
            draw.polygon(upper_xy + lower[::-1].ravel().tolist(), fill=EYE_WHITE)
            x, y = point(f"iris.{side}")
            iris = IRIS_RADIUS * scale
            circle(x, y, iris, iris, fill=IRIS)
            pupil = (0.0075 + 0.0055 * float(intensities[intensity[f"pupil.{side}"]])) * scale
            circle(x, y, pupil, pupil, fill=PUPIL)
            circle(x - 0.3 * iris, y - 0.35 * iris, 0.0042 * scale, 0.0042 * scale, fill=EYE_WHITE)
            # Skin-coloured covers above the upper lid and below the lower one clip the iris to the opening.
            reach = 0.07 * scale
            (inner_x, inner_upper), (outer_x, outer_upper) = upper[0].tolist(), upper[-1].tolist()
            inner_lower, outer_lower = float(lower[0, 1]), float(lower[-1, 1])
            draw.polygon(upper_xy + [outer_x, outer_upper - reach, inner_x, inner_upper - reach], fill=SKIN)
            draw.polygon(lower_xy + [outer_x, outer_lower + reach, inner_x, inner_lower + reach], fill=SKIN)

        for side, _ in SIDES:
            blush = tuple(colours[intensity[f"blush.{side}"]].tolist())
            circle(*point(f"blush.{side}"), 0.05 * scale, 0.03 * scale, fill=blush)
            faint_line(f"fold.{side}", f"fold.{side}", widths["fold"])
            faint_line(f"bag.{side}", f"bag.{side}", thin)
            draw.line(points(f"crease.{side}"), fill=FEATURE_LINE, width=thin)
            draw.line(points(f"lid_lower.{side}"), fill=FEATURE_LINE, width=thin)
            draw.line(points(f"lid_upper.{side}"), fill=LASH, width=widths["lid"], joint="curve")
            draw.polygon(points(f"brow.{side}"), fill=BROW)
            faint_line(f"glabella.{side}", "glabella", thin)
            faint_line(f"bunny.{side}", "bunny", thin)
            draw.line(points(f"bridge.{side}"), fill=SKIN_SHADE, width=thin)
            draw.line(points(f"nose_wing.{side}"), fill=FEATURE_LINE, width=widths["nose"])
            draw.polygon(points(f"nostril.{side}"), fill=LIP_LINE)
        draw.line(points("nose_tip"), fill=FEATURE_LINE, width=widths["nose"])

        upper_inner, lower_inner = pixels[groups["lip_upper_inner"]], pixels[groups["lip_lower_inner"]]
        upper_inner_xy = upper_inner.ravel().tolist()
        if float((lower_inner[:, 1] - upper_inner[:, 1]).max()) > 0.6 * self.supersample:
            draw.polygon(upper_inner_xy + lower_inner[::-1].ravel().tolist(), fill=MOUTH_CAVITY)
            draw.polygon(points("tongue"), fill=TONGUE)
            draw.polygon(points("teeth_lower"), fill=TEETH)
            draw.polygon(points("teeth_upper"), fill=TEETH)
        upper_lip = points("lip_upper_outer") + upper_inner[::-1].ravel().tolist()
        lower_lip = lower_inner.ravel().tolist() + pixels[groups["lip_lower_outer"]][::-1].ravel().tolist()
        for lip in (upper_lip, lower_lip):
            draw.polygon(lip, fill=LIP)
            draw.line(lip + lip[:2], fill=LIP_EDGE, width=thin)
        draw.line(upper_inner_xy, fill=LIP_LINE, width=widths["lip_line"])
        faint_line("chin_crease", "chin_crease", thin)


PANEL_SEPARATOR = (190, 196, 206)
# Line widths in pixels at a 512-pixel panel; they scale with the panel.
_LINE_WIDTHS = {"thin": 1.6, "lid": 3.2, "fold": 2.0, "nose": 2.0, "lip_line": 2.2, "tendon": 3.0}
# The colour each intensity fades towards from the skin; wrinkles and folds use WRINKLE.
_INK = {"blush": BLUSH, "pupil": PUPIL, "tendon": (150, 100, 84)}

_MODEL: FaceModel | None = None


def face_model() -> FaceModel:
    """The face model, built once per process (a few milliseconds)."""
    global _MODEL
    if _MODEL is None:
        _MODEL = build_face_model()
    return _MODEL
