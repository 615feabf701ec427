"""Phones with times -> lip, jaw and tongue curves on a MetaHuman rig, with dominance coarticulation.

Each ARPAbet phone maps to a viseme: target values on named mouth, jaw and tongue controls, and a
dominance per articulator group (lips, jaw, tongue). Following Cohen and Massaro (1993), a phone's
dominance over time is a flat top over its middle that falls off exponentially before and after; a
control's value at a frame is the dominance-weighted mean of the targets of all phones. Consonants
that must be seen (p/b/m, f/v, w, the rounded vowels) are dominant and fall off slowly before the
phone, so the lips anticipate them; h, k, g barely constrain the lips and take their neighbours' shape.
Bilabials get a closure pass on top (``close_lips``): blending alone leaves them a little open when
their neighbours are open vowels, and the closed lips of p/b/m are what viewers check first.

Controls are looked up by name from the rig, never by index. Where a rig repeats a name (metahuman-174
carries the tongue-tip pair twice), the last column is written: the authors' files move that copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from medtalk.core.rig import RigSpec
    from medtalk.core.types import Phone

BILABIALS = frozenset({"P", "B", "M"})
ROUNDED = frozenset({"UW", "UH", "OW", "W"})
LABIODENTALS = frozenset({"F", "V"})
TONGUE_TIP = frozenset({"L", "TH", "DH", "T", "D", "N"})
# Diphthongs glide between two targets: split into (first, second, share of the first).
DIPHTHONGS: Mapping[str, tuple[str, str, float]] = {
    "AY": ("AA", "IY", 0.55),
    "AW": ("AA", "UW", 0.55),
    "OY": ("AO", "IY", 0.55),
}

# Lip opening (``lip_opening``) in units of a full jaw drop; at or below this the lips touch.
CLOSED_OPENING = 0.03
# Mean purse/towards/funnel (``lip_rounding``) at or above which the lips read as rounded.
ROUNDED_LEVEL = 0.3

GROUPS = ("lips", "jaw", "tongue")


@dataclass(frozen=True)
class Viseme:
    """A mouth shape: targets on named controls, and how strongly it holds them against its neighbours.

    ``controls``: full control names (``CTRL_C_jaw-translateY``) or sided short names (``mouth_purseU``,
    set on ``CTRL_L_..`` and ``CTRL_R_..-translateY``); controls of the lip set it leaves out have target 0.
    ``dominance``: peak dominance per group (``lips``, ``jaw``, ``tongue``). ``lead``: how many times
    further its dominance reaches before the phone than after it (anticipation).
    """

    name: str
    controls: Mapping[str, float]
    dominance: Mapping[str, float]
    lead: float = 1.0
    phones: tuple[str, ...] = field(default_factory=tuple)


def _v(name, phones, dominance, lead=1.0, **controls) -> Viseme:
    lips, jaw, tongue = dominance
    return Viseme(name, controls, {"lips": lips, "jaw": jaw, "tongue": tongue}, lead, tuple(phones))


JAW = "CTRL_C_jaw-translateY"
MOUTH_Y = "CTRL_C_mouth-translateY"
TONGUE_Y = "CTRL_C_tongue-translateY"
TONGUE_PRESS = "CTRL_C_tongue_press-translateY"
TONGUE_TIP_Y = "CTRL_C_tongue_tip-translateY"
TONGUE_IN_OUT = "CTRL_C_tongue_inOut-translateY"

# Targets calibrated against the real clip (../shared/data/real): its jaw opens to 0.44 on open vowels,
# purse/towards reach 0.75-0.97 on rounded sounds, lipBiteD 0.59 on f/v, tongue press 0.74 on l/t/d/n.
_VISEMES: tuple[Viseme, ...] = (
    _v("rest", ["SIL"], (0.35, 0.35, 0.3)),
    _v(
        "bilabial",
        ["P", "B", "M"],
        (1.0, 0.7, 0.2),
        1.3,
        **{
            JAW: 0.06,
            "mouth_lipsTogetherU": 0.3,
            "mouth_lipsTogetherD": 0.45,
            "mouth_pressU": 0.15,
            "mouth_pressD": 0.15,
            "mouth_lipSticky": 0.2,
            "mouth_lipsRollU": 0.3,
            "mouth_stickyInnerU": 0.2,
            "mouth_stickyInnerD": 0.3,
            "CTRL_C_mouth_stickyU-translateY": 0.1,
            "CTRL_C_mouth_stickyD-translateY": 0.2,
            "mouth_thicknessD": 0.15,
        },
    ),
    _v(
        "labiodental",
        ["F", "V"],
        (0.95, 0.6, 0.2),
        1.3,
        **{
            JAW: 0.08,
            "mouth_lipBiteD": 0.55,
            "mouth_lipsTowardsTeethD": 0.1,
            "mouth_upperLipRaise": 0.12,
            "mouth_lowerLipDepress": 0.07,
            "mouth_stickyOuterU": 0.42,
            "mouth_thicknessU": 0.15,
            "CTRL_C_jaw_fwdBack-translateY": -0.15,
        },
    ),
    _v(
        "dental",
        ["TH", "DH"],
        (0.5, 0.7, 0.9),
        **{
            JAW: 0.14,
            TONGUE_TIP_Y: 0.22,
            TONGUE_Y: 0.18,
            TONGUE_PRESS: 0.3,
            TONGUE_IN_OUT: 0.1,
            "mouth_lowerLipDepress": 0.49,
            "mouth_stretch": 0.05,
            "mouth_stickyOuterD": 0.42,
        },
    ),
    _v(
        "alveolar",
        ["T", "D", "N"],
        (0.3, 0.55, 0.9),
        **{
            JAW: 0.12,
            TONGUE_TIP_Y: 0.25,
            TONGUE_Y: 0.22,
            TONGUE_PRESS: 0.65,
            MOUTH_Y: -0.28,
            "mouth_lowerLipDepress": 0.42,
            "mouth_dimple": 0.35,
            "mouth_stickyOuterD": 0.49,
            "mouth_stickyOuterU": 0.28,
        },
    ),
    _v(
        "lateral",
        ["L"],
        (0.3, 0.5, 0.95),
        **{
            JAW: 0.16,
            TONGUE_TIP_Y: 0.25,
            TONGUE_Y: 0.25,
            TONGUE_PRESS: 0.72,
            MOUTH_Y: -0.35,
            "mouth_lowerLipDepress": 0.49,
            "mouth_dimple": 0.35,
            "mouth_stickyOuterD": 0.49,
        },
    ),
    _v(
        "sibilant",
        ["S", "Z"],
        (0.6, 0.75, 0.5),
        **{
            JAW: 0.05,
            TONGUE_Y: 0.1,
            TONGUE_PRESS: 0.2,
            "mouth_stretch": 0.15,
            "mouth_dimple": 0.7,
            "mouth_sharpCornerPull": 0.15,
            "mouth_lowerLipDepress": 0.63,
            "mouth_stickyOuterU": 0.56,
            "mouth_stickyOuterD": 0.63,
            "CTRL_C_jaw_fwdBack-translateY": 0.2,
            MOUTH_Y: -0.21,
        },
    ),
    _v(
        "postalveolar",
        ["SH", "ZH", "CH", "JH"],
        (0.8, 0.7, 0.5),
        1.3,
        **{
            JAW: 0.08,
            TONGUE_Y: 0.12,
            TONGUE_PRESS: 0.25,
            "mouth_funnelU": 0.4,
            "mouth_funnelD": 0.35,
            "mouth_purseU": 0.45,
            "mouth_purseD": 0.45,
            "mouth_towardsU": 0.4,
            "mouth_towardsD": 0.4,
            "mouth_lowerLipDepress": 0.42,
            "mouth_suckBlow": -0.28,
            "mouth_thicknessU": 0.15,
        },
    ),
    _v(
        "velar",
        ["K", "G", "NG"],
        (0.15, 0.45, 0.6),
        **{JAW: 0.15, TONGUE_Y: 0.05, "mouth_lowerLipDepress": 0.28, MOUTH_Y: -0.21},
    ),
    _v("glottal", ["HH"], (0.05, 0.15, 0.05), **{JAW: 0.2}),
    _v(
        "palatal",
        ["Y"],
        (0.45, 0.45, 0.5),
        **{JAW: 0.1, TONGUE_Y: 0.15, "mouth_stretch": 0.1, "mouth_dimple": 0.63, "mouth_stickyOuterD": 0.42},
    ),
    _v(
        "rhotic",
        ["R", "ER"],
        (0.65, 0.45, 0.4),
        1.3,
        **{
            JAW: 0.14,
            TONGUE_Y: 0.1,
            "mouth_purseU": 0.5,
            "mouth_purseD": 0.45,
            "mouth_towardsU": 0.5,
            "mouth_towardsD": 0.45,
            "mouth_funnelU": 0.25,
            "mouth_funnelD": 0.15,
            "mouth_suckBlow": -0.28,
        },
    ),
    _v(
        "labiovelar",
        ["W"],
        (0.95, 0.6, 0.3),
        1.8,
        **{
            JAW: 0.06,
            "mouth_purseU": 0.9,
            "mouth_purseD": 0.9,
            "mouth_towardsU": 0.7,
            "mouth_towardsD": 0.7,
            "mouth_funnelU": 0.3,
            "mouth_funnelD": 0.2,
            "mouth_suckBlow": -0.63,
            "mouth_thicknessU": 0.2,
            "mouth_thicknessD": 0.15,
            "CTRL_C_jaw_fwdBack-translateY": -0.1,
        },
    ),
    _v(
        "close-rounded",
        ["UW"],
        (0.85, 0.6, 0.3),
        1.8,
        **{
            JAW: 0.12,
            MOUTH_Y: -0.21,
            "mouth_purseU": 0.85,
            "mouth_purseD": 0.85,
            "mouth_towardsU": 0.65,
            "mouth_towardsD": 0.65,
            "mouth_funnelU": 0.4,
            "mouth_funnelD": 0.3,
            "mouth_suckBlow": -0.63,
            "mouth_thicknessU": 0.2,
            "mouth_thicknessD": 0.15,
            "CTRL_C_jaw_fwdBack-translateY": -0.1,
        },
    ),
    _v(
        "near-close-rounded",
        ["UH"],
        (0.75, 0.6, 0.3),
        1.6,
        **{
            JAW: 0.2,
            MOUTH_Y: -0.35,
            "mouth_purseU": 0.6,
            "mouth_purseD": 0.6,
            "mouth_towardsU": 0.5,
            "mouth_towardsD": 0.5,
            "mouth_funnelU": 0.4,
            "mouth_funnelD": 0.3,
            "mouth_suckBlow": -0.42,
        },
    ),
    _v(
        "mid-rounded",
        ["OW"],
        (0.75, 0.7, 0.3),
        1.6,
        **{
            JAW: 0.3,
            MOUTH_Y: -0.49,
            "mouth_purseU": 0.55,
            "mouth_purseD": 0.55,
            "mouth_towardsU": 0.45,
            "mouth_towardsD": 0.45,
            "mouth_funnelU": 0.5,
            "mouth_funnelD": 0.4,
            "mouth_stickyOuterD": 0.42,
            "mouth_suckBlow": -0.35,
        },
    ),
    _v(
        "open-rounded",
        ["AO"],
        (0.6, 0.8, 0.3),
        1.3,
        **{
            JAW: 0.38,
            MOUTH_Y: -0.56,
            "mouth_funnelU": 0.4,
            "mouth_funnelD": 0.3,
            "mouth_purseU": 0.3,
            "mouth_purseD": 0.3,
            "mouth_lowerLipDepress": 0.49,
            "mouth_stickyOuterD": 0.63,
            "mouth_stickyOuterU": 0.42,
        },
    ),
    _v(
        "open",
        ["AA"],
        (0.5, 0.85, 0.3),
        **{
            JAW: 0.44,
            MOUTH_Y: -0.7,
            "mouth_lowerLipDepress": 0.84,
            "mouth_upperLipRaise": 0.1,
            "mouth_stickyOuterD": 0.84,
            "mouth_stickyOuterU": 0.7,
            "mouth_stretch": 0.08,
            "CTRL_C_jaw_fwdBack-translateY": 0.1,
        },
    ),
    _v(
        "open-spread",
        ["AE"],
        (0.5, 0.85, 0.3),
        **{
            JAW: 0.38,
            MOUTH_Y: -0.63,
            "mouth_lowerLipDepress": 0.85,
            "mouth_upperLipRaise": 0.12,
            "mouth_stretch": 0.18,
            "mouth_dimple": 0.7,
            "mouth_sharpCornerPull": 0.15,
            "mouth_stickyOuterD": 0.77,
            "mouth_stickyOuterU": 0.7,
        },
    ),
    _v(
        "mid",
        ["AH"],
        (0.45, 0.8, 0.3),
        **{
            JAW: 0.32,
            MOUTH_Y: -0.63,
            "mouth_lowerLipDepress": 0.7,
            "mouth_stickyOuterD": 0.77,
            "mouth_stickyOuterU": 0.56,
            "mouth_dimple": 0.28,
        },
    ),
    _v(
        "mid-spread",
        ["EH", "EY"],
        (0.5, 0.75, 0.3),
        **{
            JAW: 0.26,
            MOUTH_Y: -0.49,
            "mouth_lowerLipDepress": 0.7,
            "mouth_stretch": 0.15,
            "mouth_dimple": 0.7,
            "mouth_sharpCornerPull": 0.15,
            "mouth_stickyOuterD": 0.7,
            "mouth_stickyOuterU": 0.49,
        },
    ),
    _v(
        "near-close-spread",
        ["IH"],
        (0.5, 0.7, 0.3),
        **{
            JAW: 0.18,
            MOUTH_Y: -0.35,
            "mouth_lowerLipDepress": 0.63,
            "mouth_stretch": 0.18,
            "mouth_dimple": 0.7,
            "mouth_sharpCornerPull": 0.2,
            "mouth_stickyOuterD": 0.56,
            "CTRL_C_jaw_fwdBack-translateY": 0.1,
        },
    ),
    _v(
        "close-spread",
        ["IY"],
        (0.6, 0.7, 0.3),
        **{
            JAW: 0.12,
            MOUTH_Y: -0.28,
            "mouth_lowerLipDepress": 0.56,
            "mouth_stretch": 0.22,
            "mouth_dimple": 0.7,
            "mouth_sharpCornerPull": 0.25,
            "mouth_cornerPull": 0.08,
            "mouth_stickyOuterD": 0.49,
            "CTRL_C_jaw_fwdBack-translateY": 0.15,
        },
    ),
)

VISEMES: Mapping[str, Viseme] = {viseme.name: viseme for viseme in _VISEMES}
PHONE_VISEMES: Mapping[str, str] = {phone: viseme.name for viseme in _VISEMES for phone in viseme.phones}
# Phones the table reads; diphthongs are split into two of them first.
PHONES = frozenset(PHONE_VISEMES) | frozenset(DIPHTHONGS)


def viseme_of(symbol: str) -> Viseme:
    """The viseme of an ARPAbet phone (stress digits ignored); unknown symbols read as a pause."""
    symbol = symbol.upper().rstrip("012")
    if symbol in DIPHTHONGS:
        symbol = DIPHTHONGS[symbol][0]
    return VISEMES[PHONE_VISEMES.get(symbol, "rest")]


def control_names(name: str) -> tuple[str, ...]:
    """Full control names of a table key: itself if it starts with ``CTRL_``, else its left and right."""
    if name.startswith("CTRL_"):
        return (name,)
    return (f"CTRL_L_{name}-translateY", f"CTRL_R_{name}-translateY")


def group_of(control: str) -> str:
    """The articulator group a control belongs to: ``tongue``, ``jaw`` (jaw and teeth) or ``lips``."""
    if "tongue" in control:
        return "tongue"
    if "jaw" in control or "teeth" in control:
        return "jaw"
    return "lips"


def column(rig: RigSpec, name: str) -> int:
    """The column of a control name in ``rig``: the last one where the rig repeats the name."""
    return rig.indices_of([name])[-1]


def _columns_of(rig: RigSpec, names: Sequence[str]) -> np.ndarray:
    return np.array([column(rig, name) for name in names], dtype=np.int64)


def _rig_key(rig: RigSpec) -> tuple[str, tuple[str, ...]]:
    return rig.name, rig.controls


_TABLES: dict[tuple[str, tuple[str, ...]], tuple] = {}
_OPENING: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}


def _tables(rig: RigSpec) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, int]]:
    """(columns, targets[viseme, column], group masks over columns, viseme row per name) for ``rig``."""
    key = _rig_key(rig)
    if key not in _TABLES:
        _TABLES[key] = _build_tables(rig)
    return _TABLES[key]


def _build_tables(rig: RigSpec) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, int]]:
    names = sorted({full for v in _VISEMES for key in v.controls for full in control_names(key)})
    columns = _columns_of(rig, names)
    targets = np.zeros((len(_VISEMES), len(names)), dtype=np.float64)
    position = {name: i for i, name in enumerate(names)}
    for row, viseme in enumerate(_VISEMES):
        for key, value in viseme.controls.items():
            for full in control_names(key):
                targets[row, position[full]] = value
    groups = {g: np.array([group_of(n) == g for n in names]) for g in GROUPS}
    return columns, targets, groups, {v.name: i for i, v in enumerate(_VISEMES)}


def expand_phones(phones: Sequence[Phone]) -> list[tuple[str, float, float]]:
    """(symbol, start, end) per phone, diphthongs split in two, stress digits dropped, sorted by start."""
    expanded: list[tuple[str, float, float]] = []
    for phone in sorted(phones, key=lambda p: p.start):
        symbol = phone.symbol.upper().rstrip("012")
        start, end = float(phone.start), float(max(phone.end, phone.start))
        if symbol in DIPHTHONGS:
            first, second, share = DIPHTHONGS[symbol]
            middle = start + share * (end - start)
            expanded += [(first, start, middle), (second, middle, end)]
        else:
            expanded.append((symbol if symbol in PHONE_VISEMES else "SIL", start, end))
    return expanded


def frame_times(num_frames: int, fps: float) -> np.ndarray:
    """The time of each frame in seconds (frame i shows time i / fps)."""
    return np.arange(num_frames, dtype=np.float64) / float(fps)


def viseme_track(
    phones: Sequence[Phone],
    num_frames: int,
    fps: float,
    rig: RigSpec,
    *,
    coarticulation: float = 1.0,
    spread_s: float = 0.04,
    close_bilabials: bool = True,
) -> np.ndarray:
    """(num_frames, rig controls) float32 values of the mouth, jaw and tongue controls speaking ``phones``;
    every other control is 0.

    ``coarticulation`` scales how far a phone's dominance reaches into its neighbours (0: each phone
    holds its own target, a step curve; 1: the default; 2: twice as smooth); ``spread_s`` is the fall-off
    time constant at 1. Frames outside every phone are a pause. With ``close_bilabials`` the lips are
    closed over the middle of every p/b/m (``close_lips``).
    """
    values = np.zeros((num_frames, rig.num_controls), dtype=np.float32)
    segments = expand_phones(phones)
    if num_frames < 1:
        return values
    columns, targets, groups, rows = _tables(rig)
    times = frame_times(num_frames, fps)
    if not segments:
        return values
    # Pauses before the first and after the last phone, so the mouth comes to rest there.
    end = max(times[-1], segments[-1][2]) + 1.0
    segments = [("SIL", min(0.0, segments[0][1]) - 1.0, segments[0][1]), *segments]
    segments.append(("SIL", segments[-1][2], end))
    symbols = [s for s, _, _ in segments]
    starts = np.array([s for _, s, _ in segments])
    ends = np.array([e for _, _, e in segments])
    centres = (starts + ends) / 2
    half = (ends - starts) / 2
    visemes = [viseme_of(s) for s in symbols]
    lead = np.array([v.lead for v in visemes])[:, None]
    spread = max(spread_s * float(coarticulation), 1e-3)
    # Flat top over the middle half of the phone, then an exponential fall-off, slower before the phone.
    offset = times[None, :] - centres[:, None]
    distance = np.maximum(np.abs(offset) - 0.5 * half[:, None], 0.0)
    scale = np.where(offset < 0, spread * lead, spread)
    falloff = np.exp(-distance / scale)
    phone_targets = targets[[rows[v.name] for v in visemes]]  # (N, K)
    blended = np.zeros((num_frames, len(columns)))
    for group in GROUPS:
        peak = np.array([v.dominance[group] for v in visemes])[:, None]
        dominance = peak * falloff + 1e-9
        mask = groups[group]
        blended[:, mask] = (dominance.T @ phone_targets[:, mask]) / dominance.sum(axis=0)[:, None]
    values[:, columns] = blended
    if close_bilabials:
        values = close_lips(values, closure_envelope(phones, num_frames, fps), rig)
    return values


def closure_envelope(
    phones: Sequence[Phone], num_frames: int, fps: float, ramp_s: float = 0.03
) -> np.ndarray:
    """(num_frames,) in 0..1: 1 over the middle of every p/b/m (from 15% to 85% of the phone), ramping
    down over ``ramp_s`` on either side; 0 elsewhere. The frame nearest a short bilabial's middle is 1."""
    times = frame_times(num_frames, fps)
    envelope = np.zeros(num_frames)
    for phone in phones:
        if phone.symbol.upper().rstrip("012") not in BILABIALS or num_frames < 1:
            continue
        length = max(phone.end - phone.start, 0.0)
        hold_start, hold_end = phone.start + 0.15 * length, phone.end - 0.15 * length
        distance = np.maximum(np.maximum(hold_start - times, times - hold_end), 0.0)
        envelope = np.maximum(envelope, np.clip(1.0 - distance / ramp_s, 0.0, 1.0))
        middle = int(np.clip(round((phone.start + phone.end) / 2 * fps), 0, num_frames - 1))
        envelope[middle] = 1.0
    return envelope


