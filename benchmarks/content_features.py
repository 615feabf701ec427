"""Which content features should the embedded model hear with? Held-out lip error and speed of each.

Usage: python benchmarks/content_features.py --motion RUN --corpus CORPUS --heldout HELDOUT
                                             [--utterances 150] [--epochs 8]

RUN is a training run whose `disentangle` stage is done (its motion autoencoder is shared by every
candidate, so only the content path differs). For each candidate (content featurizer + ACM) the ACM is
trained on the first --utterances utterances of CORPUS with the paper's ACM loss, then the lips are
decoded on the held-out corpus (other sentences, other voices) from the candidate's content embedding and
the emotion embedding of the teacher's own take, E_e(R): what differs is only how well the content path
hears the speech. Printed: held-out lip error (MLE, L1 over S_lip), featurization real-time factor,
ACM training time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

CANDIDATES = {
    "logmel": (
        {"type": "logmel"},
        {"type": "temporal-conv", "input_dim": 80, "window": 9, "layers": 3},
    ),
    "whisper-encoder": (
        {"type": "whisper-encoder"},
        {"type": "mlp", "input_dim": 384},
    ),
}


def subset_manifest(corpus: Path, utterances: int, target: Path) -> Path:
    lines = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines() if line]
    keep = sorted({line["utterance"] for line in lines})[:utterances]
    chosen = []
    for line in lines:
        if line["utterance"] in keep:
            for key in ("audio", "rig", "guidance_image"):
                if line.get(key):
                    line[key] = str((corpus / line[key]).resolve())
            chosen.append(line)
    target.write_text("".join(json.dumps(line) + "\n" for line in chosen))
    return target


def train_candidate(
    name: str, motion_run: Path, manifest: Path, work: Path, epochs: int, cache: Path
) -> tuple[Path, float]:
    import torch
    import yaml

    from medtalk.core.model.modules import MedtalkModel
    from medtalk.core.training import CHECKPOINT_FORMAT, load_training_config, run_training

    featurizer, mapper = CANDIDATES[name]
    model = {"motion_model": {"type": "medtalk-autoencoder"}, "content_mapper": mapper}
    config = {
        "output": name,
        "cache": str(cache.resolve()),
        "seed": 0,
        "features": {"content": featurizer},
        "model": model,
        "stages": [
            {"type": "disentangle", "dataset": {"type": "paired", "path": str(manifest)}, "epochs": 0},
            {"type": "acm", "dataset": {"type": "manifest", "path": str(manifest)}, "epochs": epochs},
        ],
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    # The shared motion autoencoder stands in for this run's stage 1.
    trained = torch.load(motion_run / "checkpoints" / "disentangle.done.pt", weights_only=True)["model"]
    fresh = MedtalkModel.from_config(model).state_dict()
    fresh.update({key: value for key, value in trained.items() if key.startswith("motion.")})
    checkpoints = work / name / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save({"format": CHECKPOINT_FORMAT, "model": fresh}, checkpoints / "disentangle.done.pt")
    start = time.perf_counter()
    # resume: the run folder already holds the stand-in stage 1, which a fresh run would refuse to overwrite.
    result = run_training(load_training_config(path), stage="acm", resume=True)
    return result.bundle, time.perf_counter() - start


def heldout_lip_error(name: str, bundle: Path, heldout: Path) -> tuple[float, float]:
    import numpy as np
    import torch

    from medtalk.core.audio import load_audio
    from medtalk.core.data.batching import interpolate_to_frames
    from medtalk.core.fileio import read_sequence
    from medtalk.core.model.bundle import load_bundle
    from medtalk.core.plugins import build, get_registry

    model, _ = load_bundle(bundle)
    featurizer = build("featurizer", CANDIDATES[name][0])
    lips = list(get_registry("rig").get("metahuman-174").sets["lip"])
    errors, seconds, audio_seconds = [], 0.0, 0.0
    lines = [json.loads(line) for line in (heldout / "manifest.jsonl").read_text().splitlines() if line]
    featurizer(load_audio(heldout / lines[0]["audio"]))  # load the model before timing
    features_of: dict[str, np.ndarray] = {}
    for line in lines:
        if line["audio"] not in features_of:
            audio = load_audio(heldout / line["audio"])
            start = time.perf_counter()
            features = featurizer(audio)
            seconds += time.perf_counter() - start
            audio_seconds += audio.duration
            features_of[line["audio"]] = features
        truth = read_sequence(heldout / line["rig"]).values
        features = features_of[line["audio"]]
        content = interpolate_to_frames(features.values, features.rate_hz, len(truth), 60.0)
        with torch.no_grad():
            rig = torch.from_numpy(np.ascontiguousarray(truth))[None]
            emotion = model.motion.encode_emotion(rig)
            predicted = model.motion.decode(emotion, model.content_mapper(torch.from_numpy(content)[None]))
        errors.append(float(np.abs(predicted[0].numpy()[:, lips] - truth[:, lips]).mean()))
    return float(np.mean(errors)), seconds / audio_seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--motion", type=Path, required=True, help="a run with its disentangle stage done")
    parser.add_argument("--corpus", type=Path, required=True, help="the training corpus")
    parser.add_argument("--heldout", type=Path, required=True, help="held-out corpus (data synth --holdout)")
    parser.add_argument("--utterances", type=int, default=150, help="training utterances per candidate")
    parser.add_argument("--epochs", type=int, default=8, help="ACM epochs per candidate")
    parser.add_argument("--only", nargs="*", choices=sorted(CANDIDATES), help="candidates to run")
    parser.add_argument("--cache", type=Path, help="feature cache folder to share (default: a temporary one)")
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        manifest = subset_manifest(args.corpus, args.utterances, work / "train.jsonl")
        for name in args.only or CANDIDATES:
            cache = args.cache or work / "cache"
            bundle, train_seconds = train_candidate(name, args.motion, manifest, work, args.epochs, cache)
            mle, rtf = heldout_lip_error(name, bundle, args.heldout)
            rows.append((name, mle, rtf, train_seconds))
            print(f"{name}: held-out lip MLE {mle:.4f}, featurize RTF {rtf:.3f}, "
                  f"ACM training {train_seconds:.0f} s", file=sys.stderr)
    print(f"{'content features':18}{'held-out MLE':>14}{'featurize RTF':>15}{'ACM train s':>13}")
    for name, mle, rtf, seconds in rows:
        print(f"{name:18}{mle:>14.4f}{rtf:>15.3f}{seconds:>13.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
