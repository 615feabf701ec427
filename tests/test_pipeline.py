"""Inference: a trained bundle animates audio under each kind of guidance; post-processing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
from test_training import StandInPlugin, train_small_bundle

from medtalk import hookimpl
from medtalk.core.components import Model
from medtalk.core.errors import ConfigError, InputError
from medtalk.core.pipeline import BundleModel, Pipeline, parse_guidance
from medtalk.core.plugins import build
from medtalk.core.sequence import RigSequence
from medtalk.plugins.postprocessors import savgol_smooth


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return train_small_bundle(tmp_path_factory.mktemp("trained"), "pipeline-stand-ins")


@pytest.fixture
def pipeline(bundle, register_plugin):
    register_plugin(StandInPlugin, name="pipeline-stand-ins")
    return Pipeline.from_pretrained(bundle)


@pytest.fixture
def speech(tmp_path) -> Path:
    t = np.arange(int(1.234 * 16000)) / 16000
    path = tmp_path / "speech.wav"
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    return path


def test_a_trained_bundle_animates_audio_with_a_label(pipeline, speech):
    sequence = pipeline(speech, guidance="label:happy", transcript="this is u1 said happy")
    assert isinstance(sequence, RigSequence)
    assert (sequence.rig, sequence.fps, sequence.values.shape) == ("metahuman-174", 60.0, (74, 174))
    assert np.isfinite(sequence.values).all()


def test_the_guidance_changes_the_animation(pipeline, speech):
    angry = pipeline(speech, guidance="label:angry").values
    sad = pipeline(speech, guidance="label:sad").values
    text = pipeline(speech, guidance="text:a sad face").values
    assert np.abs(angry - sad).mean() > 1e-3
    assert np.abs(text - angry).mean() > 1e-4


@pytest.mark.parametrize(
    ("guidance", "expected"),
    [
        ("happy", "guidance 'happy' is not label:NAME, text:\"...\" or image:PATH: e.g. label:happy"),
        ("label:", "guidance 'label:' is empty: give a label after 'label:'"),
        (
            "label:joyful",
            "unknown emotion label 'joyful': use one of angry, disgust, fear, happy, neutral, sad, surprise",
        ),
    ],
)
def test_bad_guidance_is_one_line(pipeline, speech, guidance, expected):
    with pytest.raises(InputError) as error:
        pipeline(speech, guidance=guidance)
    assert str(error.value) == expected


def test_encode_guidance_gives_the_feature_f_of_each_guidance(pipeline):
    import torch

    from medtalk.core.data.samples import EMOTIONS

    happy = pipeline.encode_guidance("label:happy")
    expected = pipeline.model.encode_guidance("label", torch.tensor([EMOTIONS.index("happy")]))
    assert happy.ndim == 2 and happy.shape[0] == 1 and not happy.requires_grad
    torch.testing.assert_close(happy, expected)
    text = pipeline.encode_guidance("text:a sad face")
    assert text.shape == happy.shape and (text - happy).abs().max() > 1e-4
    with pytest.raises(InputError) as error:
        pipeline.encode_guidance("label:joyful")
    assert str(error.value) == (
        "unknown emotion label 'joyful': use one of angry, disgust, fear, happy, neutral, sad, surprise"
    )


def test_image_guidance_needs_a_model_trained_for_it(pipeline, speech, tmp_path):
    vector = tmp_path / "face.npy"
    np.save(vector, np.zeros(52, dtype=np.float32))
    with pytest.raises(ConfigError) as error:
        pipeline(speech, guidance=f"image:{vector}")
    assert str(error.value) == (
        "this model has no image guidance encoder (it has: label, text): use one of those, "
        "or a model trained for image guidance"
    )


def test_a_model_registered_by_a_plugin_loads_by_name(bundle, register_plugin, speech):
    class StudioFace(BundleModel, Model):
        """A test studio model."""

        name = "studio-face"
        bundle_path = bundle

    class Plugin:
        @staticmethod
        @hookimpl
        def register_models(register):
            register(StudioFace)

    register_plugin(StandInPlugin, name="pipeline-stand-ins")
    register_plugin(Plugin)
    assert Pipeline.from_pretrained("studio-face")(speech).num_frames == 74


def test_an_unknown_model_name_is_one_line(tmp_path):
    with pytest.raises(InputError) as error:
        Pipeline.from_pretrained("nope-model")
    assert str(error.value) == (
        "nope-model: no such model: give a bundle folder (from 'medtalk train') "
        "or a model name (embedded, teacher)"
    )


def test_parse_guidance_keeps_text_with_colons():
    assert parse_guidance('text:smirking, raised brow: "sly"') == ("text", 'smirking, raised brow: "sly"')


def test_savgol_matches_the_closed_form_coefficients_and_keeps_quadratics():
    values = np.random.default_rng(0).normal(size=(40, 3))
    coefficients = np.array([-3, 12, 17, 12, -3]) / 35
    np.testing.assert_allclose(
        savgol_smooth(values)[2:-2, 1], np.convolve(values[:, 1], coefficients[::-1], "valid"), atol=1e-12
    )
    t = np.arange(25.0)[:, None]
    quadratic = 0.5 * t**2 - 3 * t + 1
    np.testing.assert_allclose(savgol_smooth(quadratic), quadratic, atol=1e-9)
    short = values[:4]
    np.testing.assert_array_equal(savgol_smooth(short), short)


def test_postprocessor_configs_are_checked():
    with pytest.raises(ConfigError) as error:
        build("postprocessor", {"type": "savgol", "window": 4})
    assert str(error.value) == (
        "invalid config for postprocessor 'savgol': field '(root)': value error, window must be odd, got 4; "
        "its fields are: window, order"
    )


def test_clamp_keeps_values_in_the_rig_ranges():
    rig = build("rig", "arkit-52")
    sequence = RigSequence(np.linspace(-1, 2, 52 * 3).reshape(3, 52), fps=60, rig="arkit-52")
    clamped = build("postprocessor", "clamp")(sequence, rig).values
    assert clamped.min() == 0.0 and clamped.max() == 1.0
