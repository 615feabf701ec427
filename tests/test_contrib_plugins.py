"""The contrib plugin packages in plugins_contrib/, installed with pip the way a user installs them.

Discovery and MEDTALK_LOAD_PLUGINS are checked in subprocesses against the pip-installed copies; the
components themselves in this process. The egemaps tests need opensmile; the open_clip model tests need
open_clip_torch and a torchvision that imports next to this torch (not the case with the CPU torch 2.13.0
here, so they run on a GPU machine).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import medtalk
from medtalk.core.audio import Audio, audio_from_array, load_audio
from medtalk.core.errors import ConfigError, InputError
from medtalk.core.plugins import DEFAULT_PLUGINS, get_registry

CONTRIB = Path(__file__).resolve().parents[1] / "plugins_contrib"
REAL_WAV = Path(__file__).resolve().parents[2] / "shared/data/real/emoface_validation/angry_gd04_001_021.wav"
PACKAGES = {  # distribution folder -> (entry-point name, module)
    "medtalk-opensmile": ("opensmile", "medtalk_opensmile"),
    "medtalk-open-clip": ("open-clip", "medtalk_open_clip"),
}
SR = 16000


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Both contrib packages, pip-installed (without dependencies) into one folder."""
    root = tmp_path_factory.mktemp("contrib")
    # Built from copies, so the build leaves no build/ or egg-info folders in the source tree.
    copies = [
        shutil.copytree(CONTRIB / dist, root / dist, ignore=shutil.ignore_patterns("build", "*.egg-info"))
        for dist in PACKAGES
    ]
    target = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), *map(str, copies)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return target


def medtalk_cli(site: Path, load: str | None, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MEDTALK_LOAD_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    if load is not None:
        env["MEDTALK_LOAD_PLUGINS"] = load
    return subprocess.run([sys.executable, "-m", "medtalk", *args], capture_output=True, text=True, env=env)


def json_rows(result: subprocess.CompletedProcess) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def contrib(site, monkeypatch, pm, register_plugin):
    """The installed contrib modules, registered in this process unless their entry points already are."""
    monkeypatch.syspath_prepend(str(site))
    modules = {}
    for entry_point, module_name in PACKAGES.values():
        module = importlib.import_module(module_name)
        if pm.get_plugin(entry_point) is None and not pm.is_registered(module):
            register_plugin(module, name=entry_point)
        modules[module_name] = module
    return modules


# ------------------------------------------------------------------------------ discovery and loading


def test_both_packages_are_discovered_through_their_entry_points(site):
    rows = {row["name"]: row for row in json_rows(medtalk_cli(site, None, "plugins", "--json"))}
    assert rows["opensmile"] == {
        "name": "opensmile", "package": "medtalk-opensmile", "version": "0.1.0",
        "hooks": ["register_featurizers"],
    }  # fmt: skip
    assert rows["open-clip"] == {
        "name": "open-clip", "package": "medtalk-open-clip", "version": "0.1.0",
        "hooks": ["register_guidance_encoders"],
    }  # fmt: skip


def test_their_components_are_listed_with_their_options(site):
    featurizers = {
        c["name"]: c for c in json_rows(medtalk_cli(site, None, "components", "-k", "featurizer", "--json"))
    }
    assert featurizers["egemaps"]["plugin"] == "opensmile"
    assert featurizers["egemaps"]["description"] == (
        "openSMILE eGeMAPSv02 low-level descriptors, 25 per frame at 100 Hz (non-commercial licence)."
    )
    assert list(featurizers["egemaps"]["config"]) == ["llds"]
    guidance = json_rows(medtalk_cli(site, None, "components", "-k", "guidance_encoder", "--json"))
    clip = {c["name"]: c for c in guidance if c["plugin"] == "open-clip"}
    assert sorted(clip) == ["open-clip-image", "open-clip-text"]
    assert list(clip["open-clip-text"]["config"]) == [
        "input_dim", "hidden", "output_dim", "model", "pretrained", "normalize", "device",
    ]  # fmt: skip
    assert clip["open-clip-image"]["config"]["model"]["default"] == "ViT-B-32"


@pytest.mark.parametrize(
    ("load", "expected"),
    [
        ("", []),
        ("medtalk-opensmile", ["opensmile"]),
        ("opensmile", ["opensmile"]),
        ("medtalk_open_clip", ["open-clip"]),
        ("open-clip, medtalk-opensmile", ["open-clip", "opensmile"]),
    ],
)
def test_medtalk_load_plugins_keeps_only_the_named_packages(site, load, expected):
    rows = json_rows(medtalk_cli(site, load, "plugins", "--json"))
    assert sorted(row["name"] for row in rows if row["name"] not in DEFAULT_PLUGINS) == expected
    featurizers = [
        c["name"] for c in json_rows(medtalk_cli(site, load, "components", "-k", "featurizer", "--json"))
    ]
    assert ("egemaps" in featurizers) == ("opensmile" in expected)


def test_a_name_that_matches_neither_package_loads_neither_and_warns(site):
    result = medtalk_cli(site, "someother", "plugins", "--json")
    assert sorted(row["name"] for row in json_rows(result)) == sorted(DEFAULT_PLUGINS)
    assert result.stderr == (
        "warning: MEDTALK_LOAD_PLUGINS names 'someother', but no installed plugin has that name: "
        "see 'medtalk plugins' for what is installed\n"
    )


def test_the_plugin_modules_import_no_heavy_library(site):
    code = (
        "import sys, medtalk_opensmile, medtalk_open_clip; "
        "heavy = ('opensmile', 'pandas', 'torch', 'open_clip', 'torchvision'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout == "[]\n"


# ------------------------------------------------------------------------------------------- egemaps


def harmonic_tone(
    seconds: float, f0: float = 200.0, amplitude: float = 0.3, silent_until: float = 0.0
) -> Audio:
    """Five harmonics with 1/h amplitudes (voiced-like), optionally silent at the start."""
    t = np.arange(round(seconds * SR)) / SR
    tone = amplitude * sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6)) / 1.5
    tone[t < silent_until] = 0.0
    return audio_from_array(tone.astype(np.float32), SR)


