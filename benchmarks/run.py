"""Speed and memory of `medtalk run`: cold start, warm real-time factor, peak RSS.

- cold: `medtalk run examples/speech.wav --guidance label:happy` (3.4 s of speech) in a new process,
  from process start to the output file written, median of 3; with the speech recogniser (no
  --transcript) and without it (--transcript). Peak RSS of each process.
- warm: one process loads the pipeline, animates the example once per path (every part loaded), then
  times a 60 s clip (the example speech repeated); real-time factor = seconds of work per second of
  audio, without ASR (transcript given) and with it. Peak RSS of that process.

Targets (issue 6, on the 2-core development machine): cold <= 6 s; warm RTF <= 0.05 without ASR and
<= 0.3 with it; peak RSS <= 1.5 GB.

    .venv/bin/python benchmarks/run.py                      # the embedded model
    .venv/bin/python benchmarks/run.py --model runs/x/bundle
    .venv/bin/python benchmarks/run.py --untrained          # an untrained bundle made from
                                                            # configs/embedded.yaml (or --untrained X.yaml)

Speed does not depend on the weights, so ``--untrained`` measures the embedded model's configuration
before it is trained.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "speech.wav"
EXAMPLE_TEXT = (ROOT / "examples" / "speech.txt").read_text(encoding="utf-8").strip()
GUIDANCE = "label:happy"
TARGETS = {"cold_s": 6.0, "rtf": 0.05, "rtf_asr": 0.3, "rss_mb": 1536.0}


def untrained_bundle(folder: Path, config: Path) -> Path:
    """An untrained bundle with the model and features of a training ``config`` (configs/embedded.yaml):
    the same parts and sizes, so the same speed, before any training."""
    import torch
    import yaml

    from medtalk.core.model.bundle import save_bundle
    from medtalk.core.model.modules import MedtalkModel

    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    torch.manual_seed(0)
    model = MedtalkModel.from_config(document["model"])
    pipeline = {
        "rig": document.get("rig", "metahuman-174"),
        "fps": float(document.get("fps", 60.0)),
        "features": document.get("features", {}),
    }
    card = {"pipeline": pipeline, "note": f"untrained, from {config.name}, for benchmarks/run.py only"}
    return save_bundle(folder / f"untrained-{config.stem}", model, card)


def cold(model: str, transcript: bool, workdir: Path) -> dict[str, float]:
    """One `medtalk run` in a fresh process: seconds to the file written, to exit, and peak RSS."""
    output = workdir / "cold.txt"
    argv = [sys.executable, "-m", "medtalk", "run", str(EXAMPLE), "-g", GUIDANCE, "-m", model]
    argv += ["-o", str(output), "--force"] + (["--transcript", EXAMPLE_TEXT] if transcript else [])
    started = time.time()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir)
    _, status, usage = os.wait4(process.pid, 0)
    ended = time.time()
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"medtalk run failed: {stderr.strip()}")
    return {
        "written_s": output.stat().st_mtime - started,
        "exit_s": ended - started,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
    }


SENTENCES = (
    "The train to the coast leaves at seven, so pack your bags tonight.",
    "I can't believe you ate the last slice of my birthday cake!",
    "Please turn left at the old bakery and park behind the blue van.",
    "Honestly, that was the most boring meeting of the entire year.",
    "We found a tiny kitten hiding under the porch this morning.",
    "Stop shouting at me, I heard you the first time.",
    "The museum opens a new exhibit about deep sea creatures next week.",
    "My grandmother still writes letters by hand every Sunday.",
    "Wow, you actually fixed the printer without calling anyone.",
    "If the storm gets worse, the school might close tomorrow.",
    "He whispered the answer, but nobody in the back could hear it.",
    "Bring a warm jacket because the mountain gets cold at night.",
    "That movie was so sad that I cried during the ending.",
    "Our neighbours painted their fence a very bright shade of pink.",
    "Could you check whether the bakery still has fresh bread?",
    "I'm terrified of spiders, so please take that one outside.",
    "The quarterly numbers look much better than we expected.",
    "She laughed so hard that she almost fell off her chair.",
    "Remember to water the tomatoes before you leave for work.",
    "Nobody told me the party was cancelled, so I showed up alone.",
)


def long_clip(seconds: float, folder: Path) -> tuple[Path, str]:
    """A ``seconds`` long clip of varied sentences (piper's joe voice) with 0.3 s pauses, and its words.

    Varied, because Whisper decodes a repeated sentence again and again (its repetition check), which
    would measure that instead of speech. Without the synth extra, the example speech is repeated.
    """
    import numpy as np
    import soundfile

    from medtalk.core.audio import audio_from_array, load_audio
    from medtalk.core.errors import ConfigError

    pieces, words, total = [], [], 0.0
    try:
        from medtalk.synth.speech import speak

        for index in range(1000):
            text = SENTENCES[index % len(SENTENCES)]
            speech = speak(text, engine="piper", seed=index)
            audio = audio_from_array(speech.samples, speech.sample_rate)
            pieces.append(audio.samples)
            words.append(text)
            total += audio.duration + 0.3
            if total >= seconds:
                break
    except (ImportError, ConfigError):
        print("(no synth extra: the warm clip repeats the example speech)")
        example = load_audio(EXAMPLE)
        while total < seconds:
            pieces.append(example.samples)
            words.append(EXAMPLE_TEXT)
            total += example.duration + 0.3
    pause = np.zeros(int(0.3 * 16000), dtype=np.float32)
    samples = np.concatenate([np.concatenate([piece, pause]) for piece in pieces])[: int(seconds * 16000)]
    wav = folder / "long.wav"
    soundfile.write(wav, samples, 16000, subtype="PCM_16")
    return wav, " ".join(words)


def warm(model: str, clip: Path, words: str, runs: int) -> dict[str, float]:
    """In this process: load, animate once per path, then time the clip (the worker)."""
    import resource

    from medtalk.core.audio import load_audio
    from medtalk.core.pipeline import Pipeline

    started = time.perf_counter()
    pipeline = Pipeline.from_pretrained(model)
    example = load_audio(EXAMPLE)
    pipeline(example, GUIDANCE, EXAMPLE_TEXT)
    pipeline(example, GUIDANCE)  # loads the recogniser
    load_s = time.perf_counter() - started
    audio = load_audio(clip)
    result = {"load_and_first_calls_s": load_s, "clip_s": audio.duration}
    for name, transcript in (("rtf", words), ("rtf_asr", None)):
        times = []
        for _ in range(runs):
            begun = time.perf_counter()
            pipeline(audio, GUIDANCE, transcript)
            times.append(time.perf_counter() - begun)
        result[name] = statistics.median(times) / audio.duration
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="model name or bundle folder (default embedded)")
    parser.add_argument(
        "--untrained",
        nargs="?",
        type=Path,
        const=ROOT / "configs" / "embedded.yaml",
        metavar="CONFIG",
        help="benchmark an untrained bundle with the model and features of this training config "
        "(default configs/embedded.yaml)",
    )
    parser.add_argument("--runs", type=int, default=3, help="cold runs per case (median)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the warm clip")
    parser.add_argument("--warm-runs", type=int, default=1, help="timed warm calls per case (median)")
    parser.add_argument("--worker", nargs=2, metavar=("CLIP", "WORDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        clip, words = args.worker
        print(json.dumps(warm(args.model, Path(clip), Path(words).read_text(), args.warm_runs)))
        return
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        model = str(untrained_bundle(workdir, args.untrained)) if args.untrained else args.model
        print(f"model: {model}; clip: {EXAMPLE.name} ({EXAMPLE_TEXT!r}); guidance {GUIDANCE}")
        # Other work on the machine slows every figure: say how busy it was.
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        for transcript in (True, False):
            label = "cold, --transcript (no ASR)" if transcript else "cold, ASR"
            results = [cold(model, transcript, workdir) for _ in range(args.runs)]
            written = statistics.median(r["written_s"] for r in results)
            runs = ", ".join(f"{r['written_s']:.2f}" for r in results)
            rss = max(r["rss_mb"] for r in results)
            cpu = statistics.median(r["cpu_s"] for r in results)
            verdict = "met" if written <= TARGETS["cold_s"] else "MISSED"
            print(
                f"{label:<28} {written:.2f} s to the file written (median; runs {runs}), "
                f"CPU {cpu:.2f} s, peak RSS {rss:.0f} MB   target <= {TARGETS['cold_s']:g} s: {verdict}"
            )
        clip, words = long_clip(args.seconds, workdir)
        (workdir / "long.txt").write_text(words, encoding="utf-8")
        argv = [sys.executable, __file__, "--worker", str(clip), str(workdir / "long.txt")]
        argv += ["--model", model, "--warm-runs", str(args.warm_runs)]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        out = process.stdout.read().decode() if process.stdout else ""
        if os.waitstatus_to_exitcode(status) != 0:
            err = process.stderr.read().decode() if process.stderr else ""
            raise SystemExit(f"warm worker failed: {err.strip()[-2000:]}")
        result = json.loads(out.strip().splitlines()[-1])
    seconds = result["clip_s"]
    print(f"warm: load + first calls {result['load_and_first_calls_s']:.2f} s; clip {seconds:.1f} s")
    for name, label in (("rtf", "without ASR"), ("rtf_asr", "with ASR")):
        verdict = "met" if result[name] <= TARGETS[name] else "MISSED"
        print(
            f"warm RTF {label:<12} {result[name]:.4f} ({result[name] * seconds:.2f} s for {seconds:.0f} s)   "
            f"target <= {TARGETS[name]:g}: {verdict}"
        )
    rss = max(result["rss_mb"], usage.ru_maxrss / 1024)
    verdict = "met" if rss <= TARGETS["rss_mb"] else "MISSED"
    print(f"peak RSS (warm process) {rss:.0f} MB   target <= {TARGETS['rss_mb']:.0f} MB: {verdict}")


if __name__ == "__main__":
    main()
