"""Guidance encoders with a frozen encoder inside: training and inference call ``embed`` on the user's
texts and images, and the frozen weights never enter the model's state or its bundle."""

from __future__ import annotations

import zlib
from typing import ClassVar

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from pydantic import Field
from test_training import StandInPlugin, make_corpus

from medtalk import hookimpl
from medtalk.core.errors import ConfigError, InputError
from medtalk.core.model.modules import ImageFeatureGuidance, TextFeatureGuidance
from medtalk.core.pipeline import Pipeline
from medtalk.core.plugins import build
from medtalk.core.training import load_training_config, run_training
from medtalk.plugins.model_parts import (
    FeatureProjectionConfig,
    ImageFeatureGuidanceSpec,
    TextFeatureGuidanceSpec,
)


class FrozenWordsConfig(FeatureProjectionConfig):
    input_dim: int = Field(default=6, ge=1, description="Size of the frozen vectors")


class FrozenWordsSpec(TextFeatureGuidanceSpec):
    """A stand-in frozen text encoder (hashed words through a fixed random layer) under P_text."""

    name = "test-frozen-words"
    embeds = True
    Config = FrozenWordsConfig
    implementation = "test_guidance_embed:FrozenWords"


class FrozenWords(FrozenWordsSpec, TextFeatureGuidance):
    embedded: ClassVar[list[str]] = []

    def __init__(self, config=None) -> None:
        super().__init__(config)
        generator = torch.Generator().manual_seed(0)
        # Held outside the module tree, as a real frozen backbone is: never in state_dict.
        object.__setattr__(self, "_backbone", torch.randn(6, self.config.input_dim, generator=generator))

    def embed(self, values):
        FrozenWords.embedded.extend(values)
        rows = []
        for text in values:
            words = text.lower().split() or [""]
            hashed = np.mean(
                [np.random.default_rng(zlib.crc32(w.encode())).standard_normal(6) for w in words], 0
            )
            rows.append(torch.from_numpy(hashed.astype(np.float32)) @ self._backbone)
        return torch.stack(rows).numpy()


class FrozenPixelsSpec(ImageFeatureGuidanceSpec):
    """A stand-in frozen image encoder: an image's mean red, green and blue under P_image."""

    name = "test-frozen-pixels"
    embeds = True
    implementation = "test_guidance_embed:FrozenPixels"


class FrozenPixels(FrozenPixelsSpec, ImageFeatureGuidance):
    def embed(self, values):
        rows = []
        for path in values:
            try:
                with Image.open(path) as image:
                    rows.append(np.asarray(image.convert("RGB"), dtype=np.float32).mean(axis=(0, 1)) / 255)
            except OSError:
                raise InputError(f"{path}: not a readable image: give a PNG or JPEG") from None
        return np.stack(rows)


class FrozenPlugin:
    @staticmethod
    @hookimpl
    def register_guidance_encoders(register):
        register(FrozenWordsSpec)
        register(FrozenPixelsSpec)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from medtalk.core.plugins import get_plugin_manager

    folder = tmp_path_factory.mktemp("frozen")
    (folder / "corpus").mkdir()
    make_corpus(folder / "corpus")
    data = {"type": "manifest", "path": "corpus/manifest.jsonl"}
    config = {
        "output": "run",
        "features": {"content": {"type": "logmel"}, "emotion": {"type": "test-prosody"}},
        "model": {
            "motion_model": {"type": "medtalk-autoencoder"},
            "content_mapper": {"type": "temporal-conv", "input_dim": 80},
            "intensity_predictor": {"type": "emotion-mlp", "emotion_dim": 2},
            "guidance_encoders": {
                "text": {"type": "test-frozen-words"},
                "image": {"type": "test-frozen-pixels", "input_dim": 3},
            },
        },
        "stages": [{"type": "guidance", "dataset": data, "epochs": 1, "batch_size": 3}],
    }
    (folder / "train.yaml").write_text(yaml.safe_dump(config))
    pm = get_plugin_manager()
    pm.register(StandInPlugin, name="frozen-stand-ins")
    pm.register(FrozenPlugin, name="frozen-encoders")
    FrozenWords.embedded.clear()
    try:
        run_training(load_training_config(folder / "train.yaml"))
    finally:
        pm.unregister(name="frozen-stand-ins")
        pm.unregister(name="frozen-encoders")
    return folder / "run" / "bundle", sorted(set(FrozenWords.embedded))


@pytest.fixture
def pipeline(bundle, register_plugin):
    register_plugin(StandInPlugin, name="frozen-stand-ins")
    register_plugin(FrozenPlugin, name="frozen-encoders")
    return Pipeline.from_pretrained(bundle[0])


@pytest.fixture
def speech(tmp_path):
    import soundfile

    path = tmp_path / "speech.wav"
    t = np.arange(16000) / 16000
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 16000)
    return path


def test_training_embeds_each_guidance_text_once_with_the_models_own_encoder(bundle):
    _, embedded = bundle
    assert embedded == ["a angry face", "a happy face", "a sad face"]


def test_the_frozen_encoder_is_not_part_of_the_model_state(register_plugin):
    register_plugin(FrozenPlugin, name="frozen-encoders")
    frozen = build("guidance_encoder", {"type": "test-frozen-words"})
    plain = build("guidance_encoder", {"type": "text-features", "input_dim": 6})
    assert isinstance(frozen, FrozenWords) and frozen.embeds and not plain.embeds
    assert (
        sorted(frozen.state_dict())
        == sorted(plain.state_dict())
        == [
            "fc1.bias",
            "fc1.weight",
            "fc2.bias",
            "fc2.weight",
        ]
    )


def test_text_guidance_runs_through_the_frozen_encoder_at_inference(pipeline, speech):
    FrozenWords.embedded.clear()
    sad = pipeline(speech, guidance="text:a sad face").values
    assert FrozenWords.embedded == ["a sad face"]
    happy = pipeline(speech, guidance="text:a happy face").values
    assert np.abs(sad - happy).max() > 1e-4


def test_image_guidance_takes_an_image_or_a_precomputed_vector(pipeline, speech, tmp_path):
    red, blue = tmp_path / "red.png", tmp_path / "blue.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(red)
    Image.new("RGB", (8, 8), (0, 0, 255)).save(blue)
    vector = tmp_path / "red.npy"
    np.save(vector, np.array([1.0, 0.0, 0.0], dtype=np.float32))
    from_image = pipeline(speech, guidance=f"image:{red}").values
    from_vector = pipeline(speech, guidance=f"image:{vector}").values
    np.testing.assert_allclose(from_image, from_vector, atol=1e-6)
    assert np.abs(from_image - pipeline(speech, guidance=f"image:{blue}").values).max() > 1e-4


def test_bad_images_are_one_line(pipeline, speech, tmp_path):
    text = tmp_path / "face.png"
    text.write_text("not an image")
    with pytest.raises(InputError) as error:
        pipeline(speech, guidance=f"image:{text}")
    assert str(error.value) == f"{text}: not a readable image: give a PNG or JPEG"
    with pytest.raises(InputError) as error:
        pipeline(speech, guidance=f"image:{tmp_path / 'missing.npy'}")
    assert str(error.value) == f"{tmp_path / 'missing.npy'}: no such file: check the path"


def test_an_encoder_of_precomputed_vectors_cannot_embed():
    with pytest.raises(ConfigError) as error:
        build("guidance_encoder", {"type": "image-features"}).embed(["face.png"])
    assert (
        str(error.value)
        == "guidance encoder 'image-features' has no frozen encoder: give it precomputed vectors"
    )
