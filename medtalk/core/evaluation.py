"""Scoring predicted rig sequences against their ground truth, and a motion autoencoder's disentanglement.

``evaluate`` scores one pair of sequences with the registered metrics, ``evaluate_folders`` every pair of
files matched by name in two folders, and ``evaluate_disentanglement`` a bundle's motion autoencoder on a
dataset (the paper's Figs. 5 and 6 as numbers). The definitions are in docs/eval.md. This module returns
numbers; only the ``medtalk eval`` command prints them. numpy and torch are imported inside the functions.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medtalk.core.errors import ConfigError, InputError, MedtalkWarning
from medtalk.core.plugins import get_registry

if TYPE_CHECKING:
    import numpy as np

    from medtalk.core.components import Metric
    from medtalk.core.data.samples import Sample
    from medtalk.core.retarget import RigMapping
    from medtalk.core.rig import RigSpec
    from medtalk.core.sequence import RigSequence

# The paper's four come first, in the order of its tables, then their squared variants (to compare with
# the paper's magnitudes, docs/eval.md); any other metric follows by name.
PAPER_METRICS = ("mle", "mee", "eie", "frd")
SQUARED_VARIANTS = ("mle-mse", "mee-mse", "eie-mse")
# Tools round T = duration x fps differently, so sequences one frame apart are still the same take.
MAX_FRAME_DIFFERENCE = 1
# Frame rates inferred from timecodes carry float noise; anything larger is a different rate.
FPS_REL_TOLERANCE = 1e-6

MetricSpec = str | Mapping[str, Any]


def metric_names() -> list[str]:
    """Every registered metric: the paper's four first, their squared variants, then the others by name."""
    registered = get_registry("metric").names()
    first = [name for name in (*PAPER_METRICS, *SQUARED_VARIANTS) if name in registered]
    return first + [name for name in registered if name not in first]


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
    "reference": {name: value}, "frames", "fps", "rig", "retargeted_from", "mapping", "pred_frames",
    "gt_frames"}``. ``reference`` holds, for each metric that describes the prediction alone (jitter), the
    ground truth's own value, to read the prediction's against.
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
        "reference": {
            name: float(metric(gt, gt, rig))
            for name, metric in built.items()
            if getattr(metric, "scores_prediction_alone", False)
        },
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


# ------------------------------------------------------------------------------------- two folders

# Files named in the warning about files without a namesake; the rest are counted.
MAX_LISTED_FILES = 5

SequenceReader = Callable[[Path, str], "RigSequence"]


def rig_files(folder: Path) -> dict[str, Path]:
    """The folder's rig-sequence files (an extension some importer reads), by name without extension.

    Other files (audio, notes) are ignored. Two rig files of one name cannot be matched by name: refused.
    """
    extensions = {
        extension for registration in get_registry("importer") for extension in registration.entry.extensions
    }
    by_name: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in extensions:
            continue
        if path.stem in by_name:
            raise InputError(
                f"{folder}: {by_name[path.stem].name} and {path.name} have the same name '{path.stem}', so "
                "neither can be matched by name: keep one file per take in the folder"
            )
        by_name[path.stem] = path
    return by_name


