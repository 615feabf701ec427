"""The MEDTalk networks: shapes, the [emotion; content] order, eq. 8 and 9, the CMF's text handling,
the whole model's config, bundles, and that listing these components never imports torch."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch
from torch import nn

import medtalk
from medtalk.cli import run_cli
from medtalk.core.errors import ConfigError, FileFormatError, InputError, MedtalkError, OutputError
from medtalk.core.model import bundle as bundle_module
from medtalk.core.model.bundle import load_bundle, save_bundle
from medtalk.core.model.modules import (
    EMOTION_LABELS,
    CrossModalityFusion,
    FusionEncoder,
    MedtalkModel,
    MotionAutoencoder,
    adjust_norm,
    emotion_label_indices,
    intensity_target,
)
from medtalk.core.plugins import build, get_registry

FULL_CONFIG = {
    "motion_model": {"type": "medtalk-autoencoder"},
    "content_mapper": {"type": "mlp"},
    "intensity_predictor": {"type": "cmf"},
    "guidance_encoders": {"label": {"type": "label"}, "text": {"type": "text-features"}},
}
# A small model: every part, fast enough to save and load many times.
SMALL_CONFIG = {
    "motion_model": {"type": "medtalk-autoencoder", "num_controls": 12, "hidden": 16, "embedding": 8},
    "content_mapper": {"type": "temporal-conv", "input_dim": 5, "window": 3, "hidden": 6, "embedding": 8},
    "intensity_predictor": {"type": "cmf", "emotion_dim": 4, "text_dim": 6, "model_dim": 8, "heads": 2},
    "guidance_encoders": {
        "label": {"type": "label", "embedding": 4, "hidden": 6, "output_dim": 8},
        "image": {"type": "image-features", "input_dim": 3, "hidden": 5, "output_dim": 8},
    },
    "fusion": {"hidden": 7},
}


def shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


def small_inputs(batch: int = 2, frames: int = 9, tokens: int = 4) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    return {
        "content_features": torch.randn(batch, frames, 5, generator=generator),
        "emotion_features": torch.randn(batch, frames, 4, generator=generator),
        "text_tokens": torch.randn(batch, tokens, 6, generator=generator),
        "text_mask": torch.ones(batch, tokens, dtype=torch.bool),
    }


# ----------------------------------------------------------------------------------- autoencoder


def test_autoencoder_sizes_are_the_authors():
    model = build("motion_model", {"type": "medtalk-autoencoder"})
    assert shapes(model) == {
        "emotion_encoder.fc1.weight": (256, 174),
        "emotion_encoder.fc1.bias": (256,),
        "emotion_encoder.fc2.weight": (256, 256),
        "emotion_encoder.fc2.bias": (256,),
        "content_encoder.fc1.weight": (256, 174),
        "content_encoder.fc1.bias": (256,),
        "content_encoder.fc2.weight": (256, 256),
        "content_encoder.fc2.bias": (256,),
        "decoder.fc1.weight": (256, 512),
        "decoder.fc1.bias": (256,),
        "decoder.fc2.weight": (174, 256),
        "decoder.fc2.bias": (174,),
    }


def test_autoencoder_shapes_and_self_reconstruction():
    torch.manual_seed(0)
    model = build("motion_model", {"type": "medtalk-autoencoder"})
    rig = torch.randn(2, 5, 174)
    emotion, content = model.encode_emotion(rig), model.encode_content(rig)
    assert emotion.shape == content.shape == (2, 5, 256)
    assert model.decode(emotion, content).shape == (2, 5, 174)
    assert torch.equal(model(rig), model.decode(emotion, content))


def test_a_part_copies_like_any_module():
    model = build("motion_model", {"type": "medtalk-autoencoder", "num_controls": 12})
    duplicate = copy.deepcopy(model)
    assert type(duplicate) is MotionAutoencoder and duplicate.config == model.config
    rig = torch.randn(1, 2, 12)
    assert torch.equal(duplicate(rig), model(rig))


def test_built_through_the_registry_for_another_rig():
    model = medtalk.build("motion_model", {"type": "medtalk-autoencoder", "num_controls": 52})
    assert type(model) is MotionAutoencoder
    assert isinstance(model, nn.Module)
    assert isinstance(model, get_registry("motion_model").get("medtalk-autoencoder"))
    assert model(torch.zeros(1, 3, 52)).shape == (1, 3, 52)
    with pytest.raises(InputError) as error:
        model(torch.zeros(1, 3, 174))
    assert str(error.value) == (
        "rig values have shape (1, 3, 174), expected 3-D with 52 last: "
        "pass (B, T, C) values of the model's rig"
    )


def test_the_decoder_reads_emotion_first_then_content():
    torch.manual_seed(1)
    model = MotionAutoencoder()
    emotion, content, zero = torch.randn(1, 4, 256), torch.randn(1, 4, 256), torch.zeros(1, 4, 256)
    emotion_only, content_only = model.decode(emotion, zero), model.decode(zero, content)
    with torch.no_grad():
        model.decoder.fc1.weight[:, :256] += 1.0  # the columns that read the first half
    # With the emotion half zero, a change to the first 256 columns cannot show; with emotion, it must.
    assert torch.equal(model.decode(zero, content), content_only)
    assert not torch.allclose(model.decode(emotion, zero), emotion_only)


# ------------------------------------------------------------------------------- content mappers


def test_mlp_content_mapper_shapes():
    mapper = build("content_mapper", {"type": "mlp"})
    assert shapes(mapper) == {
        "fc1.weight": (256, 768),
        "fc1.bias": (256,),
        "fc2.weight": (256, 256),
        "fc2.bias": (256,),
    }
    assert mapper(torch.randn(2, 6, 768)).shape == (2, 6, 256)
    whisper = build("content_mapper", {"type": "mlp", "input_dim": 384})
    assert whisper(torch.randn(1, 3, 384)).shape == (1, 3, 256)
    with pytest.raises(InputError) as error:
        whisper(torch.randn(1, 3, 768))
    assert str(error.value) == (
        "content features have shape (1, 3, 768), expected 3-D with 384 last: set input_dim to their size"
    )


def test_temporal_conv_sees_exactly_its_window():
    torch.manual_seed(2)
    mapper = build("content_mapper", {"type": "temporal-conv", "input_dim": 80, "window": 5}).eval()
    features = torch.randn(1, 20, 80)
    out = mapper(features)
    assert out.shape == (1, 20, 256)
    inside, outside = features.clone(), features.clone()
    inside[0, 12] += 1.0  # frame 10 sees frames 8..12
    outside[0, 13] += 1.0
    assert not torch.allclose(mapper(inside)[0, 10], out[0, 10])
    assert torch.equal(mapper(outside)[0, 10], out[0, 10])
    assert mapper(torch.randn(2, 1, 80)).shape == (2, 1, 256)  # one frame: the edges repeat it


def test_stacked_temporal_convs_widen_the_window_by_each_layer():
    torch.manual_seed(3)
    mapper = build(
        "content_mapper", {"type": "temporal-conv", "input_dim": 8, "window": 5, "layers": 3}
    ).eval()
    features = torch.randn(1, 30, 8)
    out = mapper(features)
    inside, outside = features.clone(), features.clone()
    inside[0, 21] += 1.0  # three layers of window 5: frame 15 sees frames 9..21
    outside[0, 22] += 1.0
    assert not torch.allclose(mapper(inside)[0, 15], out[0, 15])
    assert torch.equal(mapper(outside)[0, 15], out[0, 15])
    one_layer = build("content_mapper", {"type": "temporal-conv", "input_dim": 8, "window": 5})
    assert set(one_layer.state_dict()) == {"conv.weight", "conv.bias", "fc.weight", "fc.bias"}


# -------------------------------------------------------------------------------------------- CMF


def test_cmf_sizes_are_the_authors():
    cmf = build("intensity_predictor", {"type": "cmf"})
    assert isinstance(cmf.query_projection, nn.Identity)
    assert shapes(cmf) == {
        "cross_attention.in_proj_weight": (2304, 768),
        "cross_attention.in_proj_bias": (2304,),
        "cross_attention.out_proj.weight": (768, 768),
        "cross_attention.out_proj.bias": (768,),
        "attention_norm.weight": (768,),
        "attention_norm.bias": (768,),
        "feed_forward.weight": (768, 768),
        "feed_forward.bias": (768,),
        "output_norm.weight": (768,),
        "output_norm.bias": (768,),
        "head.weight": (1, 768),
        "head.bias": (1,),
    }
    assert cmf.cross_attention.num_heads == 8
    assert cmf(torch.randn(2, 6, 768), torch.randn(2, 4, 768)).shape == (2, 6, 1)


def test_cmf_projects_other_feature_sizes():
    cmf = build("intensity_predictor", {"type": "cmf", "emotion_dim": 24, "text_dim": 384, "model_dim": 64})
    assert isinstance(cmf.query_projection, nn.Linear)
    assert cmf.query_projection.weight.shape == (64, 24)
    assert cmf(torch.randn(3, 5, 24), torch.randn(3, 7, 384)).shape == (3, 5, 1)


def small_cmf() -> CrossModalityFusion:
    torch.manual_seed(3)
    spec = {"type": "cmf", "emotion_dim": 4, "text_dim": 6, "model_dim": 8, "heads": 2}
    return build("intensity_predictor", spec).eval()


def test_cmf_without_text_uses_the_emotion_features_alone():
    cmf = small_cmf()
    emotion = torch.randn(2, 5, 4)
    no_text = cmf(emotion, None, None)
    assert no_text.shape == (2, 5, 1)
    assert torch.isfinite(no_text).all()
    assert torch.equal(cmf(emotion, torch.zeros(2, 0, 6), torch.zeros(2, 0, dtype=torch.bool)), no_text)
    all_masked = cmf(emotion, torch.randn(2, 3, 6), torch.zeros(2, 3, dtype=torch.bool))
    torch.testing.assert_close(all_masked, no_text, rtol=0, atol=1e-6)
    # By hand: the attention contributes nothing, so only the residual layers act on the queries.
    x = cmf.attention_norm(cmf.query_projection(emotion))
    x = cmf.output_norm(x + cmf.feed_forward(x))
    torch.testing.assert_close(no_text, cmf.head(x), rtol=0, atol=1e-6)


def test_cmf_respects_the_text_mask_per_clip():
    cmf = small_cmf()
    emotion, tokens = torch.randn(2, 5, 4), torch.randn(2, 4, 6)
    mask = torch.tensor([[True, True, False, False], [False, False, False, False]])
    out = cmf(emotion, tokens, mask)
    changed = tokens.clone()
    changed[0, 2:] = torch.randn(2, 6) * 10  # masked out in clip 0
    changed[1] = torch.randn(4, 6) * 10  # clip 1 has no real token at all
    torch.testing.assert_close(cmf(emotion, changed, mask), out, rtol=0, atol=1e-6)
    changed[0, 0] += 1.0  # a real token
    assert not torch.allclose(cmf(emotion, changed, mask)[0], out[0])
    # Clip 1 (no text) gets what the model gives without any text; clip 0 does not.
    torch.testing.assert_close(out[1], cmf(emotion[1:], None, None)[0], rtol=0, atol=1e-6)
    assert not torch.allclose(out[0], cmf(emotion[:1], None, None)[0])


def test_cmf_refuses_a_mask_of_the_wrong_shape():
    cmf = small_cmf()
    with pytest.raises(InputError) as error:
        cmf(torch.randn(2, 5, 4), torch.randn(2, 4, 6), torch.ones(2, 3, dtype=torch.bool))
    assert str(error.value) == "the text mask has shape (2, 3), the tokens (2, 4): pass one flag per token"


def test_cmf_heads_must_divide_the_width():
    with pytest.raises(ConfigError) as error:
        build("intensity_predictor", {"type": "cmf", "model_dim": 100})
    assert str(error.value) == (
        "invalid config for intensity_predictor 'cmf': field '(root)': value error, model_dim 100 is not a "
        "multiple of heads 8; its fields are: emotion_dim, text_dim, model_dim, heads, dropout"
    )


def test_emotion_mlp_intensity_ignores_text():
    predictor = build("intensity_predictor", {"type": "emotion-mlp"})
    assert shapes(predictor) == {
        "fc1.weight": (256, 768),
        "fc1.bias": (256,),
        "fc2.weight": (1, 256),
        "fc2.bias": (1,),
    }
    emotion = torch.randn(2, 6, 768)
    assert torch.equal(predictor(emotion, torch.randn(2, 3, 768)), predictor(emotion))


# ---------------------------------------------------------------------------------- guidance


def test_emotion_labels_are_in_the_authors_order():
    assert EMOTION_LABELS == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    assert emotion_label_indices(["happy", "angry", "surprise"]).tolist() == [3, 0, 6]
    with pytest.raises(InputError) as error:
        emotion_label_indices(["joy"])
    assert str(error.value) == (
        "unknown emotion label 'joy': use one of angry, disgust, fear, happy, neutral, sad, surprise"
    )


def test_label_guidance_layout_and_shapes():
    encoder = build("guidance_encoder", {"type": "label"})
    assert encoder.modality == "label"
    assert shapes(encoder) == {
        "layers.0.weight": (7, 256),
        "layers.1.weight": (512, 256),
        "layers.1.bias": (512,),
        "layers.3.weight": (256, 512),
        "layers.3.bias": (256,),
    }
    assert isinstance(encoder.layers[2], nn.LeakyReLU) and encoder.layers[2].negative_slope == 0.2
    assert encoder(torch.tensor([0, 6, 3])).shape == (3, 256)
    assert torch.equal(encoder(torch.tensor([2], dtype=torch.int32)), encoder(torch.tensor([2])))
    with pytest.raises(InputError) as error:
        encoder(torch.tensor([[0.0, 1.0]]))
    assert str(error.value) == (
        "emotion labels must be a 1-D tensor of indices, got shape (1, 2) of torch.float32: "
        "use emotion_label_indices(names)"
    )
    with pytest.raises(InputError) as error:
        encoder(torch.tensor([2, 7]))
    assert str(error.value) == (
        "emotion label indices must be 0..6 (angry, disgust, fear, happy, neutral, sad, surprise), got [2, 7]"
    )


@pytest.mark.parametrize(("name", "modality"), [("text-features", "text"), ("image-features", "image")])
def test_feature_guidance_projects_to_256(name, modality):
    encoder = build("guidance_encoder", {"type": name})
    assert encoder.modality == modality
    assert shapes(encoder) == {
        "fc1.weight": (256, 512),
        "fc1.bias": (256,),
        "fc2.weight": (256, 256),
        "fc2.bias": (256,),
    }
    assert encoder(torch.randn(2, 512)).shape == (2, 256)
    minilm = build("guidance_encoder", {"type": name, "input_dim": 384})
    assert minilm(torch.randn(1, 384)).shape == (1, 256)


def test_fusion_encoder_shapes():
    fusion = FusionEncoder(256, 256, 256)
    assert shapes(fusion) == {
        "fc1.weight": (256, 256),
        "fc1.bias": (256,),
        "fc2.weight": (256, 256),
        "fc2.bias": (256,),
    }
    assert fusion(torch.randn(2, 5, 256)).shape == (2, 5, 256)


# ------------------------------------------------------------------------------------ eq. 8, eq. 9


def test_adjust_norm_sets_the_norm_to_the_intensity_per_frame():
    torch.manual_seed(4)
    feature, intensity = torch.randn(3, 256), torch.rand(3, 7, 1) * 2
    adjusted = adjust_norm(feature, intensity)
    assert adjusted.shape == (3, 7, 256)
    torch.testing.assert_close(adjusted.norm(dim=-1, keepdim=True), intensity, rtol=1e-5, atol=0)
    # The direction is the feature's.
    cosine = torch.nn.functional.cosine_similarity(adjusted, feature[:, None, :].expand_as(adjusted), dim=-1)
    torch.testing.assert_close(cosine, torch.ones(3, 7))
    per_frame = torch.randn(3, 7, 256)
    torch.testing.assert_close(
        adjust_norm(per_frame, intensity).norm(dim=-1, keepdim=True), intensity, rtol=1e-5, atol=0
    )


def test_adjust_norm_guards_a_zero_feature():
    adjusted = adjust_norm(torch.zeros(2, 256), torch.full((2, 4, 1), 0.7))
    assert torch.isfinite(adjusted).all()
    assert torch.equal(adjusted, torch.zeros(2, 4, 256))


def test_intensity_target_on_a_hand_made_rig():
    indices = get_registry("rig").get("metahuman-174").sets["intensity"]
    assert list(indices) == [29, 30, 31, 32, 98, 99, 100, 101, 36, 43, 105, 112, 53, 122]
    rig = torch.zeros(1, 3, 174)
    rig[0, 0, 29], rig[0, 0, 122], rig[0, 0, 0] = 0.5, -0.3, 9.0  # control 0 is not in S_int
    rig[0, 2, list(indices)] = 1.0
    target = intensity_target(rig, indices)
    assert target.shape == (1, 3, 1)
    torch.testing.assert_close(target[0, :, 0], torch.tensor([0.08, 0.0, 1.4]))
    torch.testing.assert_close(intensity_target(rig, indices, scale=1.0)[0, 0, 0], torch.tensor(0.8))


# -------------------------------------------------------------------------------------- the model


def test_full_model_forward_is_eq_5():
    torch.manual_seed(5)
    model = MedtalkModel.from_config(FULL_CONFIG).eval()
    guidance = model.encode_guidance("label", emotion_label_indices(["happy", "sad"]))
    assert guidance.shape == (2, 256)
    content_features, emotion_features = torch.randn(2, 9, 768), torch.randn(2, 9, 768)
    tokens, mask = torch.randn(2, 4, 768), torch.tensor([[True] * 4, [True, True, False, False]])
    out = model(content_features, emotion_features, tokens, mask, guidance)
    assert {key: tuple(value.shape) for key, value in out.items()} == {
        "rig": (2, 9, 174),
        "intensity": (2, 9, 1),
        "content": (2, 9, 256),
        "emotion": (2, 9, 256),
    }
    assert torch.equal(out["content"], model.content_mapper(content_features))
    assert torch.equal(out["intensity"], model.intensity_predictor(emotion_features, tokens, mask))
    assert torch.equal(out["emotion"], model.fusion(adjust_norm(guidance, out["intensity"])))
    assert torch.equal(out["emotion"], model.emotion_embedding(guidance, out["intensity"]))
    assert torch.equal(out["rig"], model.motion.decode(out["emotion"], out["content"]))


def test_model_state_dict_names():
    model = MedtalkModel.from_config(SMALL_CONFIG)
    prefixes = sorted({key.rsplit(".", 1)[0] for key in model.state_dict()})
    assert prefixes == [
        "content_mapper.conv",
        "content_mapper.fc",
        "fusion.fc1",
        "fusion.fc2",
        "guidance.image.fc1",
        "guidance.image.fc2",
        "guidance.label.layers.0",
        "guidance.label.layers.1",
        "guidance.label.layers.3",
        "intensity_predictor.attention_norm",
        "intensity_predictor.cross_attention",
        "intensity_predictor.cross_attention.out_proj",
        "intensity_predictor.feed_forward",
        "intensity_predictor.head",
        "intensity_predictor.output_norm",
        "intensity_predictor.query_projection",
        "motion.content_encoder.fc1",
        "motion.content_encoder.fc2",
        "motion.decoder.fc1",
        "motion.decoder.fc2",
        "motion.emotion_encoder.fc1",
        "motion.emotion_encoder.fc2",
    ]
    assert model.fusion.fc1.weight.shape == (7, 8)


def test_config_dict_rebuilds_the_same_model():
    model = MedtalkModel.from_config(SMALL_CONFIG)
    config = model.config_dict()
    assert config["motion_model"] == {
        "type": "medtalk-autoencoder",
        "num_controls": 12,
        "hidden": 16,
        "embedding": 8,
    }
    assert config["fusion"] == {"hidden": 7}
    assert list(config["guidance_encoders"]) == ["label", "image"]
    rebuilt = MedtalkModel.from_config(json.loads(json.dumps(config)))
    assert rebuilt.config_dict() == config
    assert shapes(rebuilt) == shapes(model)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"motion_model": "medtalk-autoencoder", "extra": 1},
            "invalid config for the model: unknown field 'extra'; its fields are: motion_model, "
            "content_mapper, intensity_predictor, guidance_encoders, fusion",
        ),
        (
            {"content_mapper": "mlp"},
            "invalid config for the model: missing field 'motion_model'; its fields are: motion_model, "
            "content_mapper, intensity_predictor, guidance_encoders, fusion",
        ),
        (
            {"motion_model": "medtalk-autoencoder", "guidance_encoders": {"text": "label"}},
            "guidance encoder 'label' encodes label guidance, but is configured under 'text': "
            "move it under 'label'",
        ),
        (
            {"motion_model": "medtalk-autoencoder", "guidance_encoders": {"face": "label"}},
            "unknown guidance modality 'face': use one of label, text, image",
        ),
        (
            {"motion_model": "medtalk-autoencoder", "content_mapper": {"type": "mlp", "embedding": 128}},
            "content mapper 'mlp' gives 128-d content, the motion model takes 256-d: "
            "set embedding: 256 in content_mapper",
        ),
        (
            {
                "motion_model": "medtalk-autoencoder",
                "guidance_encoders": {"label": "label", "text": {"type": "text-features", "output_dim": 64}},
            },
            "the guidance encoders give features of different sizes (label 256, text 64): "
            "give them one output_dim",
        ),
        (
            {"motion_model": "medtalk-autoencoder", "fusion": {"hidden": 3}},
            "the model config sets fusion but no guidance_encoders: E_fuse needs guidance",
        ),
        (
            {"motion_model": "medtalk-autoencoer"},
            "unknown motion_model 'medtalk-autoencoer': valid names are medtalk-autoencoder; "
            "did you mean 'medtalk-autoencoder'?",
        ),
    ],
)
def test_model_config_errors(config, expected):
    with pytest.raises(ConfigError) as error:
        MedtalkModel.from_config(config)
    assert str(error.value) == expected


def test_a_motion_only_model_says_what_it_lacks():
    model = MedtalkModel.from_config({"motion_model": "medtalk-autoencoder"})
    assert model.content_mapper is None and model.fusion is None and len(model.guidance) == 0
    with pytest.raises(ConfigError) as error:
        model(torch.zeros(1, 2, 768), torch.zeros(1, 2, 768), None, None, torch.zeros(1, 256))
    assert str(error.value) == (
        "this model has no content mapper: add content_mapper to its config, or use a model trained with one"
    )
    with pytest.raises(ConfigError) as error:
        model.encode_guidance("image", torch.zeros(1, 512))
    assert str(error.value) == (
        "this model has no image guidance encoder (it has: none): use one of those, "
        "or a model trained for image guidance"
    )


def test_content_and_emotion_features_must_have_the_same_frames():
    model = MedtalkModel.from_config(SMALL_CONFIG)
    inputs = small_inputs()
    inputs["emotion_features"] = inputs["emotion_features"][:, :8]
    with pytest.raises(InputError) as error:
        model(**inputs, guidance_feature=torch.zeros(2, 8))
    assert str(error.value) == (
        "content features are (B, T) = (2, 9), emotion features (2, 8): interpolate both to the same frames"
    )


# ---------------------------------------------------------------------------------------- bundles


def small_model(seed: int = 6) -> MedtalkModel:
    torch.manual_seed(seed)
    return MedtalkModel.from_config(SMALL_CONFIG).eval()


def outputs(model: MedtalkModel) -> dict[str, torch.Tensor]:
    guidance = model.encode_guidance("label", torch.tensor([1, 4]))
    with torch.no_grad():
        return model(**small_inputs(), guidance_feature=guidance)


CARD = {"rig": "metahuman-174", "fps": 60, "training_data": "a test", "metrics": {"lve": 0.5}}


def test_bundle_round_trip_gives_identical_outputs(tmp_path):
    model = small_model()
    folder = save_bundle(tmp_path / "bundle", model, CARD)
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.safetensors"]
    loaded, card = load_bundle(folder)
    assert not loaded.training
    before, after = outputs(model), outputs(loaded)
    for key in before:
        assert torch.equal(before[key], after[key]), key
    assert card["format"] == "medtalk-bundle" and card["format_version"] == 1
    assert card["medtalk_version"] == medtalk.__version__
    assert {key: card[key] for key in CARD} == CARD
    assert card["model"] == model.config_dict()
    assert card["weights"]["file"] == "model.safetensors"
    assert card["weights"]["parameters"] == sum(p.numel() for p in model.parameters())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no temporary folder left


def test_a_card_may_repeat_what_the_bundle_writes(tmp_path):
    model = small_model()
    repeated = {"medtalk_version": medtalk.__version__, "model": model.config_dict(), "format_version": 1}
    _, card = load_bundle(save_bundle(tmp_path / "bundle", model, {**CARD, **repeated}))
    assert card["model"] == model.config_dict()
    assert list(card)[:3] == ["format", "format_version", "medtalk_version"]


def test_bundle_refuses_to_overwrite_unless_asked(tmp_path):
    folder = save_bundle(tmp_path / "bundle", small_model(), CARD)
    with pytest.raises(OutputError) as error:
        save_bundle(folder, small_model(seed=8), CARD)
    assert (
        str(error.value) == f"{folder}: already exists: choose another folder, or pass --force to replace it"
    )
    assert torch.equal(outputs(load_bundle(folder)[0])["rig"], outputs(small_model())["rig"])
    save_bundle(folder, small_model(seed=8), {"fps": 30}, overwrite=True)
    loaded, card = load_bundle(folder)
    assert card["fps"] == 30 and "metrics" not in card
    assert torch.equal(outputs(loaded)["rig"], outputs(small_model(seed=8))["rig"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_a_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    import safetensors.torch

    def fail(*args, **kwargs):
        raise RuntimeError("disk on fire")

    save_bundle(tmp_path / "kept", small_model(), CARD)
    monkeypatch.setattr(safetensors.torch, "save_file", fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_bundle(tmp_path / "new", small_model(), CARD)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_bundle(tmp_path / "kept", small_model(seed=8), CARD, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    assert torch.equal(outputs(load_bundle(tmp_path / "kept")[0])["rig"], outputs(small_model())["rig"])


@pytest.mark.parametrize(
    ("card", "error_type", "expected"),
    [
        (
            {"model": {"motion_model": "medtalk-autoencoder"}},
            ConfigError,
            "the model card sets 'model' to another value than the bundle writes itself: leave it out",
        ),
        (
            {"weights": {"file": "model.safetensors"}},
            ConfigError,
            "the model card sets 'weights' to another value than the bundle writes itself: leave it out",
        ),
        (
            {"trained": object},
            ConfigError,
            "the model card cannot be written as JSON (Object of type type is not JSON serializable): "
            "give plain values (text, numbers, lists, maps)",
        ),
    ],
)
def test_bad_cards_are_refused_before_writing(tmp_path, card, error_type, expected):
    with pytest.raises(error_type) as error:
        save_bundle(tmp_path / "bundle", small_model(), card)
    assert str(error.value) == expected
    assert list(tmp_path.iterdir()) == []


def test_bundle_targets_that_cannot_be_written(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError) as error:
        save_bundle(tmp_path / "file", small_model(), CARD)
    assert (
        str(error.value)
        == f"{tmp_path / 'file'}: is a file: give the name of a folder to write the bundle into"
    )
    with pytest.raises(OutputError) as error:
        save_bundle(tmp_path / "no" / "bundle", small_model(), CARD)
    assert str(error.value) == (
        f"{tmp_path / 'no' / 'bundle'}: the folder {tmp_path / 'no'} does not exist: create it first"
    )


@pytest.fixture
def saved(tmp_path):
    return save_bundle(tmp_path / "bundle", small_model(), CARD)


def rewrite_card(folder, change):
    path = folder / "model.json"
    card = json.loads(path.read_text())
    change(card)
    path.write_text(json.dumps(card))


def rewrite_weights(folder, change):
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    weights = load_file(str(path))
    change(weights)
    save_file(weights, str(path))
    rewrite_card(folder, lambda card: card["weights"].update(sha256=bundle_module.file_sha256(path)))


def test_load_errors_for_what_is_not_a_bundle(tmp_path, saved):
    with pytest.raises(InputError) as error:
        load_bundle(tmp_path / "missing")
    assert str(error.value) == (
        f"{tmp_path / 'missing'}: no such bundle folder: give a folder with model.json and model.safetensors "
        "(made by medtalk train or medtalk import-official)"
    )
    (saved / "model.json").rename(tmp_path / "card.json")
    with pytest.raises(InputError) as error:
        load_bundle(saved)
    assert str(error.value) == (
        f"{saved}: has no model.json, so it is not a model bundle: give a folder made by medtalk train "
        "or medtalk import-official"
    )
    (saved / "model.json").write_text('{"format": "medtalk-bundle",\n')
    with pytest.raises(FileFormatError) as error:
        load_bundle(saved)
    assert str(error.value) == (
        f"{saved / 'model.json'}: is not valid JSON (Expecting property name enclosed in double quotes: "
        "line 2 column 1 (char 29)): re-create the bundle"
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda card: card.update(format="other"),
            '{card}: is not a medtalk bundle card (no "format": "medtalk-bundle"): re-create the bundle',
        ),
        (
            lambda card: card.update(format_version=2),
            "{card}: has bundle format version 2, this medtalk reads up to 1: upgrade medtalk",
        ),
        (
            lambda card: card.pop("weights"),
            "{card}: key 'weights' is missing or not a mapping: re-create the bundle",
        ),
        (
            lambda card: card["model"]["motion_model"].update(type="studio-rig-net"),
            "{card}: unknown motion_model 'studio-rig-net': valid names are medtalk-autoencoder",
        ),
        (
            lambda card: card["weights"].update(file="../elsewhere.safetensors"),
            "{card}: names weights file '../elsewhere.safetensors', not a path inside the bundle: "
            "re-create the bundle",
        ),
    ],
)
def test_load_errors_in_the_card(saved, change, expected):
    rewrite_card(saved, change)
    with pytest.raises(MedtalkError) as error:
        load_bundle(saved)
    assert str(error.value) == expected.format(card=saved / "model.json")


def test_load_refuses_damaged_weights(saved):
    path = saved / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(FileFormatError) as error:
        load_bundle(saved)
    assert str(error.value) == (
        f"{path}: does not match the checksum in model.json: the file is damaged or was replaced; "
        "copy the bundle again or re-create it"
    )
    path.unlink()
    with pytest.raises(InputError) as error:
        load_bundle(saved)
    assert (
        str(error.value)
        == f"{path}: is missing from the bundle: copy the whole bundle folder, or re-create it"
    )


FIX = "the weights and model.json do not belong together: re-create the bundle"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda weights: weights.pop("guidance.label.layers.1.bias"),
            "lacks 'guidance.label.layers.1.bias' (shape (6)): " + FIX,
        ),
        (
            lambda weights: weights.update({"guidance.label.layers.2.weight": torch.zeros(3)}),
            "has 'guidance.label.layers.2.weight', which the model does not: " + FIX,
        ),
        (
            lambda weights: weights.update({"motion.decoder.fc2.weight": torch.zeros(52, 16)}),
            "'motion.decoder.fc2.weight' has shape (52, 16), the model expects (12, 16): " + FIX,
        ),
    ],
)
def test_load_names_the_first_bad_key(saved, change, expected):
    rewrite_weights(saved, change)
    with pytest.raises(FileFormatError) as error:
        load_bundle(saved)
    assert str(error.value) == f"{saved / 'model.safetensors'}: {expected}"


# --------------------------------------------------------------------------- registry and start-up


BUILT_INS = {
    ("motion_model", "medtalk-autoencoder"),
    ("content_mapper", "mlp"),
    ("content_mapper", "temporal-conv"),
    ("intensity_predictor", "cmf"),
    ("intensity_predictor", "emotion-mlp"),
    ("guidance_encoder", "label"),
    ("guidance_encoder", "text-features"),
    ("guidance_encoder", "image-features"),
}


def test_components_lists_the_model_parts(capsys):
    assert run_cli(["components", "--kind", "motion_model", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "medtalk-autoencoder"
    assert row["plugin"] == "medtalk.plugins.model_parts"
    assert row["description"] == (
        "Disentangled motion autoencoder: E_e, E_c (C -> 256 -> 256 per frame), D ([emotion; content] -> C)."
    )
    assert row["config"]["num_controls"]["default"] == 174
    assert run_cli(["components", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    ours = {(r["kind"], r["name"]) for r in rows if r["plugin"] == "medtalk.plugins.model_parts"}
    assert ours == BUILT_INS


@pytest.mark.parametrize(("kind", "name"), sorted(BUILT_INS))
def test_every_part_builds_from_its_default_config(kind, name, capsys):
    import yaml

    assert run_cli(["config", "default", name, "--kind", kind]) == 0
    part = build(kind, yaml.safe_load(capsys.readouterr().out))
    assert isinstance(part, nn.Module)
    assert isinstance(part, get_registry(kind).get(name))
    assert type(part).__module__ == "medtalk.core.model.modules"


def test_listing_and_configuring_the_parts_imports_no_torch():
    code = (
        "import sys;"
        "from medtalk.core.plugins import build, get_registry;"
        "kinds = ('motion_model', 'content_mapper', 'intensity_predictor', 'guidance_encoder');"
        "[r.entry.Config() for k in kinds for r in get_registry(k)];"
        "print('torch' in sys.modules);"
        "part = build('intensity_predictor', {'type': 'cmf'});"
        "import torch;"
        "print(isinstance(part, torch.nn.Module), type(part).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True", "CrossModalityFusion"]
