"""`medtalk import-official`: fake checkpoints with the authors' names and shapes land weight for weight
in the right place, their backbones are kept loadable, and anything else is refused in one line."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medtalk.cli import run_cli
from medtalk.core.errors import FileFormatError, InputError, OutputError
from medtalk.core.model.bundle import load_backbone, load_bundle
from medtalk.core.model.modules import MedtalkModel
from medtalk.core.model.official import KEY_MAP, import_official

DOCS = Path(__file__).resolve().parents[1] / "docs" / "model.md"


# ------------------------------------------------------ the authors' checkpoints, from their code


def encoder(prefix: str, input_dim: int, hidden: int, output: int) -> dict[str, tuple[int, ...]]:
    """layers/encoder.py and layers/decoder.py: fc1 (input -> hidden), ReLU, fc2 (hidden -> output)."""
    return {
        f"{prefix}.fc1.weight": (hidden, input_dim),
        f"{prefix}.fc1.bias": (hidden,),
        f"{prefix}.fc2.weight": (output, hidden),
        f"{prefix}.fc2.bias": (output,),
    }


# main.py: input_dim 174, hidden_dim 256, latent_dim 256; wav2vec2-base hidden size 768.
CROSS_RECON = {
    **encoder("emo_encoder", 174, 256, 256),
    **encoder("cont_encoder", 174, 256, 256),
    **encoder("decoder", 512, 256, 174),
}
AUDIO_CONT = {**CROSS_RECON, **encoder("audio_content_map", 768, 256, 256)}
# layers/cross_modal_encoder.py AudioTextFusion(embed_dim=768, num_heads=8).
AUDIO_TEXT_FUSION = {
    "fusion_predictor.cross_attn.in_proj_weight": (2304, 768),
    "fusion_predictor.cross_attn.in_proj_bias": (2304,),
    "fusion_predictor.cross_attn.out_proj.weight": (768, 768),
    "fusion_predictor.cross_attn.out_proj.bias": (768,),
    "fusion_predictor.norm1.weight": (768,),
    "fusion_predictor.norm1.bias": (768,),
    "fusion_predictor.norm2.weight": (768,),
    "fusion_predictor.norm2.bias": (768,),
    "fusion_predictor.linear.weight": (768, 768),
    "fusion_predictor.linear.bias": (768,),
    "fusion_predictor.predictor.weight": (1, 768),
    "fusion_predictor.predictor.bias": (1,),
}
# models/audio_semantic.py: Embedding(7, 256), Linear(256, 512), LeakyReLU, Linear(512, 256).
LABEL_EMBEDDING = {
    "emotion_embedding.0.weight": (7, 256),
    "emotion_embedding.1.weight": (512, 256),
    "emotion_embedding.1.bias": (512,),
    "emotion_embedding.3.weight": (256, 512),
    "emotion_embedding.3.bias": (256,),
}
AUDIO_SEMANTIC = {
    **AUDIO_CONT,
    **AUDIO_TEXT_FUSION,
    **LABEL_EMBEDDING,
    **encoder("semantic_emotion_map", 256, 256, 256),
}
# models/clip_emotion.py: fusion_predictor = Encoder(768, 256, 1); clip maps Encoder(512, 256, 256).
CLIP_EMOTION = {
    **AUDIO_CONT,
    **encoder("fusion_predictor", 768, 256, 1),
    **encoder("clip_text_map", 512, 256, 256),
    **encoder("clip_image_map", 512, 256, 256),
    **encoder("semantic_emotion_map", 256, 256, 256),
}


class TinyWav2Vec2(nn.Module):
    """Stands in for transformers' Wav2Vec2Model: a few parameters under the same kind of names."""

    def __init__(self) -> None:
        super().__init__()
        self.feature_extractor = nn.Sequential(nn.Conv1d(1, 4, 3))
        self.feature_projection = nn.Linear(4, 6)
        self.masked_spec_embed = nn.Parameter(torch.zeros(6))


class TinyText(nn.Module):
    def __init__(self, width: int = 6) -> None:
        super().__init__()
        self.embeddings = nn.Embedding(11, width)
        self.pooler = nn.Linear(width, width)