def evaluate_folders(
    pred_dir: str | os.PathLike[str],
    gt_dir: str | os.PathLike[str],
    metrics: Sequence[MetricSpec] | None = None,
    mapping: RigMapping | str | os.PathLike[str] | None = None,
    *,
    read: SequenceReader | None = None,
) -> dict[str, Any]:
    """Score every file of ``pred_dir`` against the file of the same name (any extension) in ``gt_dir``.

    Files on one side only are skipped with one ``MedtalkWarning`` naming them; no pair at all is an error.
    ``read(path, side)`` reads a file (``side`` is ``"pred"`` or ``"gt"``; default ``read_sequence``).
    Returns ``{"pred", "gt", "files": [{"name", "pred", "gt", **evaluate(...)}], "mean": {"metrics",
    "reference"}, "better", "skipped"}``; ``mean`` is the plain mean over files (each clip counts once).
    """
    from medtalk.core.fileio import read_sequence
    from medtalk.core.retarget import RigMapping, load_mapping

    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    build_metrics(metrics)  # an unknown metric is reported before any file is read
    if mapping is not None and not isinstance(mapping, RigMapping):
        mapping = load_mapping(mapping)
    for folder in (pred_dir, gt_dir):
        if not folder.is_dir():
            raise InputError(f"{folder}: no such folder: check the path")
    predicted, truth = rig_files(pred_dir), rig_files(gt_dir)
    names = sorted(predicted.keys() & truth.keys())
    if not names:
        raise InputError(
            f"no file in {pred_dir} has a file of the same name in {gt_dir} ({len(predicted)} and "
            f"{len(truth)} rig files): name each prediction after its ground-truth file (a.txt is scored "
            "against a.csv)"
        )
    skipped = [predicted[name] for name in sorted(predicted.keys() - truth.keys())]
    skipped += [truth[name] for name in sorted(truth.keys() - predicted.keys())]
    if skipped:
        warnings.warn(_skipped_message(skipped), MedtalkWarning, stacklevel=2)

    reader = read or (lambda path, side: read_sequence(path))
    files = []
    for name in names:
        result = evaluate(
            reader(predicted[name], "pred"),
            reader(truth[name], "gt"),
            metrics,
            mapping,
            labels=(str(predicted[name]), str(truth[name])),
        )
        files.append({"name": name, "pred": str(predicted[name]), "gt": str(truth[name]), **result})
    rigs = sorted({entry["rig"] for entry in files})
    if len(rigs) > 1:
        warnings.warn(
            f"the pairs are scored on different rigs ({', '.join(rigs)}), so their mean mixes values that "
            "are not comparable: put each rig's files in folders of their own",
            MedtalkWarning,
            stacklevel=2,
        )
    return {
        "pred": str(pred_dir),
        "gt": str(gt_dir),
        "files": files,
        "mean": {key: _mean_over(files, key) for key in ("metrics", "reference")},
        "better": files[0]["better"],
        "skipped": [str(path) for path in skipped],
    }


def _skipped_message(skipped: list[Path]) -> str:
    count = len(skipped)
    listed = ", ".join(str(path) for path in skipped[:MAX_LISTED_FILES])
    if count > MAX_LISTED_FILES:
        listed += f" and {count - MAX_LISTED_FILES} more"
    verb = "file has" if count == 1 else "files have"
    return (
        f"{count} {verb} no file of the same name in the other folder and {'is' if count == 1 else 'are'} "
        f"skipped: {listed}: name each prediction after its ground-truth file to score it"
    )


def _mean_over(files: list[dict[str, Any]], key: str) -> dict[str, float]:
    return {name: math.fsum(entry[key][name] for entry in files) / len(files) for name in files[0][key]}


# ---------------------------------------------------------------------------------- disentanglement

# The swap test (Fig. 6) measures these two index sets of the rig.
SWAP_SETS = ("lip", "upper")


def silhouette_score(points: np.ndarray, labels: Sequence[Any]) -> float:
    """The mean silhouette of ``points`` (N x D) grouped by ``labels``, with Euclidean distances.

    For each point, a = its mean distance to the other points of its group, b = the smallest mean
    distance to the points of another group, s = (b - a) / max(a, b); a point alone in its group has
    s = 0 (Rousseeuw 1987, as scikit-learn). 1: tight, well-separated groups; 0: groups that overlap;
    below 0: points closer to another group than to their own. Needs 2 to N - 1 groups.
    """
    import numpy as np

    points = np.asarray(points, dtype=np.float64)
    groups, codes = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    count = len(points)
    if not 2 <= len(groups) <= count - 1:
        raise InputError(
            f"the silhouette needs 2 to {count - 1} groups for {count} points, got {len(groups)}: "
            "give more points, or points of more groups"
        )
    # Centred first: the Gram-matrix distances then lose less to cancellation.
    centred = points - points.mean(axis=0)
    squared = (centred**2).sum(axis=1)
    distances = np.sqrt(np.clip(squared[:, None] + squared[None, :] - 2 * centred @ centred.T, 0, None))
    np.fill_diagonal(distances, 0.0)
    sizes = np.bincount(codes)
    sums = np.stack([distances[:, codes == group].sum(axis=1) for group in range(len(groups))], axis=1)
    rows = np.arange(count)
    own_sizes = sizes[codes]
    within = sums[rows, codes] / np.maximum(own_sizes - 1, 1)  # the point's own distance, 0, is left out
    to_others = sums / sizes
    to_others[rows, codes] = np.inf
    nearest = to_others.min(axis=1)
    larger = np.maximum(within, nearest)
    scores = np.where(
        (own_sizes > 1) & (larger > 0), (nearest - within) / np.where(larger > 0, larger, 1), 0.0
    )
    return float(scores.mean())


