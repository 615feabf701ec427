"""Training speed on this machine's CPU: seconds per epoch of each stage on 200 clips of 3 s.

The corpus is synthetic (made here, seed 0): 40 utterances x 5 emotions, 180 frames of 174 controls
each (a content pattern on the lip controls plus an emotion offset on the brows), with a tone as the
audio. Content features are the built-in logmel; the emotion features and the text encoder are small
stand-ins registered by this script (the real ones come with the backends issue), so the figures
measure medtalk's training loop and model, not a particular encoder.

Prints seconds per epoch per stage (the first epoch of a stage also fills the feature cache: shown
separately), the stage-1 reconstruction MSE relative to the data's variance, and, when available, the
disentanglement numbers of ``medtalk eval --disentanglement``.

    .venv/bin/python benchmarks/train_epoch.py [--epochs 2] [--keep FOLDER]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import soundfile
import yaml

from medtalk import hookimpl
from medtalk.core.components import ComponentConfig, Featurizer, TextEncoder
from medtalk.core.plugins import get_plugin_manager
from medtalk.core.training import load_training_config, run_training
from medtalk.core.types import FeatureSeq, TextEncoding

EMOTIONS = ("angry", "happy", "neutral", "sad", "surprise")
UTTERANCES = 40
FRAMES = 180


class EnergyFeaturizer(Featurizer):
    """Stand-in emotion features: frame energy and zero-crossing rate at 50 Hz."""

    name = "bench-energy"
    role = "emotion"
    Config = ComponentConfig
    dim = 2
    rate_hz = 50.0

    def __call__(self, audio):
        frames = audio.samples[: len(audio.samples) // 320 * 320].reshape(-1, 320)
        energy = np.sqrt((frames**2).mean(axis=1))
        crossings = (np.diff(np.sign(frames), axis=1) != 0).mean(axis=1)
        return FeatureSeq(np.stack([energy, crossings], axis=1).astype(np.float32), 50.0)


class WordHashEncoder(TextEncoder):
    """Stand-in text encoder: a fixed random 32-d vector per word."""

    name = "bench-words"
    dim = 32

    def __call__(self, text):
        words = text.lower().split() or [""]
        tokens = np.stack(
            [np.random.default_rng(zlib.crc32(w.encode())).standard_normal(32) for w in words]
        ).astype(np.float32)
        return TextEncoding(tokens, tokens.mean(axis=0))


class StandIns:
    @staticmethod
    @hookimpl
    def register_featurizers(register):
        register(EnergyFeaturizer)

    @staticmethod
    @hookimpl
    def register_text_encoders(register):
        register(WordHashEncoder)


def make_corpus(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(FRAMES) / 60.0
    lines = []
    for u in range(UTTERANCES):
        content = np.zeros((FRAMES, 174), dtype=np.float32)
        phases = rng.uniform(0, 2 * np.pi, 10)
        content[:, 3:13] = 0.3 + 0.2 * np.sin(2 * np.pi * (2 + u % 5) * t[:, None] + phases)
        content[:, 46:92] = 0.1 * np.sin(2 * np.pi * (3 + u % 7) * t[:, None] + rng.uniform(0, 6, 46))
        samples = np.arange(3 * 16000) / 16000
        tone = (
            0.3 * np.sin(2 * np.pi * (150 + 5 * u) * samples) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * samples))
        )
        audio = folder / f"u{u}.wav"
        soundfile.write(audio, tone.astype(np.float32), 16000)
        for e, emotion in enumerate(EMOTIONS):
            rig = content.copy()
            rig[:, 29:45] += 0.15 * (e + 1) * (0.8 + 0.2 * np.sin(2 * np.pi * 0.5 * t))[:, None]
            rig += rng.normal(0, 0.005, rig.shape).astype(np.float32)
            path = folder / f"{emotion}_u{u}.txt"
            np.savetxt(path, rig, delimiter=",", fmt="%.6f")
            lines.append(
                {
                    "id": f"{emotion}_u{u}",
                    "utterance": f"u{u}",
                    "emotion": emotion,
                    "audio": audio.name,
                    "rig": path.name,
                    "transcript": f"sentence {u} spoken {emotion}",
                    "guidance_text": f"{emotion}",
                }
            )
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per stage (per phase for stage 1)")
    parser.add_argument("--keep", type=Path, help="keep the corpus and the run in this folder")
    args = parser.parse_args()
    get_plugin_manager().register(StandIns, name="benchmark-stand-ins")
    root = args.keep or Path(tempfile.mkdtemp(prefix="medtalk-bench-"))
    (root / "corpus").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    make_corpus(root / "corpus")
    print(
        f"corpus: {UTTERANCES * len(EMOTIONS)} clips x {FRAMES / 60:.0f} s "
        f"in {time.perf_counter() - started:.1f} s"
    )
    data = {"type": "manifest", "path": "corpus/manifest.jsonl"}
    options = {"epochs": args.epochs, "batch_size": 16}
    config = {
        "output": "run",
        "features": {
            "content": {"type": "logmel"},
            "emotion": {"type": "bench-energy"},
            "text": {"type": "bench-words"},
            "guidance_text": {"type": "bench-words"},
        },
        "model": {
            "motion_model": {"type": "medtalk-autoencoder"},
            "content_mapper": {"type": "temporal-conv", "input_dim": 80},
            "intensity_predictor": {"type": "cmf", "emotion_dim": 2, "text_dim": 32},
            "guidance_encoders": {
                "label": {"type": "label"},
                "text": {"type": "text-features", "input_dim": 32},
            },
        },
        "stages": [
            {
                "type": "disentangle",
                "dataset": {"type": "paired", "path": "corpus/manifest.jsonl"},
                **options,
            },
            {"type": "acm", "dataset": data, **options},
            {"type": "fim", "dataset": data, **options},
            {"type": "guidance", "dataset": data, **options},
        ],
    }
    (root / "train.yaml").write_text(yaml.safe_dump(config))
    epoch_times: dict[tuple[str, str], list[float]] = {}
    last = [time.perf_counter()]

    def on_step(report) -> None:
        if report.step == report.steps_per_epoch:
            now = time.perf_counter()
            epoch_times.setdefault((report.stage, report.phase), []).append(now - last[0])
            last[0] = now

    run_config = load_training_config(root / "train.yaml")
    started = time.perf_counter()
    run_training(run_config, on_step=on_step)
    total = time.perf_counter() - started
    print(
        f"training: {total:.1f} s in all ({args.epochs} epochs per stage/phase, batch 16, "
        f"{torch_threads()} threads)"
    )
    print(f"{'stage/phase':<24}{'first epoch':>12}{'later epochs':>14}")
    for (stage, phase), times in epoch_times.items():
        later = f"{np.mean(times[1:]):.2f} s" if len(times) > 1 else "-"
        print(f"{stage + '/' + phase:<24}{times[0]:>10.2f} s{later:>14}")
    print(
        "(the first epoch of disentangle includes loading the corpus and building the model; the first "
        "of acm and fim includes computing the features into the cache)"
    )
    report_reconstruction(root, run_config)
    report_disentanglement(root)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def report_reconstruction(root: Path, config) -> None:
    import torch

    from medtalk.core.model.modules import MedtalkModel
    from medtalk.plugins.datasets import read_manifest

    model = MedtalkModel.from_config(config.model)
    state = torch.load(root / "run" / "checkpoints" / "disentangle.done.pt", weights_only=True)["model"]
    model.load_state_dict(state)
    rigs = [
        torch.tensor(s.rig)
        for _, s in read_manifest(root / "corpus" / "manifest.jsonl", "metahuman-174", 60.0)
    ]
    with torch.no_grad():
        mse = float(torch.stack([((model.motion(r[None])[0] - r) ** 2).mean() for r in rigs]).mean())
    variance = float(torch.cat(rigs).var())
    print(
        f"stage-1 reconstruction MSE: {mse:.3e} "
        f"({100 * mse / variance:.2f}% of the data variance {variance:.3e})"
    )


def report_disentanglement(root: Path) -> None:
    try:
        from medtalk.core.evaluation import evaluate_disentanglement
    except ImportError:
        print("disentanglement: not available in this version")
        return
    result = evaluate_disentanglement(root / "run" / "bundle", root / "corpus" / "manifest.jsonl")
    print("disentanglement:", json.dumps(result, indent=None, default=str))


if __name__ == "__main__":
    main()