BACKBONE_MODULES = {"audio_content_encoder": TinyWav2Vec2, "text_encoder": TinyText, "clip_encoder": TinyText}
STAGES = {
    "cross_recon": (CROSS_RECON, ()),
    "audio_cont": (AUDIO_CONT, ("audio_content_encoder",)),
    "audio_semantic": (AUDIO_SEMANTIC, ("audio_content_encoder", "text_encoder")),
    "clip_emotion": (CLIP_EMOTION, ("audio_content_encoder", "clip_encoder")),
}


def authors_state(stage: str, seed: int = 0) -> dict[str, torch.Tensor]:
    shapes, backbones = STAGES[stage]
    generator = torch.Generator().manual_seed(seed)
    state = {key: torch.randn(shape, generator=generator) * 0.1 for key, shape in shapes.items()}
    torch.manual_seed(seed)
    for prefix in backbones:
        for key, value in BACKBONE_MODULES[prefix]().state_dict().items():
            state[f"{prefix}.{key}"] = value
    return state


def write_checkpoint(tmp_path: Path, stage: str, state: dict | None = None) -> Path:
    path = tmp_path / f"{stage}.pth"
    torch.save(authors_state(stage) if state is None else state, path)
    return path


# ------------------------------------------------------------------- the authors' forward, by hand


def mlp(state, prefix, x):
    x = F.relu(F.linear(x, state[f"{prefix}.fc1.weight"], state[f"{prefix}.fc1.bias"]))
    return F.linear(x, state[f"{prefix}.fc2.weight"], state[f"{prefix}.fc2.bias"])


def authors_label_forward(state, audio_features, emotion_features, text_features, label):
    """models/audio_semantic.py forward_validate after the encoders, in eval mode (no dropout)."""
    audio_cont = mlp(state, "audio_content_map", audio_features)
    attention = nn.MultiheadAttention(768, 8, batch_first=True).eval()
    attention.load_state_dict(
        {key.split("cross_attn.")[1]: value for key, value in state.items() if "cross_attn." in key}
    )
    attended, _ = attention(emotion_features, text_features, text_features)
    q = F.layer_norm(
        emotion_features + attended,
        (768,),
        state["fusion_predictor.norm1.weight"],
        state["fusion_predictor.norm1.bias"],
    )
    out = F.layer_norm(
        q + F.linear(q, state["fusion_predictor.linear.weight"], state["fusion_predictor.linear.bias"]),
        (768,),
        state["fusion_predictor.norm2.weight"],
        state["fusion_predictor.norm2.bias"],
    )
    intensity = F.linear(
        out, state["fusion_predictor.predictor.weight"], state["fusion_predictor.predictor.bias"]
    )
    embedded = state["emotion_embedding.0.weight"][label]
    hidden = F.leaky_relu(
        F.linear(embedded, state["emotion_embedding.1.weight"], state["emotion_embedding.1.bias"]), 0.2
    )
    emo_embed = F.linear(hidden, state["emotion_embedding.3.weight"], state["emotion_embedding.3.bias"])
    norm = torch.norm(emo_embed, dim=-1, keepdim=True)
    emo_feature = mlp(state, "semantic_emotion_map", emo_embed * (intensity / (norm + 1e-8)))
    return mlp(state, "decoder", torch.cat((emo_feature, audio_cont), 2)), intensity


# ---------------------------------------------------------------------------------------- imports


@pytest.mark.parametrize(
    ("stage", "parts", "description"),
    [
        ("cross_recon", ["motion_model"], "stage 1, cross-reconstruction"),
        ("audio_cont", ["motion_model", "content_mapper"], "stage 2, audio content mapping"),
        (
            "audio_semantic",
            ["motion_model", "content_mapper", "intensity_predictor", "guidance_encoders", "fusion"],
            "stage 3, fusion intensity modelling",
        ),
        (
            "clip_emotion",
            ["motion_model", "content_mapper", "intensity_predictor", "guidance_encoders", "fusion"],
            "stage 4, multimodal guidance",
        ),
    ],
)
def test_every_stage_imports_with_its_parts(tmp_path, stage, parts, description):
    result = import_official(write_checkpoint(tmp_path, stage), tmp_path / "bundle")
    model, card = load_bundle(tmp_path / "bundle")
    assert list(card["model"]) == parts
    assert card["source"]["stage"] == result.stage == description
    assert result.parameters == sum(p.numel() for p in model.parameters())
    # Every one of the authors' model weights is a parameter of ours, and nothing else is.
    assert result.parameters == sum(t.numel() for t in authors_state(stage).values()) - sum(
        t.numel() for k, t in authors_state(stage).items() if k.split(".")[0] in BACKBONE_MODULES
    )


