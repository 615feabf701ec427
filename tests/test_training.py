"""The four training stages, exact resume, freezing, the log, the bundle, DDP under torchrun (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml

from medtalk import hookimpl
from medtalk.core.components import ComponentConfig, Featurizer, TextEncoder
from medtalk.core.errors import ConfigError, InputError, OutputError
from medtalk.core.training import load_training_config, run_training
from medtalk.core.types import FeatureSeq, TextEncoding

EMOTIONS = ("angry", "happy", "sad")
UTTERANCES = ("u1", "u2", "u3")


class PitchFeaturizer(Featurizer):
    """A stand-in emotion featurizer: frame energy and zero crossings at 50 Hz."""

    name = "test-prosody"
    role = "emotion"
    Config = ComponentConfig
    dim = 2
    rate_hz = 50.0

    def __call__(self, audio):
        frames = audio.samples[: len(audio.samples) // 320 * 320].reshape(-1, 320)
        energy = np.sqrt((frames**2).mean(axis=1))
        crossings = (np.diff(np.sign(frames), axis=1) != 0).mean(axis=1)
        return FeatureSeq(np.stack([energy, crossings], axis=1).astype(np.float32), 50.0)


class HashingTextEncoder(TextEncoder):
    """A stand-in text encoder: one deterministic vector per word, and their mean."""

    name = "test-words"
    dim = 6

    def __call__(self, text):
        words = text.lower().split() or [""]
        tokens = np.stack(
            [np.random.default_rng(zlib.crc32(w.encode())).standard_normal(6) for w in words]
        ).astype(np.float32)
        return TextEncoding(tokens, tokens.mean(axis=0))


class StandInPlugin:
    @staticmethod
    @hookimpl
    def register_featurizers(register):
        register(PitchFeaturizer)

    @staticmethod
    @hookimpl
    def register_text_encoders(register):
        register(HashingTextEncoder)


@pytest.fixture(autouse=True)
def stand_ins(register_plugin):
    register_plugin(StandInPlugin, name="training-stand-ins")


def make_corpus(folder: Path, frames: int = 24) -> Path:
    """Three utterances under three emotions: rig = content pattern + emotion offset, equal lengths."""
    rng = np.random.default_rng(0)
    lines = []
    for u, utterance in enumerate(UTTERANCES):
        length = frames + 6 * u
        t = np.arange(length) / 60.0
        content = np.zeros((length, 174), dtype=np.float32)
        content[:, 3:13] = 0.3 + 0.2 * np.sin(2 * np.pi * (2 + u) * t)[:, None]
        tone = 0.3 * np.sin(2 * np.pi * (200 + 80 * u) * np.arange(int(length / 60 * 16000)) / 16000)
        audio = folder / f"{utterance}.wav"
        soundfile.write(audio, tone.astype(np.float32), 16000)
        for e, emotion in enumerate(EMOTIONS):
            rig = content.copy()
            rig[:, 29:33] += 0.2 * (e + 1)
            rig += rng.normal(0, 0.005, rig.shape).astype(np.float32)
            rig_path = folder / f"{emotion}_{utterance}.txt"
            np.savetxt(rig_path, rig, delimiter=",", fmt="%.6f")
            lines.append(
                {
                    "id": f"{emotion}_{utterance}",
                    "utterance": utterance,
                    "emotion": emotion,
                    "audio": audio.name,
                    "rig": rig_path.name,
                    "transcript": f"this is {utterance} said {emotion}",
                    "guidance_text": f"a {emotion} face",
                }
            )
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest


def write_config(folder: Path, stages: list[dict], **overrides) -> Path:
    config = {
        "output": "run",
        "seed": 3,
        "features": {
            "content": {"type": "logmel"},
            "emotion": {"type": "test-prosody"},
            "text": {"type": "test-words"},
            "guidance_text": {"type": "test-words"},
        },
        "model": {
            "motion_model": {"type": "medtalk-autoencoder"},
            "content_mapper": {"type": "temporal-conv", "input_dim": 80},
            "intensity_predictor": {"type": "cmf", "emotion_dim": 2, "text_dim": 6},
            "guidance_encoders": {
                "label": {"type": "label"},
                "text": {"type": "text-features", "input_dim": 6},
            },
        },
        "stages": stages,
        **overrides,
    }
    path = folder / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def all_stages(epochs: int = 1, batch_size: int = 3) -> list[dict]:
    data = {"type": "manifest", "path": "corpus/manifest.jsonl"}
    return [
        {
            "type": "disentangle",
            "dataset": {"type": "paired", "path": "corpus/manifest.jsonl"},
            "epochs": epochs,
            "batch_size": batch_size,
        },
        {"type": "acm", "dataset": data, "epochs": epochs, "batch_size": batch_size},
        {"type": "fim", "dataset": data, "epochs": epochs, "batch_size": batch_size},
        {"type": "guidance", "dataset": data, "epochs": epochs, "batch_size": batch_size},
    ]


def train_small_bundle(folder: Path, plugin_name: str) -> Path:
    """The training tests' corpus in ``folder``, trained two epochs per stage with the stand-in
    featurizers registered meanwhile; returns the bundle (the inference tests' module fixture)."""
    from medtalk.core.plugins import get_plugin_manager

    (folder / "corpus").mkdir()
    make_corpus(folder / "corpus")
    pm = get_plugin_manager()
    pm.register(StandInPlugin, name=plugin_name)
    try:
        run_training(load_training_config(write_config(folder, all_stages(epochs=2))))
    finally:
        pm.unregister(name=plugin_name)
    return folder / "run" / "bundle"


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "corpus").mkdir()
    make_corpus(tmp_path / "corpus")
    return tmp_path


