"""Reading and writing rig sequences through the registered importers and exporters.

Every write goes to a temporary file beside the target and is renamed over it only when complete, so a
failing exporter leaves no new file and keeps an existing one intact.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medtalk.core.errors import InputError, OutputError
from medtalk.core.plugins import get_registry

if TYPE_CHECKING:
    from medtalk.core.sequence import RigSequence


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on failure delete it."""
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"{target}: is a folder: give a file name to write")
    if not target.parent.is_dir():
        raise OutputError(f"{target}: the folder {target.parent} does not exist: create it first")
    if target.exists() and not overwrite:
        raise OutputError(f"{target}: already exists: choose another name, or pass --force to replace it")
    handle, temp_name = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=f".partial{target.suffix}", dir=target.parent
    )
    os.close(handle)
    temp = Path(temp_name)
    try:
        yield temp
        _give_final_mode(temp, target)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _give_final_mode(temp: Path, target: Path) -> None:
    # mkstemp creates 0600; the result should look like any file the user writes (or keep the old mode).
    if target.exists():
        mode = target.stat().st_mode & 0o777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(temp, mode)


def format_for(kind: str, path: Path, format_name: str | None = None) -> str:
    """The name of the importer or exporter to use: ``format_name``, else the one fitting the extension.

    Where several importers share an extension, each one's ``sniff`` looks at the file's start.
    """
    registry = get_registry(kind)
    if format_name is not None:
        registry.get(format_name)
        return format_name
    suffix = path.suffix.lower()
    candidates = [reg.entry for reg in registry if suffix in reg.entry.extensions]
    if len(candidates) > 1 and kind == "importer":
        head = _head(path)
        candidates = [c for c in candidates if c.sniff(head)] if head is not None else []
    if len(candidates) == 1:
        return candidates[0].name
    reason = "several formats use" if candidates else "no format matches"
    option, error = ("--from", InputError) if kind == "importer" else ("--to", OutputError)
    raise error(
        f"{path}: {reason} the extension '{path.suffix}': pass {option} FORMAT "
        f"(one of {', '.join(registry.names())})"
    )


def _head(path: Path, size: int = 4096) -> str | None:
    try:
        with open(path, "rb") as stream:
            return stream.read(size).decode("utf-8", errors="replace")
    except OSError:
        return None


def check_readable(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file: check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a folder: give the path of a rig sequence file")


def read_sequence(
    path: str | os.PathLike[str], format_name: str | None = None, options: Mapping[str, Any] | None = None
) -> RigSequence:
    """Read a rig sequence with the importer named ``format_name`` or chosen by extension."""
    source = Path(path)
    check_readable(source)
    importer = get_registry("importer").build(
        {"type": format_for("importer", source, format_name), **(options or {})}
    )
    return importer.read(source)


def write_sequence(
    sequence: RigSequence,
    path: str | os.PathLike[str],
    format_name: str | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``sequence`` atomically with the exporter named ``format_name`` or chosen by extension."""
    target = Path(path)
    exporter = get_registry("exporter").build(
        {"type": format_for("exporter", target, format_name), **(options or {})}
    )
    rig = get_registry("rig").get(sequence.rig)
    sequence.check_rig(rig)
    with atomic_output(target, overwrite=overwrite) as temp:
        exporter.write(sequence, rig, temp)
    return target