def test_every_weight_lands_in_its_place(tmp_path):
    state = authors_state("audio_semantic")
    import_official(write_checkpoint(tmp_path, "audio_semantic", state), tmp_path / "bundle")
    model, _ = load_bundle(tmp_path / "bundle")
    ours = model.state_dict()
    renames = {
        "emo_encoder.": "motion.emotion_encoder.",
        "cont_encoder.": "motion.content_encoder.",
        "decoder.": "motion.decoder.",
        "audio_content_map.": "content_mapper.",
        "fusion_predictor.cross_attn.": "intensity_predictor.cross_attention.",
        "fusion_predictor.norm1.": "intensity_predictor.attention_norm.",
        "fusion_predictor.linear.": "intensity_predictor.feed_forward.",
        "fusion_predictor.norm2.": "intensity_predictor.output_norm.",
        "fusion_predictor.predictor.": "intensity_predictor.head.",
        "emotion_embedding.": "guidance.label.layers.",
        "semantic_emotion_map.": "fusion.",
    }
    landed = 0
    for key, tensor in state.items():
        prefix = next((p for p in renames if key.startswith(p)), None)
        if prefix is None:
            continue  # a backbone
        assert torch.equal(ours[renames[prefix] + key[len(prefix) :]], tensor), key
        landed += 1
    assert landed == len(ours) == len(AUDIO_SEMANTIC)


def test_the_imported_model_computes_what_the_authors_code_does(tmp_path):
    state = authors_state("audio_semantic", seed=3)
    import_official(write_checkpoint(tmp_path, "audio_semantic", state), tmp_path / "bundle")
    model, _ = load_bundle(tmp_path / "bundle")
    generator = torch.Generator().manual_seed(4)
    audio, emotion, text = (torch.randn(1, n, 768, generator=generator) for n in (12, 12, 5))
    label = torch.tensor([5])
    expected_rig, expected_intensity = authors_label_forward(state, audio, emotion, text, label)
    with torch.no_grad():
        out = model(audio, emotion, text, None, model.encode_guidance("label", label))
    torch.testing.assert_close(out["intensity"], expected_intensity, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["rig"], expected_rig, rtol=1e-4, atol=1e-5)


def test_the_clip_stage_maps_its_projections_and_intensity_mlp(tmp_path):
    state = authors_state("clip_emotion")
    import_official(write_checkpoint(tmp_path, "clip_emotion", state), tmp_path / "bundle")
    model, card = load_bundle(tmp_path / "bundle")
    assert card["model"]["intensity_predictor"]["type"] == "emotion-mlp"
    assert sorted(card["model"]["guidance_encoders"]) == ["image", "text"]
    ours = model.state_dict()
    for theirs, mine in [
        ("fusion_predictor.fc1.weight", "intensity_predictor.fc1.weight"),
        ("fusion_predictor.fc2.bias", "intensity_predictor.fc2.bias"),
        ("clip_text_map.fc1.weight", "guidance.text.fc1.weight"),
        ("clip_text_map.fc2.bias", "guidance.text.fc2.bias"),
        ("clip_image_map.fc1.bias", "guidance.image.fc1.bias"),
        ("clip_image_map.fc2.weight", "guidance.image.fc2.weight"),
        ("semantic_emotion_map.fc2.weight", "fusion.fc2.weight"),
    ]:
        assert torch.equal(ours[mine], state[theirs]), theirs
    assert card["notes"] == [
        "In the authors' stage-4 code the intensity predictor (fusion_predictor, here emotion-mlp) is "
        "neither loaded from stage 3 nor trained: its weights are the random initialization, frozen."
    ]
    assert card["inputs"]["guidance"] == {
        "text": "CLIP ViT-B/32 get_text_features of the description (512-d)",
        "image": "CLIP ViT-B/32 get_image_features of the reference face (512-d)",
    }