def stage_weights(run: Path, stage: str) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / f"{stage}.done.pt", weights_only=True)["model"]


def test_all_four_stages_train_in_order_and_leave_a_bundle_and_a_log(workspace):
    config = load_training_config(write_config(workspace, all_stages()))
    result = run_training(config)
    assert result.stages == ["disentangle", "acm", "fim", "guidance"]
    run = workspace / "run"
    card = json.loads((run / "bundle" / "model.json").read_text())
    assert card["rig"] == "metahuman-174" and card["fps"] == 60.0
    assert set(card["metrics"]["final_losses"]) == {"disentangle", "acm", "fim", "guidance"}
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert {(r["stage"], r["phase"]) for r in records} == {
        ("disentangle", "reconstruct"),
        ("disentangle", "content"),
        ("disentangle", "emotion"),
        ("disentangle", "cycle"),
        ("acm", "acm"),
        ("fim", "fim"),
        ("guidance", "guidance"),
    }
    fim = next(r for r in records if r["stage"] == "fim")
    assert {"total", "recon", "sim", "int", "lr"} <= set(fim)
    assert fim["total"] == pytest.approx(fim["recon"] + 0.1 * fim["sim"] + 0.1 * fim["int"], rel=1e-5)
    cycle = next(r for r in records if r["phase"] == "cycle")
    assert {"cycle_1", "cycle_2"} <= set(cycle)


def test_each_stage_trains_only_its_parts(workspace):
    run_training(load_training_config(write_config(workspace, all_stages())))
    run = workspace / "run"
    weights = {stage: stage_weights(run, stage) for stage in ("disentangle", "acm", "fim", "guidance")}

    def changed(before: str, after: str) -> set[str]:
        return {
            key.split(".")[0] + ("." + key.split(".")[1] if key.startswith("guidance.") else "")
            for key in weights[after]
            if not torch.equal(weights[before][key], weights[after][key])
        }

    assert changed("disentangle", "acm") == {"content_mapper"}
    assert changed("acm", "fim") == {"intensity_predictor", "guidance.label", "fusion"}
    assert changed("fim", "guidance") == {"guidance.text", "fusion"}


def test_the_bundle_carries_the_configs_post_processors_and_the_pipeline_applies_them(workspace):
    from medtalk.core.fileio import read_sequence
    from medtalk.core.pipeline import Pipeline
    from medtalk.core.plugins import get_registry

    stages = [{"type": "disentangle", "dataset": {"type": "paired", "path": "corpus/manifest.jsonl"}}]
    stages[0].update(epochs=1, batch_size=3)
    steps = [{"type": "savgol"}, {"type": "clamp"}]
    run_training(load_training_config(write_config(workspace, stages, postprocessors=steps)))
    card = json.loads((workspace / "run" / "bundle" / "model.json").read_text())
    assert card["pipeline"]["postprocessors"] == steps
    postprocessors = Pipeline.from_pretrained(workspace / "run" / "bundle").postprocessors
    assert [type(step).name for step in postprocessors] == ["savgol", "clamp"]
    rig = get_registry("rig").get("metahuman-174")
    take = read_sequence(next((workspace / "corpus").glob("*.txt")))
    clamped = postprocessors[1](take, rig)
    low, high = np.array(rig.ranges, dtype=np.float32).T
    assert ((clamped.values >= low) & (clamped.values <= high)).all()


def test_an_unknown_post_processor_is_refused_when_the_config_is_read(workspace):
    stages = [{"type": "disentangle", "dataset": {"type": "paired", "path": "corpus/manifest.jsonl"}}]
    with pytest.raises(ConfigError) as error:
        load_training_config(write_config(workspace, stages, postprocessors=[{"type": "clamps"}]))
    assert str(error.value) == (
        "unknown postprocessor 'clamps': valid names are clamp, savgol; did you mean 'clamp'?"
    )


