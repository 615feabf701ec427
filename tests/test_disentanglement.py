"""`medtalk eval --disentanglement`: the paper's Figs. 5 and 6 as numbers, and the silhouette behind them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from test_training import StandInPlugin, make_corpus, write_config

from medtalk import hookimpl
from medtalk.cli import run_cli
from medtalk.core.components import ComponentConfig, Dataset
from medtalk.core.data.samples import Sample
from medtalk.core.errors import ConfigError, InputError
from medtalk.core.evaluation import disentanglement_scores, evaluate_disentanglement, silhouette_score
from medtalk.core.model.bundle import save_bundle
from medtalk.core.model.modules import MedtalkModel
from medtalk.core.plugins import build
from medtalk.core.rig import RigSpec
from medtalk.core.training import load_training_config, run_training

SCORES = ("emotion_by_emotion", "content_by_emotion", "content_by_utterance", "emotion_by_utterance")

# --- the silhouette ----------------------------------------------------------------------------------


def test_the_silhouette_of_four_points_on_a_line():
    # a = 1 for every point; b = 10.5 for the outer points and 9.5 for the inner ones.
    expected = ((10.5 - 1) / 10.5 + (9.5 - 1) / 9.5) / 2
    assert silhouette_score(np.array([[0.0], [1.0], [10.0], [11.0]]), ["a", "a", "b", "b"]) == pytest.approx(
        expected, abs=1e-12
    )


def test_a_point_alone_in_its_group_scores_zero():
    # Point 0: a = 1, b = 5; point 1: a = 1, b = 4; point 5 is alone: 0.
    score = silhouette_score(np.array([[0.0], [1.0], [5.0]]), [0, 0, 1])
    assert score == pytest.approx((0.8 + 0.75 + 0.0) / 3, abs=1e-12)


def blobs() -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(0, 0.5, (20, 8)), rng.normal(0, 0.5, (20, 8)) + 10])
    return points, ["near"] * 20 + ["far"] * 20


def test_two_well_separated_blobs_score_close_to_one():
    points, labels = blobs()
    assert 0.9 < silhouette_score(points, labels) <= 1.0


def test_the_same_blobs_with_their_labels_shuffled_score_close_to_zero():
    points, labels = blobs()
    shuffled = list(np.random.default_rng(0).permutation(labels))
    assert abs(silhouette_score(points, shuffled)) < 0.05


def test_identical_points_score_zero_rather_than_nan():
    assert silhouette_score(np.zeros((4, 3)), ["a", "a", "b", "b"]) == 0.0


@pytest.mark.parametrize(("labels", "groups"), [(["a", "a", "a"], 1), (["a", "b", "c"], 3)])
def test_the_silhouette_needs_two_to_n_minus_one_groups(labels, groups):
    with pytest.raises(InputError) as error:
        silhouette_score(np.arange(3.0)[:, None], labels)
    assert str(error.value) == (
        f"the silhouette needs 2 to 2 groups for 3 points, got {groups}: give more points, or points of "
        "more groups"
    )


# --- a bundle trained in the test ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Three utterances under three emotions (test_training.make_corpus): content on the jaw and mouth
    controls 3-12 (lip), each emotion an offset on the brows 29-32 (upper)."""
    folder = tmp_path_factory.mktemp("corpus")
    return make_corpus(folder)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory) -> Path:
    """A bundle whose motion autoencoder had 6 epochs of the disentanglement stage (about 3 s)."""
    from medtalk.core.plugins import get_plugin_manager

    folder = tmp_path_factory.mktemp("trained")
    stages = [
        {
            "type": "disentangle",
            "dataset": {"type": "paired", "path": str(corpus)},
            "epochs": 6,
            "batch_size": 3,
            "lr": 3e-3,
        }
    ]
    pm = get_plugin_manager()
    pm.register(StandInPlugin, name="disentanglement-stand-ins")
    try:
        run_training(load_training_config(write_config(folder, stages)))
    finally:
        pm.unregister(name="disentanglement-stand-ins")
    return folder / "run" / "bundle"


def motion_only_bundle(folder: Path, controls: int = 174, rig: str = "metahuman-174") -> Path:
    torch.manual_seed(0)
    model = MedtalkModel.from_config(
        {"motion_model": {"type": "medtalk-autoencoder", "num_controls": controls}}
    )
    return save_bundle(folder, model, {"rig": rig, "fps": 60.0})


