"""A plot of control curves over time, drawn with Pillow (no plotting library needed).

One panel per requested item: an index set of the rig (``lip``, ``upper``, ...) or a single control
name. Each panel's vertical axis spans the rig's ranges of its controls (widened to the data if a
curve overshoots), so the same controls always plot on the same scale. A second sequence (``--compare``)
is drawn in the same colours, lighter, over the first. With audio, a waveform panel comes first.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from medtalk.core.errors import ConfigError

if TYPE_CHECKING:
    from PIL import Image

    from medtalk.core.rig import RigSpec
    from medtalk.core.sequence import RigSequence

DEFAULT_WIDTH = 960
PANEL_HEIGHT = 170
WAVEFORM_HEIGHT = 90
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 28, 34
PANEL_GAP = 30
LEGEND_LIMIT = 8  # above this many curves a panel names only its set and count, not each control

PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
BACKGROUND = (255, 255, 255)
AXIS = (90, 90, 90)
GRID = (228, 228, 228)
TEXT = (30, 30, 30)


@dataclass(frozen=True)
class CurvePanel:
    title: str
    columns: tuple[int, ...]


def parse_curves(spec: str, rig: RigSpec) -> list[CurvePanel]:
    """Panels for a comma-separated list of index-set names and control names of ``rig``."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if not items:
        raise ConfigError(
            f"--curves needs index set or control names of rig {rig.name}, e.g. --curves lip,upper"
        )
    panels = []
    for item in items:
        if item in rig.sets:
            panels.append(CurvePanel(item, tuple(rig.sets[item])))
        elif item in rig.controls:
            panels.append(CurvePanel(item, rig.indices_of([item])))
        else:
            raise ConfigError(_unknown_curve_message(item, rig))
    return panels


def _unknown_curve_message(item: str, rig: RigSpec) -> str:
    sets = ", ".join(sorted(rig.sets))
    close = difflib.get_close_matches(item, [*rig.sets, *rig.controls], n=1, cutoff=0.6)
    hint = f": did you mean '{close[0]}'?" if close else f": give index sets ({sets}) or control names"
    return f"--curves: '{item}' is neither an index set nor a control of rig {rig.name}{hint}"


def plot_curves(
    sequences: Sequence[RigSequence],
    rig: RigSpec,
    panels: Sequence[CurvePanel],
    *,
    labels: Sequence[str] = (),
    width: int = DEFAULT_WIDTH,
    audio: np.ndarray | None = None,
) -> Image.Image:
    """The plot as an RGB image ``width`` pixels wide; the first sequence sets the time axis."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=12)
    title_font = ImageFont.load_default(size=14)
    rows = ([("waveform", WAVEFORM_HEIGHT)] if audio is not None else []) + [("panel", PANEL_HEIGHT)] * len(
        panels
    )
    height = MARGIN_TOP + sum(h for _, h in rows) + PANEL_GAP * (len(rows) - 1) + MARGIN_BOTTOM
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    left, right = MARGIN_LEFT, width - MARGIN_RIGHT
    duration = sequences[0].duration
    if labels:
        key = "   ".join(
            f"{label}: {'solid' if i == 0 else 'light'}" for i, label in enumerate(labels[: len(sequences)])
        )
        draw.text((left, 6), key, fill=TEXT, font=font)

    top = MARGIN_TOP
    row_iter = iter(rows)
    if audio is not None:
        _, h = next(row_iter)
        _waveform(draw, audio, left, top, right, top + h, font)
        top += h + PANEL_GAP
    for panel in panels:
        _, h = next(row_iter)
        _panel(draw, sequences, rig, panel, left, top, right, top + h, duration, font, title_font)
        top += h + PANEL_GAP
    _time_axis(draw, left, right, top - PANEL_GAP, duration, font)
    return image


def _panel(draw, sequences, rig, panel, left, top, right, bottom, duration, font, title_font) -> None:
    low = min(rig.ranges[c][0] for c in panel.columns)
    high = max(rig.ranges[c][1] for c in panel.columns)
    for sequence in sequences:
        values = sequence.values[:, panel.columns]
        low, high = min(low, float(values.min())), max(high, float(values.max()))

    def y_of(value: np.ndarray) -> np.ndarray:
        return bottom - (value - low) / (high - low) * (bottom - top)

    for tick in _ticks(low, high):
        y = float(y_of(np.float64(tick)))
        draw.line([(left, y), (right, y)], fill=GRID)
        draw.text((left - 6, y), f"{tick:g}", fill=AXIS, font=font, anchor="rm")
    draw.rectangle((left, top, right, bottom), outline=AXIS)
    count = len(panel.columns)
    title = panel.title if count == 1 else f"{panel.title} ({count} controls)"
    draw.text((left, top - 3), title, fill=TEXT, font=title_font, anchor="lb")

    x_scale = (right - left) / duration
    for rank, sequence in enumerate(sequences):
        times = left + (np.arange(sequence.num_frames) + 0.5) / sequence.fps * x_scale
        keep = times <= right
        for i, column in enumerate(panel.columns):
            colour = PALETTE[i % len(PALETTE)]
            if rank > 0:
                colour = tuple(round(c + 0.6 * (255 - c)) for c in colour)
            ys = y_of(sequence.values[keep, column].astype(np.float64))
            xy = np.stack([times[keep], ys], axis=1).ravel().tolist()
            if len(xy) >= 4:
                draw.line(xy, fill=colour, width=2 if rank == 0 else 1)
    if count <= LEGEND_LIMIT and count > 1:
        x = left + 8
        for i, column in enumerate(panel.columns):
            name = rig.controls[column].removeprefix("CTRL_").removesuffix("-translateY")
            draw.line([(x, top + 12), (x + 14, top + 12)], fill=PALETTE[i % len(PALETTE)], width=3)
            draw.text((x + 18, top + 12), name, fill=TEXT, font=font, anchor="lm")
            x += 26 + draw.textlength(name, font=font)


def _waveform(draw, audio: np.ndarray, left, top, right, bottom, font) -> None:
    columns = right - left
    usable = len(audio) // columns * columns
    if usable == 0:
        return
    blocks = np.abs(audio[:usable]).reshape(columns, -1).max(axis=1)
    peak = max(float(blocks.max()), 1e-6)
    middle = (top + bottom) / 2
    half = (bottom - top) / 2
    for x, level in enumerate((blocks / peak).tolist()):
        draw.line(
            [(left + x, middle - level * half), (left + x, middle + level * half)], fill=(110, 130, 160)
        )
    draw.rectangle((left, top, right, bottom), outline=AXIS)
    draw.text((left, top - 3), "audio", fill=TEXT, font=font, anchor="lb")


def _time_axis(draw, left, right, bottom, duration, font) -> None:
    x_scale = (right - left) / duration
    for tick in _ticks(0.0, duration):
        x = left + tick * x_scale
        draw.line([(x, bottom), (x, bottom + 4)], fill=AXIS)
        draw.text((x, bottom + 6), f"{tick:g} s", fill=AXIS, font=font, anchor="mt")


def _ticks(low: float, high: float, target: int = 5) -> list[float]:
    span = high - low
    if span <= 0:
        return [low]
    raw = span / target
    magnitude = 10 ** np.floor(np.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = np.ceil(low / step) * step
    return [round(float(v), 6) for v in np.arange(first, high + step * 1e-6, step)]
