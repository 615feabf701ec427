#!/usr/bin/env bash
# Rebuild the embedded default model from nothing: synthesize the corpus with the procedural teacher,
# train the four stages of configs/embedded.yaml, and put the bundle into the package
# (medtalk/data/models/embedded). docs/model-card.md gives the times and figures of the shipped one.
#   bash scripts/train_embedded.sh             # from scratch (refuses to overwrite an earlier run)
#   bash scripts/train_embedded.sh --resume    # continue an interrupted run
set -euo pipefail
cd "$(dirname "$0")/.."
medtalk=.venv/bin/medtalk

# Same seeds, same files: the corpus is deterministic, and a rerun continues where one stopped.
$medtalk data synth build/embedded/corpus --utterances 600 --seed 1
$medtalk data synth build/embedded/heldout --utterances 24 --seed 2026 --holdout
$medtalk train configs/embedded.yaml "$@"

target=medtalk/data/models/embedded
mkdir -p "$(dirname "$target")"
rm -rf "$target.partial"
cp -r build/embedded/run/bundle "$target.partial"
rm -rf "$target"
mv "$target.partial" "$target"
echo "installed the embedded model: $target ($(du -sh "$target" | cut -f1))"
