"""Built-in metrics (MEDTalk eqs. 15-18, their squared variants, MSE, lip-max, jitter) and ``medtalk eval``.

Every metric compares two sequences of one rig, frame for frame, and averages over frames (and over
controls where the paper writes a norm), so a value does not grow with the clip's length or the size
of an index set: a 3 s clip and a 30 s clip of the same quality score alike, and so do rigs with
different set sizes. Jitter describes the prediction alone; ``evaluate`` also reports the ground
truth's own jitter beside it. The definitions, units and good values are in docs/eval.md.

numpy is imported inside the functions: plugin modules load whenever the CLI starts. No
``from __future__ import annotations`` here: Typer reads the command's options from its annotations,
which must be evaluated inside the hook, where ``typer`` is imported.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ClassVar

from pydantic import Field

from medtalk import hookimpl
from medtalk.core.components import ComponentConfig, Metric
from medtalk.core.errors import ConfigError, InputError

if TYPE_CHECKING:
    import numpy as np

    from medtalk.core.rig import RigSpec
    from medtalk.core.sequence import RigSequence


def _paired_values(
    metric: Metric, pred: "RigSequence", gt: "RigSequence", rig: "RigSpec"
) -> "tuple[np.ndarray, np.ndarray]":
    """Both sequences' values as float64 (frames x controls), after checking they can be compared."""
    import numpy as np

    pred.check_rig(rig)
    gt.check_rig(rig)
    if pred.num_frames != gt.num_frames:
        raise InputError(
            f"metric '{metric.name}' compares frame by frame, but the prediction has {pred.num_frames} "
            f"frames and the ground truth {gt.num_frames}: trim them to one length "
            "(medtalk.core.evaluation.evaluate does)"
        )
    if pred.num_frames == 0:
        raise InputError(f"metric '{metric.name}' needs at least one frame: give non-empty sequences")
    return pred.values.astype(np.float64), gt.values.astype(np.float64)


def _set_columns(metric: Metric, rig: "RigSpec", set_name: str) -> list[int]:
    """The columns of index set ``set_name``; a rig without it (or with it empty) is a one-line error."""
    columns = list(rig.sets.get(set_name, ()))
    if not columns:
        problem = "an empty" if set_name in rig.sets else "no"
        raise ConfigError(
            f"metric '{metric.name}' needs the index set '{set_name}', but rig '{rig.name}' has {problem} "
            f"'{set_name}' set: add it to the rig (docs/rigs.md), or leave {metric.name} out with --metrics"
        )
    return columns


def _mean_absolute_error(
    metric: Metric, pred: "RigSequence", gt: "RigSequence", rig: "RigSpec", set_name: str
) -> float:
    columns = _set_columns(metric, rig, set_name)
    predicted, truth = _paired_values(metric, pred, gt, rig)
    return float(abs(predicted[:, columns] - truth[:, columns]).mean())


def _mean_squared_error(
    metric: Metric, pred: "RigSequence", gt: "RigSequence", rig: "RigSpec", set_name: str
) -> float:
    columns = _set_columns(metric, rig, set_name)
    predicted, truth = _paired_values(metric, pred, gt, rig)
    return float(((predicted[:, columns] - truth[:, columns]) ** 2).mean())


def _intensity_errors(metric: Metric, pred: "RigSequence", gt: "RigSequence", rig: "RigSpec") -> "np.ndarray":
    """Per frame, Int(prediction) - Int(ground truth), with Int the (scaled) L1 norm of S_int (eq. 8)."""
    columns = _set_columns(metric, rig, "intensity")
    predicted, truth = _paired_values(metric, pred, gt, rig)
    # Eq. 8 as the paper writes it: no 0.1 factor, which only the training loss L_int uses.
    predicted_intensity = abs(predicted[:, columns]).sum(axis=1) * metric.config.scale
    true_intensity = abs(truth[:, columns]).sum(axis=1) * metric.config.scale
    return predicted_intensity - true_intensity


class MeanLipError(Metric):
    """MLE (MEDTalk eq. 15): mean absolute error of the lip controls (S_lip) over frames and controls."""

    name = "mle"
    lower_is_better = True

    def __call__(self, pred: "RigSequence", gt: "RigSequence", rig: "RigSpec") -> float:
        return _mean_absolute_error(self, pred, gt, rig, "lip")


