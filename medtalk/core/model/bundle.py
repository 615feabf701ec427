"""Model bundles: a folder with ``model.safetensors`` (the weights) and ``model.json`` (the model card).

The card holds what rebuilds the model (``model``: the config of every part, as
``MedtalkModel.config_dict`` gives it) and whatever the caller says about it (rig, fps, training data,
metrics, ...), plus ``format``, ``format_version``, ``medtalk_version`` and the SHA-256 of every weights
file. Frozen backbones that came with the weights (the authors' wav2vec2, say) are kept beside them as
``backbones/NAME.safetensors`` and listed under ``backbones``. Nothing here unpickles anything.

A bundle is written into a temporary folder beside the target and renamed into place only when complete,
so a failure never leaves half a bundle, and an existing bundle is replaced only with ``overwrite``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medtalk.core.errors import ConfigError, FileFormatError, InputError, OutputError

if TYPE_CHECKING:
    import torch

    from medtalk.core.model.modules import MedtalkModel

BUNDLE_FORMAT = "medtalk-bundle"
BUNDLE_FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"
BACKBONE_FOLDER = "backbones"
# Keys the bundle writes itself. A caller's card may repeat the first four with the same values (the
# training runner records the model config, say); a different value, or weights/backbones, is refused.
RESERVED_CARD_KEYS = ("format", "format_version", "medtalk_version", "model", "weights", "backbones")


@dataclass
class Backbone:
    """Frozen weights kept beside the model (e.g. the authors' wav2vec2), with what they are."""

    tensors: Mapping[str, torch.Tensor]
    info: dict[str, Any] = field(default_factory=dict)


def save_bundle(
    folder: str | os.PathLike[str],
    model: MedtalkModel,
    card: Mapping[str, Any],
    *,
    backbones: Mapping[str, Backbone] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` and its ``card`` as a bundle folder, atomically; return the folder."""
    target = Path(folder)
    check_target(target, overwrite)
    _check_reserved_keys(card, model)
    for name in backbones or {}:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(
                f"backbone name '{name}' is not a plain file name: use letters, digits, - and _"
            )
    _check_json(card)
    try:
        temp = _create_folder_beside(target, "partial")
    except OSError as error:
        raise _write_error(target, error) from error
    try:
        _write_contents(temp, model, card, backbones or {})
        _move_into_place(temp, target)
    except BaseException as error:
        shutil.rmtree(temp, ignore_errors=True)
        if isinstance(error, OSError):
            raise _write_error(target, error) from error
        raise
    return target


def _write_error(target: Path, error: OSError) -> OutputError:
    return OutputError(
        f"{target}: cannot write the bundle ({error.strerror or error}): "
        "free some space or choose another folder"
    )


def check_target(target: Path, overwrite: bool) -> None:
    """Refuse a bundle folder that cannot be written: a missing parent, a file, or an existing bundle."""
    if not target.parent.is_dir():
        raise OutputError(f"{target}: the folder {target.parent} does not exist: create it first")
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target}: is a file: give the name of a folder to write the bundle into")
    if target.exists() and not overwrite:
        raise OutputError(f"{target}: already exists: choose another folder, or pass --force to replace it")


def _own_keys(model: MedtalkModel) -> dict[str, Any]:
    from medtalk import __version__

    return {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "medtalk_version": __version__,
        "model": model.config_dict(),
    }


def _check_reserved_keys(card: Mapping[str, Any], model: MedtalkModel) -> None:
    own = _own_keys(model)
    for key in RESERVED_CARD_KEYS:
        if key in card and (
            key not in own
            or json.dumps(card[key], sort_keys=True, default=str) != json.dumps(own[key], sort_keys=True)
        ):
            raise ConfigError(
                f"the model card sets '{key}' to another value than the bundle writes itself: leave it out"
            )


def _check_json(card: Mapping[str, Any]) -> None:
    try:
        json.dumps(card, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"the model card cannot be written as JSON ({error}): "
            "give plain values (text, numbers, lists, maps)"
        ) from None


def _create_folder_beside(target: Path, purpose: str) -> Path:
    # Created with mode 0o777 so the kernel applies the user's umask, as for any folder they make
    # (mkdtemp would give 0700, and reading the umask means setting it, which is not thread-safe).
    while True:
        folder = target.with_name(f".{target.name}.{secrets.token_hex(4)}.{purpose}")
        try:
            folder.mkdir(mode=0o777)
            return folder
        except FileExistsError:
            continue


def _write_contents(
    temp: Path, model: MedtalkModel, card: Mapping[str, Any], backbones: Mapping[str, Backbone]
) -> None:
    from safetensors.torch import save_file

    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(temp / WEIGHTS_FILE), metadata={"format": "pt"})
    own = _own_keys(model)
    document: dict[str, Any] = {
        **{key: own[key] for key in ("format", "format_version", "medtalk_version")},
        **{key: value for key, value in card.items() if key not in own},
        "model": own["model"],
        "weights": {
            "file": WEIGHTS_FILE,
            "sha256": file_sha256(temp / WEIGHTS_FILE),
            "parameters": sum(p.numel() for p in model.parameters()),
        },
    }
    if backbones:
        (temp / BACKBONE_FOLDER).mkdir()
        document["backbones"] = {}
        for name, backbone in backbones.items():
            relative = f"{BACKBONE_FOLDER}/{name}.safetensors"
            save_file(_unshared(backbone.tensors), str(temp / relative), metadata={"format": "pt"})
            document["backbones"][name] = {
                **backbone.info,
                "file": relative,
                "sha256": file_sha256(temp / relative),
                "tensors": len(backbone.tensors),
            }
    card_path = temp / CARD_FILE
    card_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    # safetensors writes its files 0600; give them the mode the umask gave the card, like any user file.
    mode = card_path.stat().st_mode & 0o777
    for weights in [WEIGHTS_FILE, *(entry["file"] for entry in document.get("backbones", {}).values())]:
        os.chmod(temp / weights, mode)


def _unshared(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous tensors, each with its own memory: safetensors refuses tensors that share storage."""
    seen: set[int] = set()
    result = {}
    for key, tensor in tensors.items():
        tensor = tensor.detach().contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen and tensor.numel():
            tensor = tensor.clone()
        seen.add(pointer)
        result[key] = tensor
    return result


def _move_into_place(temp: Path, target: Path) -> None:
    if not target.exists():
        os.rename(temp, target)
        return
    # Replace an existing bundle in two renames: it is moved aside first, so a failure in between still
    # leaves a complete bundle (the old one) under its own name.
    old = _create_folder_beside(target, "old")
    os.rename(target, old / target.name)
    try:
        os.rename(temp, target)
    except BaseException:
        os.rename(old / target.name, target)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------- loading


def read_card(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The bundle's ``model.json``, checked to be a medtalk bundle card this version can read."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(
            f"{root}: no such bundle folder: give a folder with model.json and model.safetensors "
            "(made by medtalk train or medtalk import-official)"
        )
    path = root / CARD_FILE
    if not path.is_file():
        raise InputError(
            f"{root}: has no {CARD_FILE}, so it is not a model bundle: give a folder made by medtalk train "
            "or medtalk import-official"
        )
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FileFormatError(f"{path}: is not valid JSON ({error}): re-create the bundle") from None
    if not isinstance(card, dict) or card.get("format") != BUNDLE_FORMAT:
        raise FileFormatError(
            f'{path}: is not a medtalk bundle card (no "format": "{BUNDLE_FORMAT}"): re-create the bundle'
        )
    version = card.get("format_version")
    if not isinstance(version, int) or version > BUNDLE_FORMAT_VERSION:
        raise FileFormatError(
            f"{path}: has bundle format version {version!r}, this medtalk reads up to "
            f"{BUNDLE_FORMAT_VERSION}: upgrade medtalk"
        )
    for key, kind in (("model", dict), ("weights", dict)):
        if not isinstance(card.get(key), kind):
            raise FileFormatError(f"{path}: key '{key}' is missing or not a mapping: re-create the bundle")
    return card


def load_bundle(folder: str | os.PathLike[str]) -> tuple[MedtalkModel, dict[str, Any]]:
    """Rebuild the model from the card, load its weights strictly; return it (in eval mode) and the card."""
    from medtalk.core.model.modules import MedtalkModel

    root = Path(folder)
    card = read_card(root)
    try:
        model = MedtalkModel.from_config(card["model"])
    except ConfigError as error:
        raise type(error)(f"{root / CARD_FILE}: {error}") from None
    weights = _read_weights(root, card["weights"])
    check_state_dict(
        model.state_dict(),
        weights,
        f"{root / WEIGHTS_FILE}",
        "the weights and model.json do not belong together: re-create the bundle",
    )
    model.load_state_dict(weights, strict=True)
    model.eval()
    return model, card


def load_backbone(folder: str | os.PathLike[str], name: str) -> dict[str, torch.Tensor]:
    """The tensors of backbone ``name`` kept in the bundle (e.g. ``wav2vec2``), checksum verified."""
    root = Path(folder)
    card = read_card(root)
    entries = card.get("backbones") or {}
    if name not in entries:
        listed = ", ".join(sorted(entries)) or "none"
        raise InputError(f"{root}: has no backbone '{name}' (it has: {listed}): use one of those")
    return _read_weights(root, entries[name])


def _read_weights(root: Path, entry: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    relative = entry.get("file")
    if not isinstance(relative, str) or Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise FileFormatError(
            f"{root / CARD_FILE}: names weights file {relative!r}, not a path inside the bundle: "
            "re-create the bundle"
        )
    path = root / relative
    if not path.is_file():
        raise InputError(f"{path}: is missing from the bundle: copy the whole bundle folder, or re-create it")
    if entry.get("sha256") != file_sha256(path):
        raise FileFormatError(
            f"{path}: does not match the checksum in {CARD_FILE}: the file is damaged or was replaced; "
            "copy the bundle again or re-create it"
        )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise FileFormatError(
            f"{path}: is not a readable safetensors file ({error}): re-create the bundle"
        ) from None


def check_state_dict(
    expected: Mapping[str, torch.Tensor],
    found: Mapping[str, torch.Tensor],
    source: str,
    fix: str,
    display: Callable[[str], str] = str,
) -> None:
    """One-line FileFormatError for the first missing, extra or mis-shaped key of ``found``.

    ``display`` turns a key into the name the user knows (the authors' names, for an imported checkpoint).
    """
    for key, tensor in expected.items():
        if key not in found:
            raise FileFormatError(f"{source}: lacks '{display(key)}' (shape {_shape(tensor)}): {fix}")
    for key in found:
        if key not in expected:
            raise FileFormatError(f"{source}: has '{display(key)}', which the model does not: {fix}")
    for key, tensor in expected.items():
        if tuple(found[key].shape) != tuple(tensor.shape):
            raise FileFormatError(
                f"{source}: '{display(key)}' has shape {_shape(found[key])}, the model expects "
                f"{_shape(tensor)}: {fix}"
            )


def _shape(tensor: torch.Tensor) -> str:
    return "(" + ", ".join(str(size) for size in tensor.shape) + ")"