@pytest.fixture(scope="module")
def untrained(tmp_path_factory) -> Path:
    return motion_only_bundle(tmp_path_factory.mktemp("untrained") / "bundle")


def rewrite_manifest(corpus: Path, name: str, change) -> Path:
    """A copy of the corpus manifest beside it with ``change(line)`` applied to each line (None drops it)."""
    lines = [change(json.loads(line)) for line in corpus.read_text().splitlines()]
    path = corpus.parent / name
    path.write_text("".join(json.dumps(line) + "\n" for line in lines if line is not None))
    return path


def test_a_trained_bundle_gives_finite_scores_in_their_ranges(trained, corpus):
    result = evaluate_disentanglement(trained, corpus)
    assert (result["bundle"], result["data"], result["dataset_type"]) == (
        str(trained),
        str(corpus),
        "manifest",
    )
    assert (result["rig"], result["clips"], result["utterances"]) == ("metahuman-174", 9, 3)
    assert result["emotions"] == {"angry": 3, "happy": 3, "sad": 3}
    for name in SCORES:
        assert -1.0 <= result["silhouette"][name] <= 1.0, name
    swap = result["swap"]
    # Every pair of emotions of each of the 3 utterances.
    assert (swap["pairs"], swap["pairing"]) == (9, "same utterance, different emotions")
    assert np.isfinite([swap["lip_change"], swap["upper_change"], result["reconstruction_mse"]]).all()
    assert swap["upper_over_lip"] == pytest.approx(swap["upper_change"] / swap["lip_change"])
    # Measured: emotion-by-emotion 0.97, lip change 0.008, upper-face change 0.020 (ratio 2.5).
    assert result["silhouette"]["emotion_by_emotion"] > 0.9
    assert swap["upper_over_lip"] > 1.5
    assert result["reconstruction_mse"] < 0.01


def test_training_separates_emotion_from_content_more_than_an_untrained_autoencoder(
    trained, untrained, corpus
):
    after, before = evaluate_disentanglement(trained, corpus), evaluate_disentanglement(untrained, corpus)

    def gap(result):
        return result["silhouette"]["emotion_by_emotion"] - result["silhouette"]["content_by_emotion"]

    # Measured: the gap grows from -0.01 to 0.43, the ratio from 0.8 to 2.5.
    assert gap(after) > gap(before) + 0.2
    assert after["swap"]["upper_over_lip"] > 2 * before["swap"]["upper_over_lip"]
    assert before["swap"]["upper_over_lip"] > 0


def test_the_paired_dataset_type_reads_the_same_clips(trained, corpus):
    paired = evaluate_disentanglement(trained, corpus, "paired")
    plain = evaluate_disentanglement(trained, corpus)
    assert paired["dataset_type"] == "paired"
    assert {key: value for key, value in paired.items() if key != "dataset_type"} == {
        key: value for key, value in plain.items() if key != "dataset_type"
    }


def test_without_utterances_each_clip_is_swapped_with_the_next_of_another_emotion(trained, corpus):
    manifest = rewrite_manifest(corpus, "no-utterances.jsonl", lambda line: {**line, "utterance": None})
    result = evaluate_disentanglement(trained, manifest)
    assert result["utterances"] is None
    assert result["silhouette"]["content_by_utterance"] is None
    assert result["silhouette"]["emotion_by_utterance"] is None
    # Clips in order angry, happy, sad of u1, then of u2 and u3: 8 neighbours, and the last with the first.
    assert (result["swap"]["pairs"], result["swap"]["pairing"]) == (
        9,
        "different utterances, different emotions",
    )
    assert result["swap"]["upper_over_lip"] > 1.5


def test_the_swap_measures_the_rigs_lip_and_upper_sets():
    """A hand-made decoder: the emotion embedding moves control 1 (upper) by 1, control 0 (lip) not at all."""

    class EmotionOnControlOne(torch.nn.Module):
        def encode_emotion(self, rig):
            return rig[..., 1:2]

        def encode_content(self, rig):
            return rig[..., 0:1]

        def decode(self, emotion, content):
            return torch.cat([content, emotion, torch.zeros_like(content)], dim=-1)

    rig = RigSpec(
        name="tiny-3", controls=("a", "b", "c"), ranges=((0.0, 1.0),) * 3, sets={"lip": (0,), "upper": (1,)}
    )
    # Controls a and b hold the value, c stays 0: the decoder above reconstructs every clip exactly.
    clips = [
        Sample(id=f"{emotion}{index}", rig=np.array([[value, value, 0.0]] * 4, np.float32), emotion=emotion)
        for index, (emotion, value) in enumerate([("happy", 0.0), ("happy", 0.5), ("sad", 1.0)])
    ]
    result = disentanglement_scores(EmotionOnControlOne(), clips, rig)
    # Pairs (0, 2) and (1, 2): swaps change control 1 by 1, 1, 0.5, 0.5; control 0 never.
    assert result["swap"]["pairs"] == 2
    assert result["swap"]["upper_change"] == pytest.approx(0.75)
    assert result["swap"]["lip_change"] == 0.0
    assert result["swap"]["upper_over_lip"] is None
    assert result["reconstruction_mse"] == pytest.approx(0.0)