@pytest.fixture(scope="module")
def egemaps_module(site):
    pytest.importorskip("opensmile", reason="opensmile is not installed: pip install 'opensmile>=2.5'")
    sys.path.insert(0, str(site))
    try:
        return importlib.import_module("medtalk_opensmile")
    finally:
        sys.path.remove(str(site))


@pytest.fixture(scope="module")
def egemaps(egemaps_module):
    return egemaps_module.EGeMAPS()


def column(name: str) -> int:
    return sys.modules["medtalk_opensmile"].EGEMAPS_LLDS.index(name)


def test_the_declared_lld_names_are_opensmiles(egemaps_module, egemaps):
    assert list(egemaps.load().feature_names) == list(egemaps_module.EGEMAPS_LLDS)


def test_egemaps_on_the_real_clip(egemaps):
    audio = load_audio(REAL_WAV)
    features = egemaps(audio)
    assert features.values.shape == (audio.num_samples // 160 + 1, 25)
    assert features.values.dtype == np.float32
    assert features.rate_hz == egemaps.rate_hz == 100.0
    assert np.isfinite(features.values).all()
    f0 = features.values[:, column("F0semitoneFrom27.5Hz_sma3nz")]
    voiced = f0[f0 > 0]
    assert voiced.size > 0.2 * f0.size
    assert 15.0 < np.median(voiced) < 50.0  # 65 .. 490 Hz: a speaking voice


def test_egemaps_f0_of_a_200_hz_tone_is_200_hz_in_semitones_from_27_5(egemaps):
    f0 = egemaps(harmonic_tone(1.0)).values[10:-10, column("F0semitoneFrom27.5Hz_sma3nz")]
    assert (f0 > 0).all()
    assert abs(np.median(f0) - 12 * np.log2(200.0 / 27.5)) < 0.3  # 34.35 semitones


def test_egemaps_loudness_rises_with_the_signal_level(egemaps):
    quiet = egemaps(harmonic_tone(1.0, amplitude=0.05)).values[10:-10, column("Loudness_sma3")]
    loud = egemaps(harmonic_tone(1.0, amplitude=0.4)).values[10:-10, column("Loudness_sma3")]
    assert loud.mean() > 2.0 * quiet.mean() > 0.0


def test_egemaps_frames_stand_at_their_window_centres(egemaps):
    """A tone from 1.00 s: both window groups change at frame 100 (openSMILE's rows: 99 and 97)."""
    values = egemaps(harmonic_tone(2.0, silent_until=1.0)).values
    loudness = values[:, column("Loudness_sma3")]
    assert np.flatnonzero(loudness >= 0.5 * loudness[-20:].mean())[0] == 100
    assert np.flatnonzero(values[:, column("F0semitoneFrom27.5Hz_sma3nz")] > 0)[0] == 100


def test_egemaps_keeps_the_chosen_llds_in_the_given_order(contrib, egemaps):
    audio = harmonic_tone(0.5)
    chosen = medtalk.build(
        "featurizer", {"type": "egemaps", "llds": ["F0semitoneFrom27.5Hz_sma3nz", "Loudness_sma3"]}
    )
    assert chosen.dim == 2
    full = egemaps(audio).values
    np.testing.assert_array_equal(
        chosen(audio).values, full[:, [column("F0semitoneFrom27.5Hz_sma3nz"), column("Loudness_sma3")]]
    )


def test_egemaps_refuses_an_unknown_lld(contrib):
    with pytest.raises(ConfigError) as error:
        medtalk.build("featurizer", {"type": "egemaps", "llds": ["Loudness_sma3", "pitch"]})
    assert str(error.value) == (
        "invalid config for featurizer 'egemaps': field 'llds': value error, 'pitch' is not an eGeMAPSv02 "
        "low-level descriptor (e.g. Loudness_sma3, F0semitoneFrom27.5Hz_sma3nz; README.md lists all 25); "
        "its fields are: llds"
    )


def test_egemaps_refuses_audio_it_cannot_featurize(egemaps):
    with pytest.raises(InputError) as error:
        egemaps(Audio(np.zeros(800, dtype=np.float32)))  # load_audio refuses it already; Audio() does not
    assert str(error.value) == (
        "egemaps needs at least 0.06 s of audio (openSMILE's pitch window), got 0.050 s: give a longer clip"
    )
    with pytest.raises(ConfigError) as error:
        egemaps(Audio(np.zeros(8000, dtype=np.float32), sample_rate=8000))
    assert str(error.value) == "egemaps needs 16000 Hz audio, got 8000 Hz: load it with load_audio"


def test_egemaps_without_opensmile_says_what_to_install(egemaps_module, monkeypatch):
    monkeypatch.setitem(sys.modules, "opensmile", None)
    with pytest.raises(ConfigError) as error:
        egemaps_module.EGeMAPS()(harmonic_tone(0.5))
    assert str(error.value) == (
        "egemaps needs opensmile (import of opensmile halted; None in sys.modules): pip install "
        "'opensmile>=2.5' (audEERING's licence: non-commercial research only)"
    )


# ----------------------------------------------------------------------------------------- open_clip


def test_open_clip_configs_validate_without_open_clip(contrib):
    module = contrib["medtalk_open_clip"]
    for spec in (module.OpenClipTextGuidanceSpec, module.OpenClipImageGuidanceSpec):
        registered = get_registry("guidance_encoder").get(spec.name)
        assert registered is spec and spec.embeds
        config = spec.Config.model_validate(
            {"model": "ViT-B-16", "pretrained": "/m/b16.pt", "device": "cuda:1"}
        )
        assert (config.input_dim, config.output_dim, config.normalize) == (512, 256, True)
    with pytest.raises(ConfigError) as error:
        medtalk.build("guidance_encoder", {"type": "open-clip-text", "device": "gpu"})
    assert str(error.value) == (
        "invalid config for guidance_encoder 'open-clip-text': field 'device': value error, device 'gpu' is "
        "not one of cpu, cuda, cuda:N, auto; its fields are: input_dim, hidden, output_dim, model, "
        "pretrained, normalize, device"
    )
    with pytest.raises(ConfigError) as error:
        medtalk.build("guidance_encoder", {"type": "open-clip-image", "checkpoint": "x.pt"})
    assert str(error.value).startswith("invalid config for guidance_encoder 'open-clip-image': ")
    assert "'checkpoint'" in str(error.value)


@pytest.mark.parametrize("name", ["open-clip-text", "open-clip-image"])
def test_building_without_open_clip_is_one_clear_line(contrib, monkeypatch, name):
    monkeypatch.setitem(sys.modules, "open_clip", None)
    with pytest.raises(ConfigError) as error:
        medtalk.build("guidance_encoder", {"type": name})
    assert str(error.value) == (
        f"{name} needs open_clip_torch (and torchvision): pip install open_clip_torch with the torchvision "
        "build that matches your torch (ModuleNotFoundError: import of open_clip halted; None in sys.modules)"
    )


def _torchvision_problem() -> str | None:
    try:
        import torchvision  # noqa: F401
    except Exception as error:  # ImportError, or RuntimeError "operator torchvision::nms does not exist"
        return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
    try:
        import open_clip  # noqa: F401
    except Exception as error:
        return f"open_clip_torch does not import ({type(error).__name__}: {error})"
    return None


needs_open_clip = pytest.mark.skipif(
    (problem := _torchvision_problem()) is not None,
    reason=f"open_clip needs torchvision, which does not import here ({problem}; torchvision 0.28 fails "
    "next to the CPU torch 2.13.0, 0.29 needs torch >= 2.14): these tests run where it works (a GPU machine)",
)

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A random 2-layer open_clip model: its architecture file and a checkpoint, as a user would have them."""
    import open_clip
    import torch

    root = tmp_path_factory.mktemp("open_clip")
    architecture = root / "medtalk-tiny-clip.json"
    architecture.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(architecture)
    torch.manual_seed(0)
    model = open_clip.create_model("medtalk-tiny-clip")
    checkpoint = root / "tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    reference, _, preprocess = open_clip.create_model_and_transforms(
        "medtalk-tiny-clip", pretrained=str(checkpoint)
    )
    return (
        architecture,
        checkpoint,
        reference.eval(),
        preprocess,
        open_clip.get_tokenizer("medtalk-tiny-clip"),
    )


def _encoder(name, tiny_clip, **options):
    architecture, checkpoint = tiny_clip[:2]
    spec = {"type": name, "model": str(architecture), "pretrained": str(checkpoint), "input_dim": 16}
    return medtalk.build("guidance_encoder", spec | options)


PROJECTION_KEYS = ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]


@needs_open_clip
def test_open_clip_text_embeds_as_open_clip_does_and_keeps_it_out_of_the_state(contrib, tiny_clip):
    import torch

    reference, tokenizer = tiny_clip[2], tiny_clip[4]
    encoder = _encoder("open-clip-text", tiny_clip)
    assert sorted(encoder.state_dict()) == PROJECTION_KEYS
    texts = ["happy", "a furious scowl, brows down"]
    vectors = encoder.embed(texts)
    assert vectors.shape == (2, 16) and vectors.dtype == np.float32
    with torch.no_grad():
        expected = reference.encode_text(tokenizer(texts), normalize=True).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    assert sorted(encoder.state_dict()) == PROJECTION_KEYS
    assert encoder(torch.from_numpy(vectors)).shape == (2, 256)
    raw = _encoder("open-clip-text", tiny_clip, normalize=False).embed(texts)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), expected, atol=1e-5)


@needs_open_clip
def test_open_clip_image_embeds_as_open_clip_does(contrib, tiny_clip, tmp_path):
    import torch
    from PIL import Image

    reference, preprocess = tiny_clip[2], tiny_clip[3]
    paths = []
    for seed in range(2):
        pixels = np.random.default_rng(seed).integers(0, 256, (48, 40, 3), dtype=np.uint8)
        paths.append(tmp_path / f"face{seed}.png")
        Image.fromarray(pixels).save(paths[-1])
    encoder = _encoder("open-clip-image", tiny_clip)
    vectors = encoder.embed([str(p) for p in paths])
    assert vectors.shape == (2, 16)
    with torch.no_grad():
        images = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths])
        expected = reference.encode_image(images, normalize=True).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    assert sorted(encoder.state_dict()) == PROJECTION_KEYS
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(InputError) as error:
        encoder.embed([str(tmp_path / "notes.png")])
    assert str(error.value) == (
        f"{tmp_path / 'notes.png'}: not an image that Pillow can read (UnidentifiedImageError): "
        "give a PNG or JPEG file"
    )
    with pytest.raises(InputError) as error:
        encoder.embed([str(tmp_path / "missing.png")])
    assert str(error.value) == f"{tmp_path / 'missing.png'}: no such image file: check the path"


@needs_open_clip
def test_open_clip_loads_lazily_and_names_what_is_wrong(contrib, tiny_clip, tmp_path):
    missing = tmp_path / "nowhere.pt"
    encoder = _encoder("open-clip-text", tiny_clip, pretrained=str(missing))  # nothing loaded yet
    with pytest.raises(ConfigError) as error:
        encoder.embed(["calm"])
    assert str(error.value) == (
        f"open-clip-text: pretrained '{missing}' is neither a checkpoint file nor a pretrained tag of "
        "medtalk-tiny-clip (its tags: none): give a local checkpoint file or one of the tags"
    )
    with pytest.raises(ConfigError) as error:
        _encoder("open-clip-text", tiny_clip, model="ViT-Q-99").embed(["calm"])
    assert str(error.value) == (
        "open-clip-text: open_clip has no architecture 'ViT-Q-99': give one of open_clip.list_models() "
        "(e.g. ViT-B-32) or a .json architecture file"
    )
    with pytest.raises(ConfigError) as error:
        _encoder("open-clip-text", tiny_clip, input_dim=512).embed(["calm"])
    assert str(error.value) == (
        f"open-clip-text: {tiny_clip[0]} gives 16-value vectors, but input_dim is 512: set input_dim to 16"
    )