# lip_opening's model of the mouth, in units of a full jaw drop; the weights follow what each control does
# to the middle of the lips in the 2-D preview face (medtalk/render/face2d.py).
_OPENING_TERMS: tuple[tuple[str, float], ...] = (
    ("CTRL_C_jaw-translateY", 1.0),
    ("CTRL_C_jaw_openExtreme-translateY", 0.4),
    ("mouth_funnelU", 0.07 / 2),
    ("mouth_funnelD", 0.07 / 2),
    ("mouth_upperLipRaise", 0.2 / 2),
    ("mouth_lowerLipDepress", 0.2 / 2),
    ("mouth_lipsTogetherU", -0.47 / 2),
    ("mouth_lipsTogetherD", -0.47 / 2),
    ("mouth_stickyInnerU", -0.26 / 2),
    ("mouth_stickyInnerD", -0.26 / 2),
    ("mouth_lipSticky", -0.25 / 2),
    ("CTRL_C_mouth_stickyU-translateY", -0.21),
    ("CTRL_C_mouth_stickyD-translateY", -0.21),
)
# Lips-together per side and lip: what close_lips raises to shut the mouth.
_TOGETHER = ("mouth_lipsTogetherU", "mouth_lipsTogetherD")


def _opening_weights(rig: RigSpec) -> np.ndarray:
    key = _rig_key(rig)
    if key in _OPENING:
        return _OPENING[key]
    weights = np.zeros(rig.num_controls)
    for key, weight in _OPENING_TERMS:
        for name in control_names(key):
            weights[column(rig, name)] += weight
    _OPENING[key] = weights
    return weights