def test_a_rig_without_an_upper_set_is_one_line():
    rig = RigSpec(name="tiny-3", controls=("a", "b", "c"), ranges=((0.0, 1.0),) * 3, sets={"lip": (0,)})
    motion = build("motion_model", {"type": "medtalk-autoencoder", "num_controls": 3})
    clips = [
        Sample(id=str(i), rig=np.zeros((2, 3), np.float32), emotion=e)
        for i, e in enumerate(("happy",) * 2 + ("sad",))
    ]
    with pytest.raises(ConfigError) as error:
        disentanglement_scores(motion, clips, rig)
    assert str(error.value) == (
        "rig 'tiny-3' has no 'upper' set, which the emotion swap measures: add it to the rig (docs/rigs.md)"
    )


# --- the command ------------------------------------------------------------------------------------------


def test_eval_disentanglement_json_gives_the_values_of_evaluate_disentanglement(trained, corpus, capsys):
    assert run_cli(["eval", "--disentanglement", str(trained), str(corpus), "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert json.loads(captured.out) == evaluate_disentanglement(trained, corpus)


def test_eval_disentanglement_prints_a_table(trained, corpus, capsys):
    assert run_cli(["eval", "--disentanglement", str(trained), str(corpus)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0]
        == f"{trained} on {corpus}: 9 clips (angry 3, happy 3, sad 3), 3 utterances, rig metahuman-174"
    )
    assert lines[-1] == "emotion swap: 9 pairs of clips (same utterance, different emotions)"
    rows = [[cell.strip() for cell in line.strip("│").split("│")] for line in lines if line.startswith("│")]
    result = evaluate_disentanglement(trained, corpus)
    silhouette, swap = result["silhouette"], result["swap"]
    assert rows == [
        [
            "silhouette: emotion embeddings by emotion",
            f"{silhouette['emotion_by_emotion']:.4g}",
            "high (up to 1)",
        ],
        [
            "silhouette: content embeddings by emotion",
            f"{silhouette['content_by_emotion']:.4g}",
            "low (0 or below)",
        ],
        [
            "silhouette: content embeddings by utterance",
            f"{silhouette['content_by_utterance']:.4g}",
            "high (up to 1)",
        ],
        [
            "silhouette: emotion embeddings by utterance",
            f"{silhouette['emotion_by_utterance']:.4g}",
            "low (0 or below)",
        ],
        ["emotion swap: lip change", f"{swap['lip_change']:.4g}", "small"],
        ["emotion swap: upper-face change", f"{swap['upper_change']:.4g}", "large"],
        ["emotion swap: upper-face / lip change", f"{swap['upper_over_lip']:.4g}", "well above 1"],
        ["reconstruction mse", f"{result['reconstruction_mse']:.4g}", "small"],
    ]


def test_eval_disentanglement_table_says_n_a_for_scores_without_utterances(trained, corpus, capsys):
    manifest = rewrite_manifest(corpus, "no-utterances-cli.jsonl", lambda line: {**line, "utterance": None})
    assert run_cli(["eval", "--disentanglement", str(trained), str(manifest)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{trained} on {manifest}: 9 clips (angry 3, happy 3, sad 3), rig metahuman-174"
    values = {
        cells[0]: cells[1]
        for line in lines
        if line.startswith("│")
        for cells in [[c.strip() for c in line.strip("│").split("│")]]
    }
    assert values["silhouette: content embeddings by utterance"] == "n/a"
    assert values["silhouette: emotion embeddings by utterance"] == "n/a"


def expect_error(capsys, args: list[str], message: str) -> None:
    assert run_cli(["eval", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"error: {message}\n"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--metrics", "mle"),
        ("--mapping", "m.yaml"),
        ("--pred-rig", "arkit-52"),
        ("--gt-rig", "arkit-52"),
        ("--pred-fps", "30"),
        ("--gt-fps", "30"),
    ],
)
def test_eval_disentanglement_refuses_the_scoring_options(trained, corpus, capsys, option, value):
    expect_error(
        capsys,
        ["--disentanglement", str(trained), str(corpus), option, value],
        f"{option} does not apply to --disentanglement: drop it",
    )


def test_eval_refuses_a_dataset_type_without_disentanglement(real_txt, capsys):
    expect_error(
        capsys,
        [str(real_txt), str(real_txt), "--dataset-type", "paired"],
        "--dataset-type applies only with --disentanglement: drop it, or add that flag",
    )


def test_eval_disentanglement_refuses_an_unknown_dataset_type(trained, corpus, capsys):
    expect_error(
        capsys,
        ["--disentanglement", str(trained), str(corpus), "--dataset-type", "pared"],
        "unknown dataset 'pared': valid names are authors-layout, manifest, paired; did you mean 'paired'?",
    )


def test_eval_disentanglement_refuses_a_missing_bundle_or_manifest(trained, corpus, tmp_path, capsys):
    missing = tmp_path / "missing"
    expect_error(
        capsys,
        ["--disentanglement", str(missing), str(corpus)],
        f"{missing}: no such bundle folder: give a folder with model.json and model.safetensors "
        "(made by medtalk train or medtalk import-official)",
    )
    expect_error(
        capsys,
        ["--disentanglement", str(trained), str(missing)],
        f"{missing}: no such file: give the path of a JSONL manifest",
    )


def test_eval_disentanglement_refuses_a_clip_without_an_emotion(trained, corpus, capsys):
    manifest = rewrite_manifest(
        corpus, "unlabelled.jsonl", lambda line: {**line, "emotion": None} if line["id"] == "sad_u2" else line
    )
    expect_error(
        capsys,
        ["--disentanglement", str(trained), str(manifest)],
        f"{manifest}: clip 'sad_u2' has no emotion label, and the scores group clips by emotion: "
        "label every clip",
    )


def test_eval_disentanglement_refuses_clips_of_one_emotion(trained, corpus, capsys):
    manifest = rewrite_manifest(
        corpus, "angry.jsonl", lambda line: line if line["emotion"] == "angry" else None
    )
    expect_error(
        capsys,
        ["--disentanglement", str(trained), str(manifest)],
        f"{manifest}: every clip is 'angry', but the scores compare emotions: give clips of at least two "
        "emotions",
    )


def test_eval_disentanglement_refuses_one_clip_per_emotion(trained, corpus, capsys):
    manifest = rewrite_manifest(corpus, "u1.jsonl", lambda line: line if line["utterance"] == "u1" else None)
    expect_error(
        capsys,
        ["--disentanglement", str(trained), str(manifest)],
        f"{manifest}: 3 clips, each of another emotion, but the silhouette needs two clips of one emotion at "
        "least: give more clips",
    )


def test_eval_disentanglement_refuses_clips_of_another_rig_than_the_bundles(tmp_path, capsys):
    bundle = motion_only_bundle(tmp_path / "arkit-bundle", controls=52, rig="arkit-52")
    data = tmp_path / "authors"
    (data / "WAV").mkdir(parents=True)
    (data / "VALID_CTR").mkdir()
    soundfile.write(data / "WAV" / "angry_001.wav", np.zeros(1600, np.float32), 16000)
    np.savetxt(data / "VALID_CTR" / "angry_001.txt", np.zeros((6, 174)), delimiter=",", fmt="%.1f")
    expect_error(
        capsys,
        ["--disentanglement", str(bundle), str(data)],
        f"{data}: clip 'angry_001' is rig metahuman-174, but the bundle's model animates rig arkit-52: "
        "give clips of the model's rig",
    )


class PathlessDataset(Dataset):
    name = "test-pathless"
    Config = ComponentConfig

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0


class PathlessDatasetPlugin:
    @staticmethod
    @hookimpl
    def register_datasets(register):
        register(PathlessDataset)


def test_eval_disentanglement_refuses_a_dataset_type_that_takes_no_path(
    trained, corpus, register_plugin, capsys
):
    register_plugin(PathlessDatasetPlugin)
    expect_error(
        capsys,
        ["--disentanglement", str(trained), str(corpus), "--dataset-type", "test-pathless"],
        "dataset type 'test-pathless' takes neither a path nor a root folder, so DATA cannot name its data: "
        "use manifest, paired or authors-layout",
    )
