"""Scoring a predicted rig sequence against its ground truth with the registered metrics.

The definitions of the built-in metrics are in docs/eval.md. This module returns numbers; only the
``medtalk eval`` command prints them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from medtalk.core.errors import ConfigError, InputError
from medtalk.core.plugins import get_registry

if TYPE_CHECKING:
    from medtalk.core.components import Metric
    from medtalk.core.retarget import RigMapping
    from medtalk.core.sequence import RigSequence

# The paper's four come first, in the order of its tables; any other metric follows by name.
PAPER_METRICS = ("mle", "mee", "eie", "frd")
# Tools round T = duration x fps differently, so sequences one frame apart are still the same take.
MAX_FRAME_DIFFERENCE = 1
# Frame rates inferred from timecodes carry float noise; anything larger is a different rate.
FPS_REL_TOLERANCE = 1e-6

MetricSpec = str | Mapping[str, Any]


def metric_names() -> list[str]:
    """Every registered metric: the paper's four first, then the others by name."""
    registered = get_registry("metric").names()
    return [n for n in PAPER_METRICS if n in registered] + [n for n in registered if n not in PAPER_METRICS]


def build_metrics(specs: Sequence[MetricSpec] | None = None) -> dict[str, Metric]:
    """Metric instances by name, from names or ``{"type": name, ...}`` configs (default: every metric).

    An unknown name raises one line listing the metrics and the closest match.
    """
    if specs is None:
        specs = metric_names()
    if isinstance(specs, str):
        specs = [specs]
    if not specs:
        raise ConfigError(f"no metric to compute: name one or more of {', '.join(metric_names())}")
    registry = get_registry("metric")
    built: dict[str, Metric] = {}
    for spec in specs:
        metric = registry.build(spec)
        if metric.name in built:
            raise ConfigError(f"metric '{metric.name}' is listed twice: list each metric once")
        built[metric.name] = metric
    return built


def better_direction(metric: Metric) -> str:
    """``"lower"``, ``"higher"`` or, for a signed metric whose ideal is 0 (FRD), ``"closer to 0"``."""
    if getattr(metric, "zero_is_best", False):
        return "closer to 0"
    return "lower" if metric.lower_is_better else "higher"


def evaluate(
    pred: RigSequence,
    gt: RigSequence,
    metrics: Sequence[MetricSpec] | None = None,
    mapping: RigMapping | str | os.PathLike[str] | None = None,
    *,
    labels: tuple[str, str] = ("the prediction", "the ground truth"),
) -> dict[str, Any]:
    """Score ``pred`` against ``gt`` with ``metrics`` (names or configs; default every registered metric).

    The two must share a frame rate; their frame counts may differ by one frame (the longer loses its
    last frame). A prediction on another rig is retargeted to the ground truth's rig through ``mapping``
    (a ``RigMapping`` or a mapping file) or the built-in mapping. ``labels`` name the two sequences in
    error messages (the CLI passes the file names).

    Returns ``{"metrics": {name: value}, "better": {name: "lower" | "higher" | "closer to 0"},
    "frames", "fps", "rig", "retargeted_from", "mapping", "pred_frames", "gt_frames"}``.
    """
    from medtalk.core.retarget import RigMapping, builtin_mapping, load_mapping, retarget

    built = build_metrics(metrics)
    pred_label, gt_label = labels
    if not math.isclose(pred.fps, gt.fps, rel_tol=FPS_REL_TOLERANCE):
        raise InputError(
            f"{pred_label} is at {pred.fps:g} fps but {gt_label} at {gt.fps:g} fps: generate the "
            f"prediction at {gt.fps:g} fps, or state a txt/csv file's true rate with --pred-fps/--gt-fps"
        )
    if abs(pred.num_frames - gt.num_frames) > MAX_FRAME_DIFFERENCE:
        raise InputError(
            f"{pred_label} has {pred.num_frames} frames but {gt_label} {gt.num_frames} "
            f"({pred.duration:.2f} s and {gt.duration:.2f} s): more than {MAX_FRAME_DIFFERENCE} frame "
            "apart, so not the same take: evaluate a prediction made from the ground truth's own audio"
        )
    if mapping is not None and not isinstance(mapping, RigMapping):
        mapping = load_mapping(mapping)
    retargeted_from = None
    used_mapping = None
    if pred.rig != gt.rig or mapping is not None:
        chosen = mapping if mapping is not None else builtin_mapping(pred.rig, gt.rig)
        retargeted_from, used_mapping = pred.rig, chosen.origin
        pred = retarget(pred, gt.rig, chosen)
    frames = min(pred.num_frames, gt.num_frames)
    pred_frames, gt_frames = pred.num_frames, gt.num_frames
    if pred.num_frames != frames:
        pred = _first_frames(pred, frames)
    if gt.num_frames != frames:
        gt = _first_frames(gt, frames)
    rig = get_registry("rig").get(gt.rig)
    return {
        "metrics": {name: float(metric(pred, gt, rig)) for name, metric in built.items()},
        "better": {name: better_direction(metric) for name, metric in built.items()},
        "frames": frames,
        "fps": gt.fps,
        "rig": gt.rig,
        "retargeted_from": retargeted_from,
        "mapping": used_mapping,
        "pred_frames": pred_frames,
        "gt_frames": gt_frames,
    }


def _first_frames(sequence: RigSequence, frames: int) -> RigSequence:
    from medtalk.core.sequence import RigSequence

    return RigSequence(sequence.values[:frames], fps=sequence.fps, rig=sequence.rig)
