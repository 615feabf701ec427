"""Metrics (MEDTalk eqs. 15-18, squared variants, MSE, lip-max, jitter) with known answers; `medtalk eval`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from medtalk import hookimpl
from medtalk.cli import run_cli
from medtalk.core.errors import ConfigError, InputError, MedtalkWarning, UnknownComponentError
from medtalk.core.evaluation import build_metrics, evaluate, evaluate_folders, metric_names
from medtalk.core.fileio import read_sequence, write_sequence
from medtalk.core.plugins import build, get_registry
from medtalk.core.retarget import retarget
from medtalk.core.rig import RigSpec
from medtalk.core.sequence import RigSequence

DOCS = Path(__file__).resolve().parents[1] / "docs" / "eval.md"
METRICS = ["mle", "mee", "eie", "frd", "mle-mse", "mee-mse", "eie-mse", "jitter", "lip-max", "mse"]
# Every metric but jitter compares the prediction with the ground truth: 0 for a perfect copy.
ERRORS = [name for name in METRICS if name != "jitter"]
VALID_NAMES = "eie, eie-mse, frd, jitter, lip-max, mee, mee-mse, mle, mle-mse, mse"
FRAMES = 10
# float32 storage of values near 0.5 and offsets of 0.1: errors of a few 1e-8 per value.
TOLERANCE = 1e-6


@pytest.fixture
def rig() -> RigSpec:
    return get_registry("rig").get("metahuman-174")


def sequence(values: np.ndarray, rig: str = "metahuman-174", fps: float = 60.0) -> RigSequence:
    return RigSequence(values, fps=fps, rig=rig)


def constant(value: float = 0.5, frames: int = FRAMES, controls: int = 174) -> np.ndarray:
    return np.full((frames, controls), value)


def offset_on(set_name: str, rig: RigSpec, amount: float = 0.1) -> np.ndarray:
    values = constant()
    values[:, list(rig.sets[set_name])] += amount
    return values


def score(name: str, pred: np.ndarray, gt: np.ndarray, rig_name: str = "metahuman-174") -> float:
    rig = get_registry("rig").get(rig_name)
    return build("metric", name)(sequence(pred, rig_name), sequence(gt, rig_name), rig)


@pytest.fixture
def real(real_txt) -> RigSequence:
    return read_sequence(real_txt)


def moving_average(clip: RigSequence, window: int = 9) -> RigSequence:
    padded = np.pad(clip.values.astype(np.float64), ((window // 2, window // 2), (0, 0)), mode="edge")
    kernel = np.ones(window) / window
    smoothed = np.stack(
        [np.convolve(padded[:, c], kernel, mode="valid") for c in range(clip.num_controls)], 1
    )
    return sequence(smoothed)


def shifted(clip: RigSequence, frames: int = 3) -> RigSequence:
    """The clip ``frames`` late: the first frame held, the last ones dropped."""
    values = np.concatenate([np.repeat(clip.values[:1], frames, axis=0), clip.values[:-frames]])
    return sequence(values)


# --- registration -------------------------------------------------------------------------------


def test_the_built_in_metrics_are_registered_with_the_papers_four_first_then_their_squared_variants():
    assert metric_names() == METRICS


def test_every_metric_is_lower_is_better_and_frd_is_best_at_zero():
    metrics = build_metrics()
    assert {name: metric.lower_is_better for name, metric in metrics.items()} == dict.fromkeys(METRICS, True)
    assert [name for name, metric in metrics.items() if getattr(metric, "zero_is_best", False)] == ["frd"]


def test_every_built_in_metric_is_documented():
    headings = re.findall(r"^## `([\w-]+)`", DOCS.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert headings == METRICS


def test_loading_the_metrics_and_the_eval_command_imports_no_numpy():
    code = (
        "import sys, medtalk.cli as cli;"
        "from medtalk.core.plugins import get_plugin_manager, get_registry;"
        "cli.build_app(get_plugin_manager()); get_registry('metric');"
        "print('medtalk.plugins.metrics' in sys.modules, 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False"]


# --- known answers ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ERRORS)
def test_identical_sequences_score_zero(name):
    values = np.random.default_rng(0).uniform(-1, 1, (FRAMES, 174))
    assert score(name, values, values) == 0.0


def test_an_offset_on_the_lip_controls_only(rig):
    pred, gt = offset_on("lip", rig), constant()
    assert score("mle", pred, gt) == pytest.approx(0.1, abs=TOLERANCE)
    assert score("mee", pred, gt) == 0.0
    assert score("lip-max", pred, gt) == pytest.approx(0.1, abs=TOLERANCE)
    # Two of S_int's 14 controls are the mouth-corner pulls, which belong to S_lip: 2 x 0.1 per frame.
    assert score("eie", pred, gt) == pytest.approx(0.2, abs=TOLERANCE)
    assert score("frd", pred, gt) == pytest.approx(0.0, abs=TOLERANCE)  # an offset keeps every std
    assert score("mse", pred, gt) == pytest.approx(0.01 * 102 / 174, abs=TOLERANCE)


def test_an_offset_on_the_emotion_controls_only(rig):
    pred, gt = offset_on("emotion", rig), constant()
    assert score("mee", pred, gt) == pytest.approx(0.1, abs=TOLERANCE)
    assert score("mle", pred, gt) == 0.0
    assert score("lip-max", pred, gt) == 0.0
    # The other 12 controls of S_int are in S_emo: brows, blinks, inner squints.
    assert score("eie", pred, gt) == pytest.approx(1.2, abs=TOLERANCE)
    assert score("mse", pred, gt) == pytest.approx(0.01 * 40 / 174, abs=TOLERANCE)


def test_eie_scale_multiplies_the_intensity(rig):
    pred, gt = sequence(offset_on("lip", rig)), sequence(constant())
    scaled = build("metric", {"type": "eie", "scale": 0.1})(pred, gt, rig)
    assert scaled == pytest.approx(0.02, abs=TOLERANCE)


def test_eie_compares_intensities_not_values(rig):
    # Eq. 8 is the L1 norm of the S_int controls: a sign flip keeps the intensity (EIE 0), not the values.
    columns = list(rig.sets["intensity"])
    gt = constant()
    pred = gt.copy()
    pred[:, columns] = -0.5
    assert score("eie", pred, gt) == 0.0
    assert score("mee", pred, gt) == pytest.approx(12 / 40, abs=TOLERANCE)


def test_errors_are_averaged_over_frames_so_clip_length_does_not_matter(rig):
    brow = rig.sets["intensity"][0]
    for frames, wrong_frames in ((10, [4]), (40, [3, 17, 22, 39])):
        gt = constant(frames=frames)
        pred = gt.copy()
        pred[wrong_frames, brow] += 0.3
        assert score("eie", pred, gt) == pytest.approx(0.03, abs=TOLERANCE)
        assert score("mee", pred, gt) == pytest.approx(0.03 / 40, abs=TOLERANCE)


def test_lip_max_takes_the_worst_lip_control_of_each_frame(rig):
    gt = constant()
    pred = gt.copy()
    lip = list(rig.sets["lip"])
    pred[2, lip[0]] += 0.5
    pred[2, lip[1]] += 0.2  # not the worst of its frame: lip-max ignores it
    assert score("lip-max", pred, gt) == pytest.approx(0.5 / FRAMES, abs=TOLERANCE)
    assert score("mle", pred, gt) == pytest.approx(0.7 / (FRAMES * 102), abs=TOLERANCE)


# --- squared variants and jitter: hand-computed values -----------------------------------------------


def test_the_squared_variants_square_a_uniform_offset(rig):
    lip_off, emotion_off, gt = offset_on("lip", rig), offset_on("emotion", rig), constant()
    assert score("mle-mse", lip_off, gt) == pytest.approx(0.01, abs=TOLERANCE)
    assert score("mee-mse", lip_off, gt) == 0.0
    assert score("mee-mse", emotion_off, gt) == pytest.approx(0.01, abs=TOLERANCE)
    assert score("mle-mse", emotion_off, gt) == 0.0
    # Intensity per frame: 0.2 higher with the lip offset (2 corner pulls), 1.2 with the emotion one (12).
    assert score("eie-mse", lip_off, gt) == pytest.approx(0.2**2, abs=TOLERANCE)
    assert score("eie-mse", emotion_off, gt) == pytest.approx(1.2**2, abs=TOLERANCE)


def test_the_squared_variants_weigh_one_large_error_more_than_many_small_ones(rig):
    lip = list(rig.sets["lip"])
    brow = rig.sets["intensity"][0]
    gt = constant()
    pred = gt.copy()
    pred[3, lip[0]] += 0.4  # one lip control, one frame of 10
    pred[3, brow] -= 0.3  # one intensity control, the same frame
    assert score("mle", pred, gt) == pytest.approx(0.4 / (FRAMES * 102), abs=TOLERANCE)
    assert score("mle-mse", pred, gt) == pytest.approx(0.16 / (FRAMES * 102), abs=TOLERANCE)
    assert score("mee-mse", pred, gt) == pytest.approx(0.09 / (FRAMES * 40), abs=TOLERANCE)
    assert score("eie", pred, gt) == pytest.approx(0.3 / FRAMES, abs=TOLERANCE)
    assert score("eie-mse", pred, gt) == pytest.approx(0.09 / FRAMES, abs=TOLERANCE)


def test_eie_mse_takes_the_scale_of_eie_squared(rig):
    pred, gt = sequence(offset_on("emotion", rig)), sequence(constant())
    scaled = build("metric", {"type": "eie-mse", "scale": 0.1})(pred, gt, rig)
    assert scaled == pytest.approx(0.12**2, abs=TOLERANCE)


def test_jitter_is_the_mean_absolute_second_difference_of_the_predictions_lip_controls(rig):
    lip = list(rig.sets["lip"])
    pred = constant()
    pred[0::2, lip[0]], pred[1::2, lip[0]] = 0.5, 0.6  # |0.5 - 2 x 0.6 + 0.5| = 0.2 on each inner frame
    assert score("jitter", pred, constant()) == pytest.approx(0.2 / 102, abs=TOLERANCE)
    # The ground truth plays no part: the same prediction against a shaking ground truth.
    assert score("jitter", pred, pred) == pytest.approx(0.2 / 102, abs=TOLERANCE)


def test_jitter_is_zero_for_a_steady_motion_and_ignores_the_upper_face(rig):
    ramp = constant()
    ramp[:, list(rig.sets["lip"])] = np.linspace(0, 0.9, FRAMES)[:, None]  # constant speed: no shaking
    assert score("jitter", ramp, constant()) == pytest.approx(0.0, abs=TOLERANCE)
    shaking_brows = constant()
    shaking_brows[0::2, list(rig.sets["upper"])] = 0.9
    assert score("jitter", shaking_brows, constant()) == 0.0


def test_jitter_counts_each_inner_frame_once(rig):
    lip = list(rig.sets["lip"])
    pred = constant()
    pred[4, lip[0]] = 0.8  # a one-frame spike of 0.3: second differences 0.3, 0.6, 0.3 on frames 3 to 5
    assert score("jitter", pred, constant()) == pytest.approx(1.2 / ((FRAMES - 2) * 102), abs=TOLERANCE)


def test_jitter_refuses_fewer_than_three_frames(rig):
    two = sequence(constant(frames=2))
    with pytest.raises(InputError) as error:
        build("metric", "jitter")(two, two, rig)
    assert str(error.value) == (
        "metric 'jitter' takes second differences over time, so it needs at least 3 frames, but the "
        "sequences have 2: give longer sequences, or leave jitter out with --metrics"
    )


def test_jitter_is_the_only_metric_with_a_ground_truth_reference(real):
    shaky = sequence(real.values + np.random.default_rng(1).normal(0, 0.01, real.values.shape))
    result = evaluate(shaky, real)
    assert list(result["reference"]) == ["jitter"]
    assert result["metrics"]["jitter"] > 3 * result["reference"]["jitter"]


def test_frd_is_positive_for_a_flattened_prediction_and_negative_for_an_exaggerated_one(rig):
    upper = list(rig.sets["upper"])
    gt = constant()
    gt[0::2, upper], gt[1::2, upper] = 0.2, 0.8  # std 0.3 on every upper control
    flat = constant()
    exaggerated = gt.copy()
    exaggerated[0::2, upper], exaggerated[1::2, upper] = 0.0, 1.0  # std 0.5
    assert score("frd", flat, gt) == pytest.approx(0.3, abs=TOLERANCE)
    assert score("frd", exaggerated, gt) == pytest.approx(-0.2, abs=TOLERANCE)


def test_frd_averages_over_the_upper_set(rig):
    upper = list(rig.sets["upper"])
    gt = constant()
    gt[0::2, upper[0]], gt[1::2, upper[0]] = 0.2, 0.8
    assert score("frd", constant(), gt) == pytest.approx(0.3 / 36, abs=TOLERANCE)


def test_metrics_use_the_sets_of_the_arkit_rig():
    arkit = get_registry("rig").get("arkit-52")
    gt = constant(controls=52)
    pred = gt.copy()
    pred[:, list(arkit.sets["lip"])] += 0.1
    assert score("mle", pred, gt, "arkit-52") == pytest.approx(0.1, abs=TOLERANCE)
    assert score("mee", pred, gt, "arkit-52") == 0.0
    # mouthSmileLeft/Right are ARKit's S_int counterparts of the corner pulls.
    assert score("eie", pred, gt, "arkit-52") == pytest.approx(0.2, abs=TOLERANCE)


# --- the real clip --------------------------------------------------------------------------------


def test_the_real_clip_against_itself_scores_zero_and_its_own_jitter(real, rig):
    result = evaluate(real, real)
    jitter = build("metric", "jitter")(real, real, rig)
    assert result["metrics"] == {**dict.fromkeys(ERRORS, 0.0), "jitter": jitter}
    assert result["reference"] == {"jitter": jitter}
    assert jitter == pytest.approx(0.005145, abs=1e-6)  # docs/eval.md quotes it


def test_a_smoothed_copy_scores_above_zero_and_is_flatter(real):
    values = evaluate(moving_average(real), real)["metrics"]
    assert all(value > 0 for value in values.values()), values
    assert values["lip-max"] > values["mle"]


def test_a_time_shifted_copy_scores_above_zero_and_worse_when_shifted_further(real):
    near = evaluate(shifted(real, 2), real, ["mle", "mee", "eie", "lip-max", "mse"])["metrics"]
    far = evaluate(shifted(real, 6), real, ["mle", "mee", "eie", "lip-max", "mse"])["metrics"]
    for name, value in near.items():
        assert 0 < value < far[name], name


# --- evaluate() -----------------------------------------------------------------------------------


def test_evaluate_reports_what_it_compared(real):
    result = evaluate(real, real, ["mle", "frd"])
    assert result == {
        "metrics": {"mle": 0.0, "frd": 0.0},
        "better": {"mle": "lower", "frd": "closer to 0"},
        "reference": {},
        "frames": 202,
        "fps": 60.0,
        "rig": "metahuman-174",
        "retargeted_from": None,
        "mapping": None,
        "pred_frames": 202,
        "gt_frames": 202,
    }


@pytest.mark.parametrize("longer", ["pred", "gt"])
def test_evaluate_drops_the_last_frame_of_a_sequence_one_frame_longer(real, longer):
    extra = sequence(np.concatenate([real.values, np.full((1, 174), 9.0)]))
    pred, gt = (extra, real) if longer == "pred" else (real, extra)
    result = evaluate(pred, gt, ["mle"])
    assert (result["metrics"], result["frames"]) == ({"mle": 0.0}, 202)
    assert (result["pred_frames"], result["gt_frames"]) == ((203, 202) if longer == "pred" else (202, 203))


def test_evaluate_retargets_the_prediction_to_the_ground_truths_rig(real):
    gt = retarget(real, "arkit-52")
    result = evaluate(real, gt)
    assert result["rig"] == "arkit-52"
    assert (result["retargeted_from"], result["mapping"]) == (
        "metahuman-174",
        "metahuman-174__to__arkit-52.yaml",
    )
    assert result["metrics"] == {**dict.fromkeys(ERRORS, 0.0), "jitter": result["reference"]["jitter"]}


def test_evaluate_takes_metric_configs(real, rig):
    pred = sequence(offset_on("lip", rig))
    result = evaluate(pred, sequence(constant()), [{"type": "eie", "scale": 0.1}])
    assert result["metrics"]["eie"] == pytest.approx(0.02, abs=TOLERANCE)


def test_evaluate_refuses_different_frame_rates(real):
    with pytest.raises(InputError) as error:
        evaluate(sequence(real.values, fps=30), real)
    assert str(error.value) == (
        "the prediction is at 30 fps but the ground truth at 60 fps: generate the prediction at 60 fps, "
        "or state a txt/csv file's true rate with --pred-fps/--gt-fps"
    )


def test_evaluate_refuses_frame_counts_more_than_one_apart(real):
    with pytest.raises(InputError) as error:
        evaluate(sequence(real.values[:200]), real)
    assert str(error.value) == (
        "the prediction has 200 frames but the ground truth 202 (3.33 s and 3.37 s): more than 1 frame "
        "apart, so not the same take: evaluate a prediction made from the ground truth's own audio"
    )


def test_evaluate_refuses_an_unknown_metric_naming_the_closest(real):
    with pytest.raises(UnknownComponentError) as error:
        evaluate(real, real, ["mle", "fdr"])
    assert str(error.value) == (f"unknown metric 'fdr': valid names are {VALID_NAMES}; did you mean 'frd'?")


def test_evaluate_refuses_a_metric_listed_twice_and_an_empty_list(real):
    with pytest.raises(ConfigError) as twice:
        evaluate(real, real, ["mle", "mee", "mle"])
    assert str(twice.value) == "metric 'mle' is listed twice: list each metric once"
    with pytest.raises(ConfigError) as empty:
        evaluate(real, real, [])
    assert str(empty.value) == f"no metric to compute: name one or more of {', '.join(METRICS)}"


# --- metrics called directly --------------------------------------------------------------------


def test_a_metric_refuses_sequences_of_different_lengths(rig):
    with pytest.raises(InputError) as error:
        build("metric", "mle")(sequence(constant(frames=11)), sequence(constant()), rig)
    assert str(error.value) == (
        "metric 'mle' compares frame by frame, but the prediction has 11 frames and the ground truth 10: "
        "trim them to one length (medtalk.core.evaluation.evaluate does)"
    )


def test_a_metric_refuses_a_sequence_of_another_rig(rig):
    with pytest.raises(InputError) as error:
        build("metric", "mse")(sequence(constant(controls=52), "arkit-52"), sequence(constant()), rig)
    assert str(error.value) == (
        "this sequence has 52 controls for rig 'arkit-52', but rig 'metahuman-174' has 174: retarget it first"
    )


def test_a_metric_refuses_empty_sequences(rig):
    empty = sequence(constant(frames=0))
    with pytest.raises(InputError) as error:
        build("metric", "frd")(empty, empty, rig)
    assert str(error.value) == "metric 'frd' needs at least one frame: give non-empty sequences"


TINY = RigSpec(
    name="tiny-3",
    controls=("a", "b", "c"),
    ranges=((0.0, 1.0),) * 3,
    sets={"upper": (0, 1), "lip": ()},
)


class TinyRigPlugin:
    @staticmethod
    @hookimpl
    def register_rigs(register):
        register(TINY)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("mee", "metric 'mee' needs the index set 'emotion', but rig 'tiny-3' has no 'emotion' set"),
        ("eie", "metric 'eie' needs the index set 'intensity', but rig 'tiny-3' has no 'intensity' set"),
        ("mle", "metric 'mle' needs the index set 'lip', but rig 'tiny-3' has an empty 'lip' set"),
        ("lip-max", "metric 'lip-max' needs the index set 'lip', but rig 'tiny-3' has an empty 'lip' set"),
        ("mle-mse", "metric 'mle-mse' needs the index set 'lip', but rig 'tiny-3' has an empty 'lip' set"),
        ("mee-mse", "metric 'mee-mse' needs the index set 'emotion', but rig 'tiny-3' has no 'emotion' set"),
        (
            "eie-mse",
            "metric 'eie-mse' needs the index set 'intensity', but rig 'tiny-3' has no 'intensity' set",
        ),
        ("jitter", "metric 'jitter' needs the index set 'lip', but rig 'tiny-3' has an empty 'lip' set"),
    ],
)
def test_a_metric_on_a_rig_without_its_set_names_the_rig_and_the_set(register_plugin, name, message):
    register_plugin(TinyRigPlugin)
    tiny = sequence(constant(controls=3), "tiny-3")
    with pytest.raises(ConfigError) as error:
        build("metric", name)(tiny, tiny, TINY)
    assert str(error.value) == (
        f"{message}: add it to the rig (docs/rigs.md), or leave {name} out with --metrics"
    )


def test_frd_and_mse_work_on_a_rig_with_only_an_upper_set(register_plugin):
    register_plugin(TinyRigPlugin)
    gt = constant(controls=3)
    gt[0::2, 0], gt[1::2, 0] = 0.2, 0.8
    assert score("frd", constant(controls=3), gt, "tiny-3") == pytest.approx(0.15, abs=TOLERANCE)
    assert score("mse", constant(controls=3), gt, "tiny-3") == pytest.approx(0.09 / 3, abs=TOLERANCE)


# --- medtalk eval ---------------------------------------------------------------------------------


@pytest.fixture
def smoothed_txt(real, tmp_path) -> Path:
    return write_sequence(moving_average(real), tmp_path / "smoothed.txt")


@pytest.fixture
def livelink_gt(real, tmp_path) -> Path:
    """The real clip as an iPhone capture would arrive: ARKit shapes in a Live Link Face CSV."""
    return write_sequence(real, tmp_path / "capture.csv", "livelink")


def eval_json(capsys, *args: str) -> dict:
    assert run_cli(["eval", *args, "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return json.loads(captured.out)


def test_eval_json_gives_the_values_of_evaluate(real, smoothed_txt, real_txt, capsys):
    result = eval_json(capsys, str(smoothed_txt), str(real_txt))
    assert result == evaluate(read_sequence(smoothed_txt), real)
    assert list(result["metrics"]) == METRICS
    assert result["metrics"]["frd"] > 0


def test_eval_metrics_option_picks_and_orders_the_metrics(smoothed_txt, real_txt, capsys):
    result = eval_json(capsys, str(smoothed_txt), str(real_txt), "--metrics", "frd, mle")
    assert list(result["metrics"]) == ["frd", "mle"]


def test_eval_prints_a_table(smoothed_txt, real_txt, capsys):
    assert run_cli(["eval", str(smoothed_txt), str(real_txt), "--metrics", "mle,frd"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{smoothed_txt} against {real_txt}: 202 frames at 60 fps, rig metahuman-174"
    rows = [[cell.strip() for cell in line.strip("│").split("│")] for line in lines if line.startswith("│")]
    expected = evaluate(read_sequence(smoothed_txt), read_sequence(real_txt), ["mle", "frd"])["metrics"]
    mle, frd = expected.values()
    assert rows == [["mle", f"{mle:.6g}", "lower"], ["frd", f"{frd:.6g}", "closer to 0"]]


def test_eval_table_gives_the_ground_truths_jitter_beside_the_predictions(smoothed_txt, real_txt, capsys):
    assert run_cli(["eval", str(smoothed_txt), str(real_txt), "--metrics", "mle,jitter"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("┃"))
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == [
        "metric",
        "value",
        "better",
        "ground truth",
    ]
    rows = [[cell.strip() for cell in line.strip("│").split("│")] for line in lines if line.startswith("│")]
    result = evaluate(read_sequence(smoothed_txt), read_sequence(real_txt), ["mle", "jitter"])
    mle, jitter = result["metrics"].values()
    assert rows == [
        ["mle", f"{mle:.6g}", "lower", ""],
        ["jitter", f"{jitter:.6g}", "lower", f"{result['reference']['jitter']:.6g}"],
    ]
    assert jitter < result["reference"]["jitter"]  # smoothing takes the shaking out


def test_eval_says_when_a_file_lost_its_last_frame(real, real_txt, tmp_path, capsys):
    longer = write_sequence(sequence(np.concatenate([real.values, real.values[-1:]])), tmp_path / "p.txt")
    assert run_cli(["eval", str(longer), str(real_txt), "--metrics", "mle"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == f"{longer} has one frame more: its last frame was left out"


def test_eval_across_rigs_retargets_the_metahuman_prediction_to_the_capture(real_txt, livelink_gt, capsys):
    result = eval_json(capsys, str(real_txt), str(livelink_gt))
    assert (result["rig"], result["frames"], result["fps"]) == ("arkit-52", 202, 60.0)
    assert (result["retargeted_from"], result["mapping"]) == (
        "metahuman-174",
        "metahuman-174__to__arkit-52.yaml",
    )
    # The capture holds the same clip, written with 6 decimals.
    assert all(abs(result["metrics"][name]) < 1e-5 for name in ERRORS), result["metrics"]
    assert result["metrics"]["jitter"] == pytest.approx(result["reference"]["jitter"], abs=1e-6)


def test_eval_across_rigs_says_so_in_the_table(real_txt, livelink_gt, capsys):
    assert run_cli(["eval", str(real_txt), str(livelink_gt), "--metrics", "mle"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        f"{real_txt} against {livelink_gt}: 202 frames at 60 fps, rig arkit-52",
        f"{real_txt} was retargeted from metahuman-174 to arkit-52 through the built-in mapping "
        "metahuman-174__to__arkit-52.yaml",
    ]


def test_eval_across_rigs_through_a_mapping_file(real_txt, livelink_gt, tmp_path, capsys):
    mapping = tmp_path / "studio.yaml"
    builtin = files("medtalk").joinpath("data", "mappings", "metahuman-174__to__arkit-52.yaml")
    shutil.copyfile(str(builtin), mapping)
    text = mapping.read_text(encoding="utf-8")
    # A studio mapping that never opens the jaw: the lip error rises, the upper face is untouched.
    jaw = re.search(r"^  jawOpen:\n(?:    .*\n)+", text, flags=re.MULTILINE)
    mapping.write_text(text[: jaw.start()] + text[jaw.end() :], encoding="utf-8")
    result = eval_json(capsys, str(real_txt), str(livelink_gt), "--mapping", str(mapping))
    assert result["mapping"] == str(mapping)
    assert result["metrics"]["mle"] > 1e-3
    assert abs(result["metrics"]["mee"]) < 1e-5


def test_eval_of_an_arkit_prediction_against_a_metahuman_ground_truth(real, real_txt, livelink_gt, capsys):
    result = eval_json(capsys, str(livelink_gt), str(real_txt), "--metrics", "mle,mee")
    assert (result["rig"], result["retargeted_from"]) == ("metahuman-174", "arkit-52")
    assert result["metrics"]["mle"] > 0  # ARKit's 52 shapes cannot carry every board control


def expect_error(capsys, args: list[str], message: str) -> None:
    assert run_cli(["eval", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"error: {message}\n"


def test_eval_refuses_different_frame_rates(real_txt, capsys):
    expect_error(
        capsys,
        [str(real_txt), str(real_txt), "--pred-fps", "30"],
        f"{real_txt} is at 30 fps but {real_txt} at 60 fps: generate the prediction at 60 fps, "
        "or state a txt/csv file's true rate with --pred-fps/--gt-fps",
    )


def test_eval_refuses_a_capture_at_another_rate(real_txt, livelink_gt, capsys):
    expect_error(
        capsys,
        [str(real_txt), str(livelink_gt), "--gt-fps", "30"],
        f"{real_txt} is at 60 fps but {livelink_gt} at 30 fps: generate the prediction at 30 fps, "
        "or state a txt/csv file's true rate with --pred-fps/--gt-fps",
    )


def test_eval_refuses_frame_counts_more_than_one_apart(real, real_txt, tmp_path, capsys):
    short = write_sequence(sequence(real.values[:196]), tmp_path / "short.txt")
    expect_error(
        capsys,
        [str(short), str(real_txt)],
        f"{short} has 196 frames but {real_txt} 202 (3.27 s and 3.37 s): more than 1 frame apart, "
        "so not the same take: evaluate a prediction made from the ground truth's own audio",
    )


def test_eval_refuses_an_unknown_metric_before_reading_the_files(tmp_path, capsys):
    expect_error(
        capsys,
        [str(tmp_path / "missing.txt"), str(tmp_path / "missing.txt"), "--metrics", "mle,meee"],
        f"unknown metric 'meee': valid names are {VALID_NAMES}; did you mean 'mee'?",
    )


def test_eval_refuses_a_metrics_list_naming_nothing(real_txt, capsys):
    expect_error(
        capsys,
        [str(real_txt), str(real_txt), "--metrics", " , "],
        f"--metrics names no metric: give a comma-separated list of {', '.join(METRICS)}",
    )


def test_eval_refuses_a_metric_on_a_rig_without_its_set(register_plugin, tmp_path, capsys):
    register_plugin(TinyRigPlugin)
    take = write_sequence(sequence(constant(controls=3), "tiny-3"), tmp_path / "tiny.txt")
    expect_error(
        capsys,
        [str(take), str(take), "--metrics", "frd,mee"],
        "metric 'mee' needs the index set 'emotion', but rig 'tiny-3' has no 'emotion' set: "
        "add it to the rig (docs/rigs.md), or leave mee out with --metrics",
    )


def test_eval_reads_a_txt_of_a_rig_given_by_name(register_plugin, tmp_path, capsys):
    register_plugin(TinyRigPlugin)
    take = write_sequence(sequence(constant(controls=3), "tiny-3"), tmp_path / "tiny.txt")
    result = eval_json(
        capsys, str(take), str(take), "--pred-rig", "tiny-3", "--gt-rig", "tiny-3", "--metrics", "frd"
    )
    assert (result["rig"], result["metrics"]) == ("tiny-3", {"frd": 0.0})


def test_eval_refuses_a_rig_option_for_a_format_that_states_its_rig(real_txt, livelink_gt, capsys):
    expect_error(
        capsys,
        [str(real_txt), str(livelink_gt), "--gt-rig", "arkit-52"],
        f"--gt-rig does not apply to {livelink_gt} (livelink format): the file states it; drop the option",
    )


def test_eval_refuses_a_missing_file(real_txt, tmp_path, capsys):
    missing = tmp_path / "missing.txt"
    expect_error(capsys, [str(real_txt), str(missing)], f"{missing}: no such file: check the path")


# --- medtalk eval on two folders ----------------------------------------------------------------


@pytest.fixture
def folders(real, tmp_path) -> tuple[Path, Path]:
    """Predictions a, b and extra; ground truths a and b (b as a csv) and a note that is not a rig file."""
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    write_sequence(moving_average(real), pred / "a.txt")
    write_sequence(shifted(real, 3), pred / "b.txt")
    write_sequence(real, pred / "extra.txt")
    write_sequence(real, gt / "a.txt")
    write_sequence(real, gt / "b.csv")
    (gt / "notes.md").write_text("not a rig file: ignored\n")
    return pred, gt


def skipped_warning(path: Path) -> str:
    return (
        f"1 file has no file of the same name in the other folder and is skipped: {path}: "
        "name each prediction after its ground-truth file to score it"
    )


@pytest.mark.filterwarnings("always::medtalk.core.errors.MedtalkWarning")
def test_eval_of_two_folders_scores_the_files_of_the_same_name_and_warns_of_the_others(folders, capsys):
    pred, gt = folders
    assert run_cli(["eval", str(pred), str(gt), "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == f"warning: {skipped_warning(pred / 'extra.txt')}\n"
    result = json.loads(captured.out)
    assert [(entry["name"], entry["pred"], entry["gt"]) for entry in result["files"]] == [
        ("a", str(pred / "a.txt"), str(gt / "a.txt")),
        ("b", str(pred / "b.txt"), str(gt / "b.csv")),
    ]
    a, b = (
        evaluate(read_sequence(pred / name), read_sequence(gt / truth))
        for name, truth in (("a.txt", "a.txt"), ("b.txt", "b.csv"))
    )
    assert result["files"][0]["metrics"] == pytest.approx(a["metrics"], abs=1e-12)
    assert result["files"][1]["metrics"] == pytest.approx(b["metrics"], abs=1e-12)
    assert list(result["mean"]["metrics"]) == METRICS
    for name in METRICS:
        assert result["mean"]["metrics"][name] == pytest.approx((a["metrics"][name] + b["metrics"][name]) / 2)
    assert result["mean"]["reference"] == pytest.approx({"jitter": a["reference"]["jitter"]})
    assert result["skipped"] == [str(pred / "extra.txt")]
    assert result["better"]["frd"] == "closer to 0"


@pytest.mark.filterwarnings("always::medtalk.core.errors.MedtalkWarning")
def test_eval_of_two_folders_prints_a_row_per_file_and_the_mean(folders, capsys):
    pred, gt = folders
    assert run_cli(["eval", str(pred), str(gt), "--metrics", "mle,jitter"]) == 0
    captured = capsys.readouterr()
    assert captured.err == f"warning: {skipped_warning(pred / 'extra.txt')}\n"
    lines = captured.out.splitlines()
    assert lines[0] == f"{pred} against {gt}: 2 pairs of files matched by name"
    assert lines[-1] == "better: lower for mle, jitter"
    header = next(line for line in lines if line.startswith("┃"))
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == [
        "file",
        "frames",
        "mle",
        "jitter",
        "jitter (ground truth)",
    ]
    rows = [[cell.strip() for cell in line.strip("│").split("│")] for line in lines if line.startswith("│")]
    with pytest.warns(MedtalkWarning):
        result = evaluate_folders(pred, gt, ["mle", "jitter"])
    a, b = result["files"]
    mean = result["mean"]

    def row(name, frames, values, reference):
        return [name, frames, f"{values['mle']:.6g}", f"{values['jitter']:.6g}", f"{reference['jitter']:.6g}"]

    assert rows == [
        row("a", "202", a["metrics"], a["reference"]),
        row("b", "202", b["metrics"], b["reference"]),
        row("mean", "", mean["metrics"], mean["reference"]),
    ]


def test_evaluate_folders_warns_of_unmatched_files_naming_at_most_five(real, tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    for name in ("take", "p1", "p2", "p3", "p4", "p5"):
        write_sequence(real, pred / f"{name}.txt")
    for name in ("take", "g1", "g2"):
        write_sequence(real, gt / f"{name}.json")
    with pytest.warns(MedtalkWarning) as caught:
        result = evaluate_folders(pred, gt, ["mle"])
    listed = ", ".join(str(path) for path in [*(pred / f"p{i}.txt" for i in range(1, 6))])
    assert [str(warning.message) for warning in caught] == [
        f"7 files have no file of the same name in the other folder and are skipped: {listed} and 2 more: "
        "name each prediction after its ground-truth file to score it"
    ]
    assert [entry["name"] for entry in result["files"]] == ["take"]
    assert result["skipped"][-2:] == [str(gt / "g1.json"), str(gt / "g2.json")]


def test_evaluate_folders_warns_when_the_pairs_are_on_different_rigs(real, tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    for folder in (pred, gt):
        write_sequence(real, folder / "metahuman.txt")
        write_sequence(retarget(real, "arkit-52"), folder / "arkit.json")
    with pytest.warns(MedtalkWarning) as caught:
        result = evaluate_folders(pred, gt, ["mle"])
    assert [str(warning.message) for warning in caught] == [
        "the pairs are scored on different rigs (arkit-52, metahuman-174), so their mean mixes values that "
        "are not comparable: put each rig's files in folders of their own"
    ]
    assert [entry["rig"] for entry in result["files"]] == ["arkit-52", "metahuman-174"]


def test_eval_of_two_folders_without_a_common_name_is_one_line(real, tmp_path, capsys):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    write_sequence(real, pred / "x.txt")
    write_sequence(real, gt / "y.txt")
    write_sequence(real, gt / "z.csv")
    expect_error(
        capsys,
        [str(pred), str(gt)],
        f"no file in {pred} has a file of the same name in {gt} (1 and 2 rig files): name each prediction "
        "after its ground-truth file (a.txt is scored against a.csv)",
    )


def test_eval_of_a_folder_against_a_file_is_one_line(folders, real_txt, tmp_path, capsys):
    pred, _ = folders
    expect_error(
        capsys,
        [str(pred), str(real_txt)],
        f"{pred} is a folder but {real_txt} is not: give two files, or two folders whose files are matched "
        "by name",
    )
    missing = tmp_path / "missing"
    expect_error(capsys, [str(missing), str(pred)], f"{missing}: no such folder: check the path")


def test_eval_of_a_folder_with_two_files_of_one_name_is_one_line(folders, real, capsys):
    pred, gt = folders
    write_sequence(real, gt / "a.json")
    expect_error(
        capsys,
        [str(pred), str(gt)],
        f"{gt}: a.json and a.txt have the same name 'a', so neither can be matched by name: keep one file "
        "per take in the folder",
    )


def test_eval_of_two_folders_stops_at_a_pair_that_cannot_be_compared(folders, real, capsys):
    pred, gt = folders
    (pred / "extra.txt").unlink()
    short = write_sequence(sequence(real.values[:150]), pred / "b.txt", overwrite=True)
    expect_error(
        capsys,
        [str(pred), str(gt), "--metrics", "mle"],
        f"{short} has 150 frames but {gt / 'b.csv'} 202 (2.50 s and 3.37 s): more than 1 frame apart, "
        "so not the same take: evaluate a prediction made from the ground truth's own audio",
    )


def test_eval_of_two_folders_with_one_pair_says_so_in_the_singular(folders, capsys):
    pred, gt = folders
    for name in ("b.txt", "extra.txt"):
        (pred / name).unlink()
    (gt / "b.csv").unlink()
    assert run_cli(["eval", str(pred), str(gt), "--metrics", "mle"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.splitlines()[0] == f"{pred} against {gt}: 1 pair of files matched by name"