class MeanEmotionError(Metric):
    """MEE (MEDTalk eq. 16): mean absolute error of the emotion controls (S_emo) over frames and controls."""

    name = "mee"
    lower_is_better = True

    def __call__(self, pred: "RigSequence", gt: "RigSequence", rig: "RigSpec") -> float:
        return _mean_absolute_error(self, pred, gt, rig, "emotion")


class EmotionIntensityConfig(ComponentConfig):
    scale: float = Field(
        default=1.0,
        gt=0,
        description=(
            "Factor on the intensity of eq. 8 (the L1 norm of the S_int controls); 0.1 gives the units the "
            "model's intensity predictor is trained in, and scales EIE by 0.1"
        ),
    )


class EmotionIntensityError(Metric):
    """EIE (MEDTalk eq. 17): mean absolute error per frame of the intensity of eq. 8 (L1 norm of S_int)."""

    name = "eie"
    lower_is_better = True
    Config = EmotionIntensityConfig

    def __call__(self, pred: "RigSequence", gt: "RigSequence", rig: "RigSpec") -> float:
        return float(abs(_intensity_errors(self, pred, gt, rig)).mean())


class UpperFaceRigDeviation(Metric):
    """FRD (MEDTalk eq. 18): mean over S_up of std(ground truth) - std(prediction); > 0 is too flat."""

    name = "frd"
    # The paper's arrow. The value is signed (< 0: more varied than the ground truth), so its ideal is
    # 0, which `medtalk eval` shows as "closer to 0".
    lower_is_better = True
    zero_is_best: ClassVar[bool] = True

    def __call__(self, pred: "RigSequence", gt: "RigSequence", rig: "RigSpec") -> float:
        columns = _set_columns(self, rig, "upper")
        predicted, truth = _paired_values(self, pred, gt, rig)
        # Population std (ddof=0): defined for one frame; ddof=1 would scale both terms alike.
        return float((truth[:, columns].std(axis=0) - predicted[:, columns].std(axis=0)).mean())


class MeanSquaredError(Metric):
    """MSE over every control and frame: the reconstruction loss the model is trained with."""

    name = "mse"
    lower_is_better = True

    def __call__(self, pred: "RigSequence", gt: "RigSequence", rig: "RigSpec") -> float:
        predicted, truth = _paired_values(self, pred, gt, rig)
        return float(((predicted - truth) ** 2).mean())


class LipMaxError(Metric):
    """Lip-max: the largest absolute error among the lip controls (S_lip) per frame, averaged over frames."""

    name = "lip-max"
    lower_is_better = True

    def __call__(self, pred: "RigSequence", gt: "RigSequence", rig: "RigSpec") -> float:
        columns = _set_columns(self, rig, "lip")
        predicted, truth = _paired_values(self, pred, gt, rig)
        # The rig-control analogue of lip vertex error: the worst lip control decides each frame.
        return float(abs(predicted[:, columns] - truth[:, columns]).max(axis=1).mean())


# The squared variants: the paper says "l1 error", but its magnitudes (MLE 0.006 for every model, below
# what 150 ms of smoothing costs the real clip in l1) fit squared errors better; docs/eval.md compares.


class MeanLipSquaredError(Metric):
    """MLE-MSE: mean squared error of the lip controls (S_lip) over frames and controls."""

    name = "mle-mse"
    lower_is_better = True

    def __call__(self, pred: "RigSequence", gt: "RigSequence", rig: "RigSpec") -> float:
        return _mean_squared_error(self, pred, gt, rig, "lip")


class MeanEmotionSquaredError(Metric):
    """MEE-MSE: mean squared error of the emotion controls (S_emo) over frames and controls."""

    name = "mee-mse"
    lower_is_better = True

    def __call__(self, pred: "RigSequence", gt: "RigSequence", rig: "RigSpec") -> float:
        return _mean_squared_error(self, pred, gt, rig, "emotion")


class EmotionIntensitySquaredError(Metric):
    """EIE-MSE: mean squared error per frame of the intensity of eq. 8 (L1 norm of S_int)."""

    name = "eie-mse"
    lower_is_better = True
    Config = EmotionIntensityConfig

    def __call__(self, pred: "RigSequence", gt: "RigSequence", rig: "RigSpec") -> float:
        return float((_intensity_errors(self, pred, gt, rig) ** 2).mean())