def lip_opening(values: np.ndarray, rig: RigSpec) -> np.ndarray:
    """How far apart the middle of the lips are, per frame, in units of a full jaw drop (<= 0: touching).

    ``values``: one row (C,) or frames (T, C) of ``rig``. Opening the jaw opens the lips; lips-together,
    the sticky-lip controls and pressing shut them; funnel, upper-lip raise and lower-lip depress part them.
    """
    values = np.asarray(values, dtype=np.float64)
    return values @ _opening_weights(rig)


def lips_closed(values: np.ndarray, rig: RigSpec, *, threshold: float = CLOSED_OPENING) -> np.ndarray:
    """Whether the lips are closed: a bool per frame (or a 0-d bool for one row) where ``lip_opening`` is at
    most ``threshold`` (3% of a full jaw drop by default). The same test for the teacher's own tests and the
    bilabial-closure benchmark."""
    return lip_opening(values, rig) <= threshold


def lip_rounding(values: np.ndarray, rig: RigSpec) -> np.ndarray:
    """Mean purse, towards and funnel of both lips and sides, per frame: 0 spread or neutral, ~0.6 an 'oo'."""
    names = [n for key in ("mouth_purseU", "mouth_purseD", "mouth_towardsU", "mouth_towardsD",
                           "mouth_funnelU", "mouth_funnelD") for n in control_names(key)]  # fmt: skip
    return np.asarray(values, dtype=np.float64)[..., _columns_of(rig, names)].mean(axis=-1)


