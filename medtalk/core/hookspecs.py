"""The plugin contract: every hook medtalk calls. Full prose and examples: docs/plugin-hooks.md.

Each ``register_<kind>s`` hook receives a ``register`` callable; call it once per component. Specs only
ever gain arguments, so an implementation that names fewer arguments keeps working.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("medtalk")
hookimpl = pluggy.HookimplMarker("medtalk")


@hookspec
def register_rigs(register):
    """Register rigs: call ``register(RigSpec(...))`` once per rig."""


@hookspec
def register_featurizers(register):
    """Register audio featurizers: call ``register(FeaturizerSubclass)`` once per featurizer."""


@hookspec
def register_transcribers(register):
    """Register transcribers: call ``register(TranscriberSubclass)`` once per transcriber."""


@hookspec
def register_text_encoders(register):
    """Register text encoders: call ``register(TextEncoderSubclass)`` once per encoder."""


@hookspec
def register_content_mappers(register):
    """Register audio-to-content mappers (ACM): call ``register(ContentMapperSubclass)``."""


@hookspec
def register_intensity_predictors(register):
    """Register frame-wise intensity predictors (CMF): call ``register(IntensityPredictorSubclass)``."""


@hookspec
def register_guidance_encoders(register):
    """Register guidance encoders (label, text, image): call ``register(GuidanceEncoderSubclass)``."""


@hookspec
def register_motion_models(register):
    """Register disentangled motion autoencoders: call ``register(MotionModelSubclass)``."""


@hookspec
def register_metrics(register):
    """Register evaluation metrics: call ``register(MetricSubclass)`` once per metric."""


@hookspec
def register_exporters(register):
    """Register file writers for rig sequences: call ``register(ExporterSubclass)`` once per format."""


@hookspec
def register_importers(register):
    """Register file readers for rig sequences: call ``register(ImporterSubclass)`` once per format."""


@hookspec
def register_postprocessors(register):
    """Register rig-sequence post-processors: call ``register(PostprocessorSubclass)``."""


@hookspec
def register_datasets(register):
    """Register training datasets: call ``register(DatasetSubclass)`` once per layout."""


@hookspec
def register_trainers(register):
    """Register training stages: call ``register(TrainerSubclass)`` once per stage."""


@hookspec
def register_models(register):
    """Register named pretrained model bundles: call ``register(ModelSubclass)`` once per model."""


@hookspec
def register_commands(app):
    """Add sub-commands to the ``medtalk`` CLI: ``app`` is its ``typer.Typer``."""
