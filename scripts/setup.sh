#!/usr/bin/env bash
# Set up medtalk in ./.venv: torch==2.13.0 (the CPU wheel) first, then medtalk with the given extras.
#   bash scripts/setup.sh            -> medtalk with the embedded (no-download) backends and the server
#   bash scripts/setup.sh dev        -> the same plus the test tools
# Installing torch first, pinned, matters: a bare `torch` requirement makes pip fetch a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="embedded,serve"
if [ "${1:-}" = "dev" ]; then extras="embedded,serve,dev"; fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
pip() { .venv/bin/python -m pip --quiet --disable-pip-version-check "$@"; }
# pip's own warnings about unreadable local index entries are noise here; real errors still fail the script.
pip install "torch==2.13.0" 2> >(grep -v "^WARNING: Location" >&2)
pip install -e ".[${extras}]" 2> >(grep -v "^WARNING: Location" >&2)

if .venv/bin/python -m pip list --format=freeze 2>/dev/null | grep -iE "^(nvidia-|torchvision|torchaudio)"; then
    echo "setup: a CUDA, torchvision or torchaudio package got installed (listed above); see DESIGN.md section 5" >&2
    exit 1
fi
