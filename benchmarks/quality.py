"""How good is a model's animation? The figures of the embedded-model issue, for any model.

Usage: python benchmarks/quality.py [--model embedded] [--heldout DIR] [--utterances 12] [--json]

1. The real clip (../shared/data/real, Mandarin, acted angry): MLE, MEE, EIE, FRD, in L1 and squared
   variants, of the model with label:angry against the captured curves, beside two baselines computed the
   same way: the clip's own mean pose (a constant that knows the answer's average) and all zeros.
2. Held-out synthesized speech (`medtalk data synth --holdout`: sentences and voices never used in
   training): MLE against the teacher's rendering of the same utterance and label, and the bilabial
   closure rate: the share of p/b/m phones, timed by forced alignment (pocketsphinx-align on the
   transcript), at which the lips are closed (``medtalk.teacher.lips_closed``).
3. Swap test: the same audio under two labels; the mean change of the upper-face controls over the mean
   change of the lip controls.
   With it, the jitter of the lip controls on the real clip, beside the captured clip's own.

The held-out corpus is synthesized into a temporary folder unless --heldout names one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "emoface_validation"
REAL_CLIP = "angry_gd04_001_021"
REAL_TRANSCRIPT = "慢慢的，王妃才开始信任我。"
METRICS = ("mle", "mee", "eie", "frd", "mle-mse", "mee-mse", "eie-mse")
SWAP_PAIRS = (("angry", "happy"), ("sad", "surprise"), ("neutral", "disgust"), ("fear", "happy"))
HELDOUT_EMOTIONS = ("neutral", "angry", "happy", "sad")


def real_clip_figures(animate) -> dict:
    import numpy as np

    from medtalk.core.evaluation import evaluate
    from medtalk.core.fileio import read_sequence
    from medtalk.core.sequence import RigSequence

    truth = read_sequence(REAL / f"{REAL_CLIP}.txt")
    start = time.perf_counter()
    predicted = animate(str(REAL / f"{REAL_CLIP}.wav"), guidance="label:angry", transcript=REAL_TRANSCRIPT)
    seconds = time.perf_counter() - start
    mean_pose = np.repeat(truth.values.mean(axis=0, keepdims=True), truth.num_frames, axis=0)
    rows = {
        "model": predicted,
        "mean pose (baseline)": RigSequence(mean_pose, fps=truth.fps, rig=truth.rig),
        "zeros (baseline)": RigSequence(np.zeros_like(truth.values), fps=truth.fps, rig=truth.rig),
    }
    table = {name: evaluate(seq, truth, list(METRICS))["metrics"] for name, seq in rows.items()}
    jitter = evaluate(predicted, truth, ["jitter"])
    return {
        "table": table,
        "lip_jitter": jitter["metrics"]["jitter"],
        "real_lip_jitter": jitter["reference"]["jitter"],
        "seconds": seconds,
    }


def heldout_corpus(folder: Path | None, utterances: int, work: Path) -> Path:
    if folder is not None:
        return folder
    from medtalk.synth.corpus import CorpusSettings, open_corpus

    target = work / "heldout"
    writer = open_corpus(target, utterances, CorpusSettings(seed=2026, holdout=True))
    for _ in writer.run():
        pass
    return target


def heldout_figures(animate, corpus: Path) -> dict:
    import numpy as np

    from medtalk.core.audio import load_audio
    from medtalk.core.evaluation import evaluate
    from medtalk.core.fileio import read_sequence
    from medtalk.core.plugins import build, get_registry
    from medtalk.core.types import Phone
    from medtalk.teacher import bilabial_closure_rate

    rig = get_registry("rig").get("metahuman-174")
    aligner = build("transcriber", {"type": "pocketsphinx-align"})
    lines = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines() if line]
    records = [json.loads(line) for line in (corpus / "utterances.jsonl").read_text().splitlines() if line]
    exact_phones = {r["utterance"]: tuple(Phone(*phone) for phone in r["phones"]) for r in records}
    by_utterance: dict[str, dict[str, dict]] = {}
    for line in lines:
        by_utterance.setdefault(line["utterance"], {})[line["emotion"]] = line
    mle, closure_model, closure_teacher, closure_exact, swaps = [], [], [], [], []
    bilabials = aligned = 0
    for renderings in by_utterance.values():
        first = next(iter(renderings.values()))
        audio = load_audio(corpus / first["audio"])
        transcript = first["transcript"]
        try:
            phones = aligner(audio, transcript).phones
        except Exception as error:  # an utterance the aligner cannot time is reported, not fatal
            print(f"  alignment failed for {first['utterance']}: {error}", file=sys.stderr)
            phones = ()
        predictions = {}
        for emotion in sorted(set(HELDOUT_EMOTIONS) | {e for pair in SWAP_PAIRS for e in pair}):
            predictions[emotion] = animate(audio, guidance=f"label:{emotion}", transcript=transcript)
        for emotion in HELDOUT_EMOTIONS:
            truth = read_sequence(corpus / renderings[emotion]["rig"])
            mle.append(evaluate(predictions[emotion], truth, ["mle"])["metrics"]["mle"])
            if phones:
                closure_model.append(bilabial_closure_rate(predictions[emotion].values, phones, 60.0, rig))
                closure_teacher.append(bilabial_closure_rate(truth.values, phones, 60.0, rig))
            exact = exact_phones[first["utterance"]]
            closure_exact.append(bilabial_closure_rate(predictions[emotion].values, exact, 60.0, rig))
        aligned += bool(phones)
        bilabials += sum(p.symbol in ("P", "B", "M") for p in phones)
        for a, b in SWAP_PAIRS:
            change = np.abs(predictions[a].values - predictions[b].values)
            upper = change[:, list(rig.sets["upper"])].mean()
            lip = change[:, list(rig.sets["lip"])].mean()
            swaps.append((upper, lip))

    def mean_of_known(rates: list[float]) -> float:
        known = [rate for rate in rates if rate == rate]  # nan: no p/b/m in that utterance
        return float(np.mean(known)) if known else float("nan")

    upper, lip = (float(np.mean(column)) for column in zip(*swaps, strict=True))
    return {
        "utterances": len(by_utterance),
        "mle_vs_teacher": float(np.mean(mle)),
        "bilabial_phones": bilabials,
        "bilabial_closure_model": mean_of_known(closure_model),
        "bilabial_closure_teacher": mean_of_known(closure_teacher),
        "aligned_utterances": aligned,
        "bilabial_closure_model_exact_times": mean_of_known(closure_exact),
        "swap_upper_change": upper,
        "swap_lip_change": lip,
        "swap_ratio": upper / lip if lip > 0 else float("inf"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="model name or bundle folder (default embedded)")
    parser.add_argument("--heldout", type=Path, help="a corpus made with 'medtalk data synth --holdout'")
    parser.add_argument("--utterances", type=int, default=12, help="held-out utterances to synthesize")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    from medtalk.core.errors import MedtalkError
    from medtalk.core.pipeline import Pipeline

    animate = Pipeline.from_pretrained(args.model)

    with tempfile.TemporaryDirectory() as work:
        try:
            real = real_clip_figures(animate)
        except MedtalkError as error:  # the teacher cannot time Mandarin phones, for one
            real = {"error": str(error)}
        corpus = heldout_corpus(args.heldout, args.utterances, Path(work))
        heldout = heldout_figures(animate, corpus)
    if args.json:
        print(json.dumps({"model": args.model, "real": real, "heldout": heldout}, indent=2))
        return 0

    print(f"model: {args.model}")
    print(f"\n1. real clip {REAL_CLIP} (Mandarin, angry), label:angry; lower is better")
    if "error" in real:
        print(f"  the model cannot animate it: {real['error']}")
    else:
        print_real_clip(real)
    print(f"\n2. held-out synthesized speech: {heldout['utterances']} utterances x "
          f"{len(HELDOUT_EMOTIONS)} labels")
    print(f"  MLE against the teacher: {heldout['mle_vs_teacher']:.4f}")
    print(f"  bilabial closure ({heldout['bilabial_phones']} p/b/m by forced alignment): model "
          f"{heldout['bilabial_closure_model']:.1%}, teacher {heldout['bilabial_closure_teacher']:.1%} "
          f"(target >= 80%); {heldout['aligned_utterances']} of {heldout['utterances']} utterances aligned")
    print(f"  bilabial closure at the synthesizer's exact phone times, every utterance: model "
          f"{heldout['bilabial_closure_model_exact_times']:.1%}")
    print(f"\n3. swap test ({', '.join('/'.join(p) for p in SWAP_PAIRS)}): upper-face change "
          f"{heldout['swap_upper_change']:.4f}, lip change {heldout['swap_lip_change']:.4f}, ratio "
          f"{heldout['swap_ratio']:.1f} (target >= 5)")
    return 0


def print_real_clip(real: dict) -> None:
    print(f"{'':24}" + "".join(f"{m:>10}" for m in METRICS))
    for name, values in real["table"].items():
        print(f"{name:24}" + "".join(f"{values[m]:>10.4f}" for m in METRICS))
    model, mean_pose = real["table"]["model"], real["table"]["mean pose (baseline)"]
    for metric in ("mle", "eie"):
        verdict = "beats" if model[metric] < mean_pose[metric] else "does not beat"
        print(f"  {metric}: the model {verdict} the mean-pose baseline ({model[metric]:.4f} vs "
              f"{mean_pose[metric]:.4f})")
    ratio = real["lip_jitter"] / real["real_lip_jitter"]
    print(f"  lip jitter: model {real['lip_jitter']:.5f}, captured {real['real_lip_jitter']:.5f}, "
          f"ratio {ratio:.2f} (target <= 1.5)")


if __name__ == "__main__":
    sys.exit(main())
