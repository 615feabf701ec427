"""Built-in metrics (MEDTalk eqs. 15-18, MSE, lip-max) and the ``medtalk eval`` command.

Every metric compares two sequences of one rig, frame for frame, and averages over frames (and over
controls where the paper writes a norm), so a value does not grow with the clip's length or the size
of an index set: a 3 s clip and a 30 s clip of the same quality score alike, and so do rigs with
different set sizes. The definitions, units and good values are in docs/eval.md.

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
        columns = _set_columns(self, rig, "intensity")
        predicted, truth = _paired_values(self, pred, gt, rig)
        # Eq. 8 as the paper writes it: no 0.1 factor, which only the training loss L_int uses.
        predicted_intensity = abs(predicted[:, columns]).sum(axis=1) * self.config.scale
        true_intensity = abs(truth[:, columns]).sum(axis=1) * self.config.scale
        return float(abs(predicted_intensity - true_intensity).mean())


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


@hookimpl
def register_metrics(register):
    for metric in (
        MeanLipError,
        MeanEmotionError,
        EmotionIntensityError,
        UpperFaceRigDeviation,
        MeanSquaredError,
        LipMaxError,
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


@hookimpl
def register_commands(app) -> None:
    import typer

    @app.command("eval")
    def eval_command(
        pred: Annotated[
            Path,
            typer.Argument(metavar="PRED", help="The predicted sequence (txt, csv, json, livelink ...)."),
        ],
        gt: Annotated[Path, typer.Argument(metavar="GT", help="The ground-truth sequence, on any rig.")],
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
    ) -> None:
        """Score a predicted rig sequence against its ground truth (MLE, MEE, EIE, FRD, ...)."""
        from medtalk.cli import console
        from medtalk.core.evaluation import build_metrics, evaluate
        from medtalk.core.retarget import load_mapping

        # Everything that can be checked without the sequences is checked before reading them.
        names = parse_metric_list(metrics) if metrics is not None else None
        build_metrics(names)
        rig_mapping = load_mapping(mapping) if mapping is not None else None
        predicted = _read_for_eval(pred, pred_rig, pred_fps, "pred")
        truth = _read_for_eval(gt, gt_rig, gt_fps, "gt")
        result = evaluate(predicted, truth, names, rig_mapping, labels=(str(pred), str(gt)))
        if as_json:
            import json

            typer.echo(json.dumps(result, indent=2))
            return
        from rich.table import Table

        out = console()
        out.print(
            f"{pred} against {gt}: {result['frames']} frames at {result['fps']:g} fps, rig {result['rig']}",
            markup=False,
        )
        if result["retargeted_from"] is not None:
            through = "the built-in mapping" if mapping is None else "the mapping"
            out.print(
                f"{pred} was retargeted from {result['retargeted_from']} to {result['rig']} "
                f"through {through} {result['mapping']}",
                markup=False,
            )
        for path, count in ((pred, result["pred_frames"]), (gt, result["gt_frames"])):
            if count > result["frames"]:
                out.print(f"{path} has one frame more: its last frame was left out", markup=False)
        table = Table("metric", "value", "better")
        for name, value in result["metrics"].items():
            table.add_row(name, f"{value:.6g}", result["better"][name])
        out.print(table)