class LipJitter(Metric):
    """Jitter: the prediction's mean absolute second difference over time of the lip controls (S_lip)."""

    name = "jitter"
    # Less shaking is better, but a static face scores 0: read it beside the ground truth's own jitter,
    # which evaluate() reports because this metric describes the prediction alone.
    lower_is_better = True
    scores_prediction_alone: ClassVar[bool] = True
    MIN_FRAMES: ClassVar[int] = 3  # a second difference needs a frame on either side

    def __call__(self, pred: "RigSequence", gt: "RigSequence", rig: "RigSpec") -> float:
        import numpy as np

        columns = _set_columns(self, rig, "lip")
        predicted, _ = _paired_values(self, pred, gt, rig)
        if len(predicted) < self.MIN_FRAMES:
            raise InputError(
                f"metric 'jitter' takes second differences over time, so it needs at least "
                f"{self.MIN_FRAMES} frames, but the sequences have {len(predicted)}: give longer sequences, "
                "or leave jitter out with --metrics"
            )
        # r[t+1] - 2 r[t] + r[t-1]: 0 for a still or steadily moving control, large where it shakes.
        return float(abs(np.diff(predicted[:, columns], n=2, axis=0)).mean())


@hookimpl
def register_metrics(register):
    for metric in (
        MeanLipError,
        MeanEmotionError,
        EmotionIntensityError,
        UpperFaceRigDeviation,
        MeanSquaredError,
        LipMaxError,
        MeanLipSquaredError,
        MeanEmotionSquaredError,
        EmotionIntensitySquaredError,
        LipJitter,
    ):
        register(metric)


def _read_for_eval(path: Path, rig: str | None, fps: float | None, side: str) -> "RigSequence":
    """Read PRED or GT (``side``), passing --pred-rig/--pred-fps (or --gt-...) to a format that takes them."""
    from medtalk.core.fileio import check_readable, format_for, read_sequence
    from medtalk.core.plugins import get_registry

    check_readable(path)
    importer_name = format_for("importer", path)
    options = {key: value for key, value in (("rig", rig), ("fps", fps)) if value is not None}
    accepted = get_registry("importer").get(importer_name).Config.model_fields
    for key in options:
        if key not in accepted:
            raise ConfigError(
                f"--{side}-{key} does not apply to {path} ({importer_name} format): "
                "the file states it; drop the option"
            )
    return read_sequence(path, importer_name, options)


def parse_metric_list(text: str) -> list[str]:
    """``"mle, mee"`` -> ``["mle", "mee"]``; a list naming nothing is a one-line error."""
    from medtalk.core.evaluation import metric_names

    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ConfigError(
            f"--metrics names no metric: give a comma-separated list of {', '.join(metric_names())}"
        )
    return names


# Options of the scoring mode, refused with --disentanglement (which reads a bundle and a dataset).
SCORING_OPTIONS = ("--metrics", "--mapping", "--pred-rig", "--gt-rig", "--pred-fps", "--gt-fps")

# The disentanglement scores in the table, with the value that means disentangled.
DISENTANGLEMENT_ROWS = (
    ("silhouette", "emotion_by_emotion", "silhouette: emotion embeddings by emotion", "high (up to 1)"),
    ("silhouette", "content_by_emotion", "silhouette: content embeddings by emotion", "low (0 or below)"),
    ("silhouette", "content_by_utterance", "silhouette: content embeddings by utterance", "high (up to 1)"),
    ("silhouette", "emotion_by_utterance", "silhouette: emotion embeddings by utterance", "low (0 or below)"),
    ("swap", "lip_change", "emotion swap: lip change", "small"),
    ("swap", "upper_change", "emotion swap: upper-face change", "large"),
    ("swap", "upper_over_lip", "emotion swap: upper-face / lip change", "well above 1"),
    (None, "reconstruction_mse", "reconstruction mse", "small"),
)