def test_a_sample_with_text_and_image_trains_both_projections_and_label_guidance_can_stay_as_it_was(
    workspace,
):
    manifest = workspace / "corpus" / "manifest.jsonl"
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    for number, line in enumerate(lines):
        vector = workspace / "corpus" / f"face_{number}.npy"
        np.save(vector, np.full(4, number / len(lines), dtype=np.float32))
        line["guidance_image"] = vector.name
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    stages = all_stages()
    stages[-1]["train_fusion"] = False
    config = load_training_config(write_config(workspace, stages))
    config.model["guidance_encoders"]["image"] = {"type": "image-features", "input_dim": 4}
    run_training(config)
    run = workspace / "run"
    before, after = stage_weights(run, "fim"), stage_weights(run, "guidance")
    changed = {
        ".".join(key.split(".")[:2]) for key in after if not torch.equal(before[key], after[key])
    }
    assert changed == {"guidance.text", "guidance.image"}


def test_stage_one_reconstruction_improves_with_training(workspace):
    stages = [
        {
            "type": "disentangle",
            "dataset": {"type": "paired", "path": "corpus/manifest.jsonl"},
            "epochs": 12,
            "batch_size": 3,
            "lr": 3e-3,
        }
    ]
    run_training(load_training_config(write_config(workspace, stages)))
    records = [json.loads(line) for line in (workspace / "run" / "log.jsonl").read_text().splitlines()]
    reconstruct = [r["total"] for r in records if r["phase"] == "reconstruct"]
    assert reconstruct[-1] < 0.25 * reconstruct[0]


def test_resume_continues_exactly(workspace, tmp_path):
    stages = all_stages(epochs=2)
    straight = load_training_config(write_config(workspace, stages, output="straight"))
    run_training(straight)
    interrupted = load_training_config(write_config(workspace, stages, output="interrupted"))
    # 8 stage-1 epochs (4 phases x 2), then 3 more: the run stops inside the fim stage.
    run_training(interrupted, stop_after_epochs=11)
    assert not (workspace / "interrupted" / "checkpoints" / "fim.done.pt").exists()
    run_training(interrupted, resume=True)
    for stage in ("disentangle", "acm", "fim", "guidance"):
        a, b = stage_weights(workspace / "straight", stage), stage_weights(workspace / "interrupted", stage)
        assert all(torch.equal(a[key], b[key]) for key in a), stage


def test_an_existing_run_is_not_overwritten_without_resume(workspace):
    config = load_training_config(write_config(workspace, all_stages()[:1]))
    run_training(config)
    with pytest.raises(OutputError) as error:
        run_training(config)
    assert str(error.value) == (
        f"{workspace / 'run'} already holds a run: pass --resume to continue it, or set another output"
    )


def test_a_single_stage_starts_from_the_previous_stages_weights(workspace):
    config = load_training_config(write_config(workspace, all_stages()))
    with pytest.raises(InputError) as error:
        run_training(config, stage="acm")
    assert str(error.value) == (
        f"stage 'acm' starts from the weights of 'disentangle', which has not run in {workspace / 'run'}: "
        "run the stages before it first"
    )
    run_training(config, stage="disentangle")
    result = run_training(config, stage="acm", resume=True)
    assert result.stages == ["disentangle", "acm"]
    with pytest.raises(ConfigError) as error:
        run_training(config, stage="finetune", resume=True)
    assert (
        str(error.value)
        == "the config has no stage 'finetune': its stages are disentangle, acm, fim, guidance"
    )


def test_the_paper_schedule_is_the_default(workspace):
    from medtalk.core.plugins import build

    assert build("trainer", "disentangle").config.model_dump() == {
        "epochs": 10,
        "batch_size": 16,
        "lr": 1e-4,
        "lr_decay": 0.995,
        "lr_step_epochs": 10,
        "grad_accumulation": 1,
        "phase_epochs": None,
    }
    for name in ("acm", "fim", "guidance"):
        config = build("trainer", name).config
        assert (config.lr, config.lr_decay, config.lr_step_epochs) == (1e-3, 0.9, 10)


def test_steplr_decays_every_ten_epochs(workspace):
    stages = [
        {
            "type": "acm",
            "dataset": {"type": "manifest", "path": "corpus/manifest.jsonl"},
            "epochs": 11,
            "batch_size": 9,
            "lr_step_epochs": 10,
        }
    ]
    config = load_training_config(write_config(workspace, [all_stages()[0], *stages]))
    run_training(config)
    rates = {
        r["epoch"]: r["lr"]
        for r in map(json.loads, (workspace / "run" / "log.jsonl").open())
        if r["stage"] == "acm"
    }
    assert rates[0] == pytest.approx(1e-3) and rates[9] == pytest.approx(1e-3)
    assert rates[10] == pytest.approx(1e-3 * 0.9)