def close_lips(
    values: np.ndarray, envelope: np.ndarray, rig: RigSpec, *, target: float = -0.02
) -> np.ndarray:
    """Raise lips-together where ``envelope`` > 0 so that ``lip_opening`` reaches ``target`` at envelope 1
    (and a share of the way at less); where lips-together would pass 1, lower the jaw for the rest."""
    values = np.array(values, dtype=np.float32, copy=True)
    needed = np.maximum(lip_opening(values, rig) - target, 0.0) * np.asarray(envelope, dtype=np.float64)
    if not needed.any():
        return values
    together = _columns_of(rig, [n for key in _TOGETHER for n in control_names(key)])
    per_unit = -_opening_weights(rig)[together].sum()  # opening closed by +1 on every lips-together column
    current = values[:, together].astype(np.float64)
    room = np.clip(1.0 - current, 0.0, None).min(axis=1)
    raise_by = np.minimum(needed / per_unit, room)
    values[:, together] = (current + raise_by[:, None]).astype(np.float32)
    rest = needed - raise_by * per_unit
    jaw = column(rig, JAW)
    values[:, jaw] = np.maximum(values[:, jaw] - rest, 0.0).astype(np.float32)
    return values


def bilabial_closure_rate(
    values: np.ndarray,
    phones: Sequence[Phone],
    fps: float,
    rig: RigSpec,
    *,
    at: Literal["any", "middle"] = "any",
) -> float:
    """Fraction of the p/b/m in ``phones`` at which ``lips_closed`` holds (nan when there are none).

    ``at="any"``: some frame within the phone (the frame nearest its middle for a phone shorter than a
    frame), which forgives forced-alignment times a frame or two off; ``at="middle"``: the frame nearest
    the phone's middle.
    """
    values = np.asarray(values)
    closed = np.atleast_1d(lips_closed(values, rig))
    frames = len(closed)
    hits = total = 0
    for phone in phones:
        if phone.symbol.upper().rstrip("012") not in BILABIALS:
            continue
        total += 1
        middle = int(np.clip(round((phone.start + phone.end) / 2 * fps), 0, frames - 1))
        if at == "middle":
            hits += bool(closed[middle])
            continue
        first = int(np.clip(np.ceil(phone.start * fps - 1e-9), 0, frames - 1))
        last = int(np.clip(np.floor(phone.end * fps - 1e-9), first, frames - 1))
        hits += bool(closed[first : last + 1].any() or closed[middle])
    return hits / total if total else float("nan")