def evaluate_disentanglement(
    bundle: str | os.PathLike[str], data: str | os.PathLike[str], dataset_type: str | None = None
) -> dict[str, Any]:
    """The paper's Figs. 5 and 6 as numbers, for a bundle's motion autoencoder on the clips of ``data``.

    ``data`` is a dataset's path: by default a JSONL manifest (``manifest``), or a folder in the authors'
    layout (``authors-layout``); ``dataset_type`` names another (``paired`` adds the paired corpus's
    checks). The clips are read as the bundle's rig at its frame rate. Returns
    ``disentanglement_scores(...)`` plus ``bundle``, ``data`` and ``dataset_type``.
    """
    from medtalk.core.model.bundle import load_bundle

    bundle, data = Path(bundle), Path(data)
    model, card = load_bundle(bundle)
    pipeline = card.get("pipeline") or {}
    rig = get_registry("rig").get(pipeline.get("rig", card.get("rig", "metahuman-174")))
    fps = float(pipeline.get("fps", card.get("fps", 60.0)))
    if dataset_type is None:
        dataset_type = "authors-layout" if data.is_dir() else "manifest"
    clips = _load_clips(data, dataset_type, rig.name, fps)
    scores = disentanglement_scores(model.motion, clips, rig, where=str(data))
    return {"bundle": str(bundle), "data": str(data), "dataset_type": dataset_type, **scores}


def _load_clips(data: Path, dataset_type: str, rig_name: str, fps: float) -> list[Sample]:
    registry = get_registry("dataset")
    fields = registry.get(dataset_type).Config.model_fields
    config: dict[str, Any] = {"type": dataset_type}
    if "path" in fields:
        config["path"] = str(data)
    elif "root" in fields:
        config["root"] = str(data)
    else:
        raise ConfigError(
            f"dataset type '{dataset_type}' takes neither a path nor a root folder, so DATA cannot name "
            "its data: use manifest, paired or authors-layout"
        )
    config.update({key: value for key, value in (("rig", rig_name), ("fps", fps)) if key in fields})
    if "require" in fields:
        config["require"] = ["rig"]  # the embeddings need the rig alone; audio is not read
    clips = [sample for sample in registry.build(config) if sample.rig is not None]
    for clip in clips:
        if clip.rig_name != rig_name:
            raise InputError(
                f"{data}: clip '{clip.id}' is rig {clip.rig_name}, but the bundle's model animates rig "
                f"{rig_name}: give clips of the model's rig"
            )
    return clips


