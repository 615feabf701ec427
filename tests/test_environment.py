"""The set-up path installs the CPU torch first and nothing CUDA; heavy modules stay out of start-up."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys


def _installed() -> set[str]:
    return {(dist.metadata["Name"] or "").lower() for dist in importlib.metadata.distributions()}


def test_no_cuda_packages_are_installed():
    cuda = sorted(name for name in _installed() if name.startswith("nvidia-"))
    assert cuda == [], f"CUDA packages were pulled in: {cuda}"


def test_torch_is_the_pinned_cpu_build_and_torchvision_torchaudio_are_absent():
    assert importlib.metadata.version("torch").split("+")[0] == "2.13.0"
    assert {"torchvision", "torchaudio"} & _installed() == set()


def test_cli_start_up_imports_no_heavy_module():
    # Loading every plugin and building every registry must not pull numpy, torch or audio libraries.
    code = (
        "import sys, medtalk.cli as cli;"
        "from medtalk.core.plugins import get_plugin_manager, get_registry;"
        "from medtalk.core.registry import KINDS;"
        "cli.build_app(get_plugin_manager());"
        "[get_registry(k) for k in KINDS];"
        "print(sorted(m for m in ('numpy', 'torch', 'soundfile', 'soxr', 'yaml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
