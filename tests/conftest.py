from __future__ import annotations

import itertools
import os
from pathlib import Path

# The suite runs as a fresh offline machine would: nothing may come from a model hub. Set before any
# test imports huggingface_hub, which reads these once.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest  # noqa: E402 (after the environment above)

from medtalk.core.plugins import get_plugin_manager  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL_DIR = SHARED / "data" / "real" / "emoface_validation"
REAL_TXT = REAL_DIR / "angry_gd04_001_021.txt"
REAL_WAV = REAL_DIR / "angry_gd04_001_021.wav"

_names = itertools.count()


@pytest.fixture
def pm():
    return get_plugin_manager()


@pytest.fixture
def register_plugin(pm):
    """Register plugin objects (modules, classes or instances with hookimpls) for one test only."""
    registered = []

    def register(plugin, name: str | None = None) -> str:
        plugin_name = name or f"test-plugin-{next(_names)}"
        pm.register(plugin, name=plugin_name)
        registered.append(plugin_name)
        return plugin_name

    yield register
    for plugin_name in registered:
        pm.unregister(name=plugin_name)


@pytest.fixture
def real_txt() -> Path:
    if not REAL_TXT.exists():
        pytest.fail(f"the shared real clip is missing: {REAL_TXT}")
    return REAL_TXT