@hookimpl
def register_commands(app) -> None:
    import typer

    @app.command("eval")
    def eval_command(
        pred: Annotated[
            Path,
            typer.Argument(
                metavar="PRED",
                help="The predicted sequence (txt, csv, json, livelink ...), or a folder of them; "
                "with --disentanglement, the BUNDLE.",
            ),
        ],
        gt: Annotated[
            Path,
            typer.Argument(
                metavar="GT",
                help="The ground-truth sequence (any rig), or a folder with files of the same names; "
                "with --disentanglement, the DATA (a JSONL manifest, or a folder in the authors' layout).",
            ),
        ],
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        metrics: Annotated[
            str | None,
            typer.Option(
                metavar="LIST", help="Comma-separated metrics (default: all; see docs/eval.md), e.g. mle,mee."
            ),
        ] = None,
        mapping: Annotated[
            Path | None,
            typer.Option(
                metavar="FILE", help="Retarget PRED to GT's rig through this mapping (docs/retargeting.md)."
            ),
        ] = None,
        pred_rig: Annotated[
            str | None, typer.Option(metavar="NAME", help="Rig of PRED's columns (txt, csv).")
        ] = None,
        gt_rig: Annotated[
            str | None, typer.Option(metavar="NAME", help="Rig of GT's columns (txt, csv).")
        ] = None,
        pred_fps: Annotated[
            float | None, typer.Option(metavar="F", help="Frame rate of PRED (txt, csv: default 60).")
        ] = None,
        gt_fps: Annotated[
            float | None,
            typer.Option(metavar="F", help="Frame rate of GT (txt, csv: default 60; livelink: resample)."),
        ] = None,
        disentanglement: Annotated[
            bool,
            typer.Option(
                "--disentanglement",
                help="Score the motion autoencoder of the bundle PRED on the clips of GT instead: "
                "the paper's Figs. 5 and 6 as numbers (docs/eval.md).",
            ),
        ] = False,
        dataset_type: Annotated[
            str | None,
            typer.Option(
                metavar="NAME",
                help="With --disentanglement: the dataset type of DATA (default: manifest for a file, "
                "authors-layout for a folder; paired adds the paired corpus's checks).",
            ),
        ] = None,
    ) -> None:
        """Score predicted rig sequences against their ground truth (MLE, MEE, EIE, FRD, ...), or a bundle's
        disentanglement (--disentanglement)."""
        given = (metrics, mapping, pred_rig, gt_rig, pred_fps, gt_fps)
        if disentanglement:
            for option, value in zip(SCORING_OPTIONS, given, strict=True):
                if value is not None:
                    raise ConfigError(f"{option} does not apply to --disentanglement: drop it")
            _print_disentanglement(pred, gt, dataset_type, as_json)
            return
        if dataset_type is not None:
            raise ConfigError("--dataset-type applies only with --disentanglement: drop it, or add that flag")

        from medtalk.core.evaluation import build_metrics
        from medtalk.core.retarget import load_mapping

        # Everything that can be checked without the sequences is checked before reading them.
        names = parse_metric_list(metrics) if metrics is not None else None
        build_metrics(names)
        rig_mapping = load_mapping(mapping) if mapping is not None else None
        if pred.is_dir() or gt.is_dir():
            if not (pred.is_dir() and gt.is_dir()):
                folder, other = (pred, gt) if pred.is_dir() else (gt, pred)
                if not other.exists():
                    raise InputError(f"{other}: no such folder: check the path")
                raise InputError(
                    f"{folder} is a folder but {other} is not: give two files, or two folders whose files "
                    "are matched by name"
                )
            options = {"pred": (pred_rig, pred_fps), "gt": (gt_rig, gt_fps)}
            _print_folders(
                pred,
                gt,
                names,
                rig_mapping,
                lambda path, side: _read_for_eval(path, *options[side], side),
                as_json,
                mapping is not None,
            )
            return
        _print_pair(
            pred,
            gt,
            names,
            rig_mapping,
            _read_for_eval(pred, pred_rig, pred_fps, "pred"),
            _read_for_eval(gt, gt_rig, gt_fps, "gt"),
            as_json,
            mapping is not None,
        )


def _print_json(value) -> None:
    import json

    import typer

    typer.echo(json.dumps(value, indent=2))


