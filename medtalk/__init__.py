"""medtalk: speech to emotional 3D facial animation for MetaHuman rigs, offline and pluggable."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from medtalk.core.hookspecs import hookimpl

__version__ = "0.1.0"

# The public API loads on first touch, so `import medtalk` (and `medtalk --help`) stays fast.
_LAZY = {
    "build": "medtalk.core.plugins",
    "get_registry": "medtalk.core.plugins",
    "get_plugin_manager": "medtalk.core.plugins",
    "Pipeline": "medtalk.core.pipeline",
    "BundleModel": "medtalk.core.pipeline",
    "RigSpec": "medtalk.core.rig",
    "RigSequence": "medtalk.core.sequence",
    "Audio": "medtalk.core.audio",
    "load_audio": "medtalk.core.audio",
    "read_sequence": "medtalk.core.fileio",
    "write_sequence": "medtalk.core.fileio",
    "FeatureSeq": "medtalk.core.types",
    "Transcript": "medtalk.core.types",
    "Word": "medtalk.core.types",
    "TextEncoding": "medtalk.core.types",
    "MedtalkError": "medtalk.core.errors",
    "MedtalkWarning": "medtalk.core.errors",
    **{
        name: "medtalk.core.components"
        for name in (
            "Component",
            "ComponentConfig",
            "Featurizer",
            "Transcriber",
            "TextEncoder",
            "ContentMapper",
            "IntensityPredictor",
            "GuidanceEncoder",
            "MotionModel",
            "Metric",
            "Exporter",
            "Importer",
            "Postprocessor",
            "Dataset",
            "Trainer",
            "Model",
            "StreamingForm",
        )
    },
}

__all__ = ["__version__", "hookimpl", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'medtalk' has no attribute {name!r}")


if TYPE_CHECKING:
    from medtalk.core.audio import Audio, load_audio
    from medtalk.core.components import (
        Component,
        ComponentConfig,
        ContentMapper,
        Dataset,
        Exporter,
        Featurizer,
        GuidanceEncoder,
        Importer,
        IntensityPredictor,
        Metric,
        Model,
        MotionModel,
        Postprocessor,
        StreamingForm,
        TextEncoder,
        Trainer,
        Transcriber,
    )
    from medtalk.core.errors import MedtalkError, MedtalkWarning
    from medtalk.core.fileio import read_sequence, write_sequence
    from medtalk.core.pipeline import BundleModel, Pipeline
    from medtalk.core.plugins import build, get_plugin_manager, get_registry
    from medtalk.core.rig import RigSpec
    from medtalk.core.sequence import RigSequence
    from medtalk.core.types import FeatureSeq, TextEncoding, Transcript, Word