def disentanglement_scores(
    motion: Any, clips: Sequence[Sample], rig: RigSpec, *, where: str = "the clips"
) -> dict[str, Any]:
    """How well ``motion`` (E_e, E_c and D of a motion autoencoder) separates emotion from content.

    Fig. 5 as numbers: the silhouette of the clips' emotion embeddings and of their content embeddings
    (each the mean over the clip's frames), grouped by emotion label and, where every clip names its
    utterance, by utterance. Disentangled: emotion-by-emotion and content-by-utterance high (towards 1),
    content-by-emotion and emotion-by-utterance low (0 or below).

    Fig. 6 as a number: for pairs of clips (one utterance under two emotions where the data has such,
    else each clip with the next clip of another emotion; cropped to the shorter), each clip is decoded
    with the other's emotion embedding, and the mean absolute change of its lip and of its upper-face
    controls against its own reconstruction is averaged over clips. Disentangled: a small lip change, a
    large upper-face change, so ``upper_over_lip`` well above 1.

    ``where`` names the clips in error messages. Returns ``{"rig", "clips", "emotions", "utterances",
    "silhouette": {"emotion_by_emotion", "content_by_emotion", "content_by_utterance",
    "emotion_by_utterance"}, "swap": {"pairs", "pairing", "lip_change", "upper_change", "upper_over_lip"},
    "reconstruction_mse"}``; a score that cannot be computed is None.
    """
    import numpy as np
    import torch

    from medtalk.core.data.samples import EMOTIONS

    _check_clips(clips, where)
    set_columns = {}
    for set_name in SWAP_SETS:
        set_columns[set_name] = list(rig.sets.get(set_name, ()))
        if not set_columns[set_name]:
            raise ConfigError(
                f"rig '{rig.name}' has no '{set_name}' set, which the emotion swap measures: add it to the "
                "rig (docs/rigs.md)"
            )
    emotions = [clip.emotion for clip in clips]
    utterances = [clip.utterance for clip in clips]

    emotion_means, content_means, reconstruction_errors = [], [], []
    with torch.no_grad():
        for clip in clips:
            values = torch.from_numpy(np.array(clip.rig, dtype=np.float32))[None]
            emotion, content = motion.encode_emotion(values), motion.encode_content(values)
            emotion_means.append(emotion[0].mean(dim=0).double().numpy())
            content_means.append(content[0].mean(dim=0).double().numpy())
            reconstruction = motion.decode(emotion, content)
            reconstruction_errors.append(float(((reconstruction - values) ** 2).mean()))
        pairs, pairing = _swap_pairs(clips)
        changes: dict[str, list[float]] = {set_name: [] for set_name in SWAP_SETS}
        for first, second in pairs:
            frames = min(len(clips[first].rig), len(clips[second].rig))
            values = torch.as_tensor(
                np.stack([clips[first].rig[:frames], clips[second].rig[:frames]]).astype(np.float32)
            )
            emotion, content = motion.encode_emotion(values), motion.encode_content(values)
            # Row 0 decoded with row 1's emotion and the other way round: two swaps per pair.
            change = (motion.decode(emotion.flip(0), content) - motion.decode(emotion, content)).abs()
            for set_name, columns in set_columns.items():
                changes[set_name].extend(change[..., columns].double().mean(dim=(1, 2)).tolist())

    by_utterance = None not in utterances and 2 <= len(set(utterances)) <= len(clips) - 1
    lip_change = math.fsum(changes["lip"]) / len(changes["lip"])
    upper_change = math.fsum(changes["upper"]) / len(changes["upper"])
    return {
        "rig": rig.name,
        "clips": len(clips),
        "emotions": {label: emotions.count(label) for label in EMOTIONS if label in emotions},
        "utterances": len(set(utterances)) if None not in utterances else None,
        "silhouette": {
            "emotion_by_emotion": silhouette_score(np.stack(emotion_means), emotions),
            "content_by_emotion": silhouette_score(np.stack(content_means), emotions),
            "content_by_utterance": silhouette_score(np.stack(content_means), utterances)
            if by_utterance
            else None,
            "emotion_by_utterance": silhouette_score(np.stack(emotion_means), utterances)
            if by_utterance
            else None,
        },
        "swap": {
            "pairs": len(pairs),
            "pairing": pairing,
            "lip_change": lip_change,
            "upper_change": upper_change,
            "upper_over_lip": upper_change / lip_change if lip_change > 0 else None,
        },
        "reconstruction_mse": math.fsum(reconstruction_errors) / len(reconstruction_errors),
    }


def _check_clips(clips: Sequence[Sample], where: str) -> None:
    """Every clip needs an emotion label and frames; the labels must form groups a silhouette can score."""
    if not clips:
        raise InputError(f"{where}: has no clip with a rig: give clips with rig files")
    for clip in clips:
        if clip.emotion is None:
            raise InputError(
                f"{where}: clip '{clip.id}' has no emotion label, and the scores group clips by emotion: "
                "label every clip"
            )
        if not len(clip.rig):
            raise InputError(
                f"{where}: clip '{clip.id}' has no frames: give it a rig with frames, or drop it"
            )
    labels = sorted({clip.emotion for clip in clips})
    if len(labels) < 2:
        raise InputError(
            f"{where}: every clip is '{labels[0]}', but the scores compare emotions: give clips of at least "
            "two emotions"
        )
    if len(labels) == len(clips):
        raise InputError(
            f"{where}: {len(clips)} clips, each of another emotion, but the silhouette needs two clips of "
            "one emotion at least: give more clips"
        )


def _swap_pairs(clips: Sequence[Sample]) -> tuple[list[tuple[int, int]], str]:
    """Pairs of clip indices whose emotion embeddings are swapped, and how they were chosen."""
    from itertools import combinations

    by_utterance: dict[str, list[int]] = {}
    for index, clip in enumerate(clips):
        if clip.utterance is not None:
            by_utterance.setdefault(clip.utterance, []).append(index)
    pairs = [
        (first, second)
        for members in by_utterance.values()
        for first, second in combinations(members, 2)
        if clips[first].emotion != clips[second].emotion
    ]
    if pairs:
        return pairs, "same utterance, different emotions"
    # No utterance under two emotions: each clip with the next clip (in the data's order, wrapping round)
    # of another emotion, each pair once.
    chosen: dict[tuple[int, int], None] = {}
    for index, clip in enumerate(clips):
        for step in range(1, len(clips)):
            other = (index + step) % len(clips)
            if clips[other].emotion != clip.emotion:
                chosen[(min(index, other), max(index, other))] = None
                break
    return list(chosen), "different utterances, different emotions"