def _print_notes(out, result: dict, pred: Path, gt: Path, mapping_given: bool) -> None:
    """What was done to make the pair comparable: retargeting, a last frame left out."""
    if result["retargeted_from"] is not None:
        through = "the mapping" if mapping_given else "the built-in mapping"
        out.print(
            f"{pred} was retargeted from {result['retargeted_from']} to {result['rig']} "
            f"through {through} {result['mapping']}",
            markup=False,
        )
    for path, count in ((pred, result["pred_frames"]), (gt, result["gt_frames"])):
        if count > result["frames"]:
            out.print(f"{path} has one frame more: its last frame was left out", markup=False)


def _print_pair(pred, gt, names, rig_mapping, predicted, truth, as_json: bool, mapping_given: bool) -> None:
    from rich.table import Table

    from medtalk.cli import console
    from medtalk.core.evaluation import evaluate

    result = evaluate(predicted, truth, names, rig_mapping, labels=(str(pred), str(gt)))
    if as_json:
        _print_json(result)
        return
    out = console()
    out.print(
        f"{pred} against {gt}: {result['frames']} frames at {result['fps']:g} fps, rig {result['rig']}",
        markup=False,
    )
    _print_notes(out, result, pred, gt, mapping_given)
    reference = result["reference"]
    table = Table("metric", "value", "better", *(["ground truth"] if reference else []))
    for name, value in result["metrics"].items():
        own = [f"{reference[name]:.6g}" if name in reference else ""] if reference else []
        table.add_row(name, f"{value:.6g}", result["better"][name], *own)
    out.print(table)


def _print_folders(pred, gt, names, rig_mapping, read, as_json: bool, mapping_given: bool) -> None:
    from rich.table import Table

    from medtalk.cli import console
    from medtalk.core.evaluation import evaluate_folders

    result = evaluate_folders(pred, gt, names, rig_mapping, read=read)
    if as_json:
        _print_json(result)
        return
    out = console()
    files = result["files"]
    pairs = "1 pair" if len(files) == 1 else f"{len(files)} pairs"
    out.print(f"{pred} against {gt}: {pairs} of files matched by name", markup=False)
    for entry in files:
        _print_notes(out, entry, Path(entry["pred"]), Path(entry["gt"]), mapping_given)
    metric_list, reference_list = list(result["mean"]["metrics"]), list(result["mean"]["reference"])
    table = Table("file", "frames", *metric_list, *(f"{name} (ground truth)" for name in reference_list))
    for entry in files:
        table.add_row(
            entry["name"],
            str(entry["frames"]),
            *(f"{entry['metrics'][name]:.6g}" for name in metric_list),
            *(f"{entry['reference'][name]:.6g}" for name in reference_list),
        )
    table.add_section()
    table.add_row(
        "mean",
        "",
        *(f"{result['mean']['metrics'][name]:.6g}" for name in metric_list),
        *(f"{result['mean']['reference'][name]:.6g}" for name in reference_list),
    )
    out.print(table)
    directions: dict[str, list[str]] = {}
    for name, direction in result["better"].items():
        directions.setdefault(direction, []).append(name)
    listed = "; ".join(f"{direction} for {', '.join(group)}" for direction, group in directions.items())
    out.print(f"better: {listed}", markup=False)


def _print_disentanglement(bundle: Path, data: Path, dataset_type, as_json: bool) -> None:
    from rich.table import Table

    from medtalk.cli import console
    from medtalk.core.evaluation import evaluate_disentanglement

    result = evaluate_disentanglement(bundle, data, dataset_type)
    if as_json:
        _print_json(result)
        return
    out = console()
    emotions = ", ".join(f"{label} {count}" for label, count in result["emotions"].items())
    utterances = "" if result["utterances"] is None else f", {result['utterances']} utterances"
    out.print(
        f"{bundle} on {data}: {result['clips']} clips ({emotions}){utterances}, rig {result['rig']}",
        markup=False,
    )
    table = Table("score", "value", "disentangled")
    for group, key, label, disentangled in DISENTANGLEMENT_ROWS:
        value = result[group][key] if group is not None else result[key]
        table.add_row(label, "n/a" if value is None else f"{value:.4g}", disentangled)
    out.print(table)
    swap = result["swap"]
    pairs = "1 pair" if swap["pairs"] == 1 else f"{swap['pairs']} pairs"
    out.print(f"emotion swap: {pairs} of clips ({swap['pairing']})", markup=False)