def test_bad_configs_give_one_line(workspace):
    path = workspace / "bad.yaml"
    path.write_text("output: run\nmodel: {motion_model: medtalk-autoencoder}\nstages: [{type: acm}]\n")
    with pytest.raises(ConfigError) as error:
        load_training_config(path)
    assert str(error.value) == f"{path}: stage 1 needs a 'type' and a 'dataset': see docs/training.md"
    path.write_text("output: run\nmodel: {}\nstages: []\nepochz: 3\n")
    with pytest.raises(ConfigError) as error:
        load_training_config(path)
    assert str(error.value).startswith(f"invalid config for {path}: unknown field 'epochz'")


def test_train_command_end_to_end(workspace, capsys):
    from medtalk.cli import run_cli

    config = write_config(workspace, all_stages()[:2])
    assert run_cli(["train", str(config)]) == 0
    out = capsys.readouterr()
    assert f"wrote {workspace / 'run' / 'bundle'} (disentangle, acm)" in out.out
    assert run_cli(["train", str(config)]) == 2
    assert capsys.readouterr().err == (
        f"error: {workspace / 'run'} already holds a run: "
        "pass --resume to continue it, or set another output\n"
    )
    assert run_cli(["train", str(config), "--device", "tpu"]) == 2


def test_ddp_under_torchrun_with_gloo(workspace):
    """Two processes share each epoch; the result is one consistent bundle written by rank 0."""
    data = {"type": "manifest", "path": "corpus/manifest.jsonl"}
    stages = [
        {
            "type": "disentangle",
            "dataset": {"type": "paired", "path": "corpus/manifest.jsonl"},
            "epochs": 1,
            "batch_size": 2,
        },
        {"type": "acm", "dataset": data, "epochs": 4, "batch_size": 2, "lr": 3e-3},
    ]
    config = write_config(
        workspace,
        stages,
        features={"content": {"type": "logmel"}},
        model={
            "motion_model": {"type": "medtalk-autoencoder"},
            "content_mapper": {"type": "temporal-conv", "input_dim": 80},
        },
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29533",
        "-m",
        "medtalk",
        "train",
        str(config),
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in (workspace / "run" / "log.jsonl").read_text().splitlines()]
    # 9 samples in batches of 2 on 2 ranks: 2 full batches per rank per epoch; rank 0 logs its own.
    assert sum(1 for r in records if r["stage"] == "acm") == 2 * 4
    acm = epoch_means(workspace / "run")[("acm", "acm")]
    assert acm[-1] < acm[0], acm
    assert (workspace / "run" / "bundle" / "model.safetensors").exists()


def epoch_means(run: Path) -> dict[tuple[str, str], list[float]]:
    """Mean total loss per epoch, by (stage, phase)."""
    sums: dict[tuple[str, str, int], list[float]] = {}
    for record in map(json.loads, (run / "log.jsonl").read_text().splitlines()):
        sums.setdefault((record["stage"], record["phase"], record["epoch"]), []).append(record["total"])
    means: dict[tuple[str, str], list[float]] = {}
    for (stage, phase, _), totals in sorted(sums.items()):
        means.setdefault((stage, phase), []).append(sum(totals) / len(totals))
    return means


def test_every_stage_loss_falls_and_stage_one_reconstructs_within_ten_percent_of_the_variance(workspace):
    stages = all_stages(epochs=6, batch_size=3)
    stages[0]["lr"] = 1e-3
    for stage in stages[1:]:
        stage["lr"] = 3e-3
    run_training(load_training_config(write_config(workspace, stages)))
    for (stage, phase), means in epoch_means(workspace / "run").items():
        assert means[-1] < means[0], (stage, phase, means)

    from medtalk.core.model.modules import MedtalkModel
    from medtalk.plugins.datasets import read_manifest

    config = load_training_config(workspace / "train.yaml")
    model = MedtalkModel.from_config(config.model)
    model.load_state_dict(stage_weights(workspace / "run", "disentangle"))
    samples = read_manifest(workspace / "corpus" / "manifest.jsonl", "metahuman-174", 60.0)
    rigs = [torch.tensor(sample.rig) for _, sample in samples]
    with torch.no_grad():
        errors = [((model.motion(r[None])[0] - r) ** 2).mean() for r in rigs]
    variance = torch.cat(rigs).var()
    assert float(torch.stack(errors).mean()) < 0.1 * float(variance)