def test_backbones_are_kept_loadable_beside_the_model(tmp_path):
    state = authors_state("audio_semantic")
    import_official(write_checkpoint(tmp_path, "audio_semantic", state), tmp_path / "bundle")
    bundle = tmp_path / "bundle"
    assert sorted(p.name for p in (bundle / "backbones").iterdir()) == [
        "roberta.safetensors",
        "wav2vec2.safetensors",
    ]
    wav2vec2 = load_backbone(bundle, "wav2vec2")
    assert sorted(wav2vec2) == sorted(TinyWav2Vec2().state_dict())  # the prefix is gone
    fresh = TinyWav2Vec2()
    fresh.load_state_dict(wav2vec2, strict=True)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, state[f"audio_content_encoder.{key}"]), key
    roberta = load_backbone(bundle, "roberta")
    TinyText().load_state_dict(roberta, strict=True)
    card = json.loads((bundle / "model.json").read_text())
    assert card["backbones"]["wav2vec2"] == {
        "architecture": "transformers Wav2Vec2Model",
        "pretrained": "facebook/wav2vec2-base-960h",
        "used_for": "content features (see inputs.content_features)",
        "source_prefix": "audio_content_encoder.",
        "file": "backbones/wav2vec2.safetensors",
        "sha256": hashlib.sha256((bundle / "backbones" / "wav2vec2.safetensors").read_bytes()).hexdigest(),
        "tensors": 5,
    }
    assert card["backbones"]["roberta"]["pretrained"] == "hfl/chinese-roberta-wwm-ext"
    with pytest.raises(InputError) as error:
        load_backbone(bundle, "clip")
    assert (
        str(error.value) == f"{bundle}: has no backbone 'clip' (it has: roberta, wav2vec2): use one of those"
    )


def test_the_card_says_where_the_weights_came_from(tmp_path):
    checkpoint = write_checkpoint(tmp_path, "audio_semantic")
    import_official(checkpoint, tmp_path / "bundle")
    card = json.loads((tmp_path / "bundle" / "model.json").read_text())
    assert card["source"] == {
        "origin": "MEDTalk authors' release",
        "repository": "https://github.com/SJTU-Lucy/MEDTalk",
        "file": "audio_semantic.pth",
        "sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
        "stage": "stage 3, fusion intensity modelling",
    }
    assert (card["rig"], card["fps"], card["notes"]) == ("metahuman-174", 60, [])
    assert card["description"] == (
        "The MEDTalk authors' model after stage 3, fusion intensity modelling, "
        "imported from audio_semantic.pth"
    )
    assert sorted(card["inputs"]) == ["content_features", "emotion_features", "guidance", "text_tokens"]
    assert card["inputs"]["guidance"] == {
        "label": ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    }
    assert "hidden_states[0]" in card["inputs"]["content_features"]


# ----------------------------------------------------------------------------------------- refusals


def _touch_marker(path: str) -> None:
    Path(path).write_text("code ran")


class RunsCode:
    """Unpickling this calls _touch_marker: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch_marker, (self.marker,))


def expect_refusal(tmp_path: Path, checkpoint: Path, error_type: type, message: str) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(error_type) as error:
        import_official(checkpoint, tmp_path / "bundle")
    assert str(error.value) == message
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "marker"
    state = authors_state("cross_recon")
    state["payload"] = RunsCode(marker)
    checkpoint = tmp_path / "evil.pth"
    torch.save(state, checkpoint)
    expect_refusal(
        tmp_path,
        checkpoint,
        InputError,
        f"{checkpoint}: not a weights-only PyTorch checkpoint: it needs code to unpickle "
        f"({__name__}._touch_marker); pass one of the authors' .pth files (medtalk never runs code from a "
        "checkpoint)",
    )
    assert not marker.exists()


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(InputError) as error:
        import_official(tmp_path / "audio_semantic.pth", tmp_path / "bundle")
    assert str(error.value) == f"{tmp_path / 'audio_semantic.pth'}: no such file: check the path"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "it is empty"),
        (b"emo_encoder.fc1.weight 0.1 0.2\n", "it is neither a PyTorch zip archive nor a pickle"),
    ],
)
def test_a_file_that_is_no_checkpoint_is_refused(tmp_path, content, reason):
    checkpoint = tmp_path / "weights.pth"
    checkpoint.write_bytes(content)
    expect_refusal(
        tmp_path,
        checkpoint,
        InputError,
        f"{checkpoint}: not a weights-only PyTorch checkpoint: {reason}; pass one of the authors' .pth files "
        "(medtalk never runs code from a checkpoint)",
    )


def test_a_checkpoint_that_is_no_state_dict_is_refused(tmp_path):
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], listed)
    expect_refusal(
        tmp_path,
        listed,
        InputError,
        f"{listed}: holds a list, not a state dict (names -> tensors): pass one of the authors' .pth files",
    )
    mixed = tmp_path / "mixed.pth"
    torch.save({**authors_state("cross_recon"), "epoch": 15}, mixed)
    expect_refusal(
        tmp_path,
        mixed,
        InputError,
        f"{mixed}: entry 'epoch' holds a int, not a tensor: pass a checkpoint that holds only a model's "
        "state dict",
    )


FIX = "import-official reads the authors' checkpoints as released (their code's names and sizes)"


def test_missing_extra_and_misshaped_keys_are_named(tmp_path):
    state = authors_state("audio_semantic")
    del state["emotion_embedding.1.weight"]
    expect_refusal(
        tmp_path,
        write_checkpoint(tmp_path, "missing", state),
        FileFormatError,
        f"{tmp_path / 'missing.pth'}: lacks 'emotion_embedding.1.weight' (shape (512, 256)): {FIX}",
    )
    state = authors_state("audio_semantic")
    state["emotion_embedding.2.weight"] = torch.zeros(3)
    expect_refusal(
        tmp_path,
        write_checkpoint(tmp_path, "extra", state),
        FileFormatError,
        f"{tmp_path / 'extra.pth'}: has 'emotion_embedding.2.weight', which the model does not: {FIX}",
    )
    state = authors_state("cross_recon")
    state["decoder.fc2.weight"] = torch.zeros(52, 256)
    expect_refusal(
        tmp_path,
        write_checkpoint(tmp_path, "shape", state),
        FileFormatError,
        f"{tmp_path / 'shape.pth'}: 'decoder.fc2.weight' has shape (52, 256), the model expects (174, 256): "
        f"{FIX}",
    )


def test_a_key_of_no_medtalk_part_is_refused(tmp_path):
    state = {**authors_state("cross_recon"), "classifier.weight": torch.zeros(2, 2)}
    known = ", ".join(f"{theirs}*" for theirs, _ in KEY_MAP)
    expect_refusal(
        tmp_path,
        write_checkpoint(tmp_path, "other", state),
        FileFormatError,
        f"{tmp_path / 'other.pth'}: key 'classifier.weight' belongs to no MEDTalk part (theirs are {known}): "
        "pass one of the authors' checkpoints (cross_recon, audio_cont, audio_semantic or clip_emotion .pth)",
    )


def test_an_existing_bundle_is_kept_unless_forced(tmp_path):
    checkpoint = write_checkpoint(tmp_path, "cross_recon")
    (tmp_path / "bundle").mkdir()
    expect_refusal(
        tmp_path,
        checkpoint,
        OutputError,
        f"{tmp_path / 'bundle'}: already exists: choose another folder, or pass --force to replace it",
    )
    import_official(checkpoint, tmp_path / "bundle", overwrite=True)
    assert isinstance(load_bundle(tmp_path / "bundle")[0], MedtalkModel)


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_imports_a_checkpoint(tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path, "audio_semantic")
    out = tmp_path / "bundle"
    assert run_cli(["import-official", str(checkpoint), "-o", str(out)]) == 0
    parameters = sum(p.numel() for p in load_bundle(out)[0].parameters())
    assert capsys.readouterr().out == (
        f"wrote {out} from audio_semantic.pth (stage 3, fusion intensity modelling): {parameters:,} "
        "parameters; backbones kept: wav2vec2 (5 tensors), roberta (3 tensors)\n"
    )
    assert run_cli(["import-official", str(checkpoint), "-o", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"error: {out}: already exists: choose another folder, or pass --force to replace it\n"
    )
    assert run_cli(["import-official", str(checkpoint), "-o", str(out), "--force"]) == 0


def test_cli_refuses_a_bad_file_in_one_line_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "notes.pth"
    bad.write_text("not weights\n")
    assert run_cli(["import-official", str(bad), "-o", str(tmp_path / "bundle")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"error: {bad}: not a weights-only PyTorch checkpoint: it is neither a PyTorch zip archive nor a "
        "pickle; pass one of the authors' .pth files (medtalk never runs code from a checkpoint)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.pth"]


# --------------------------------------------------------------------------------------------- docs


def test_docs_table_is_the_key_map():
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Importing the authors' checkpoints", 1)[1]
    rows = re.findall(r"^\| `([\w.]+)\*` \| `([\w.]+)\*` \|", section, flags=re.MULTILINE)
    assert tuple(rows) == KEY_MAP
