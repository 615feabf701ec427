"""Reading and writing rig sequences through the registered importers and exporters.

Every write goes to a temporary file beside the target and is renamed over it only when complete, so a
failing exporter leaves no new file and keeps an existing one intact.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medtalk.core.errors import InputError, OutputError
from medtalk.core.plugins import get_registry

if TYPE_CHECKING:
    from medtalk.core.retarget import RigMapping
    from medtalk.core.sequence import RigSequence


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on failure delete it."""
    target = Path(path)
    check_output(target, overwrite=overwrite)
    try:
        temp = _create_temp_beside(target)
    except OSError as error:
        raise _output_error(target, error) from error
    try:
        yield temp
        if target.exists():
            os.chmod(temp, target.stat().st_mode & 0o7777)
        os.replace(temp, target)
    except BaseException as error:
        temp.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in _USER_FIXABLE_WRITE_ERRORS:
            raise _output_error(target, error) from error
        raise


def check_output(target: Path, *, overwrite: bool = False) -> None:
    """Refuse an output path that cannot be written: a folder, a missing folder, or (without
    ``overwrite``) an existing file. Commands call it before long work, so a refusal costs nothing."""
    if target.is_dir():
        raise OutputError(f"{target}: is a folder: give a file name to write")
    if not target.parent.is_dir():
        raise OutputError(f"{target}: the folder {target.parent} does not exist: create it first")
    if target.exists() and not overwrite:
        raise OutputError(f"{target}: already exists: choose another name, or pass --force to replace it")


# Write failures the user can fix (space, permissions, read-only media); others are bugs to report.
_USER_FIXABLE_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


def _output_error(target: Path, error: OSError) -> OutputError:
    return OutputError(
        f"{target}: cannot write it ({error.strerror}): free some space or choose another folder"
    )


def _create_temp_beside(target: Path) -> Path:
    # Created with mode 0o666 so the kernel applies the user's umask, as for any file they write
    # (mkstemp would give 0600, and reading the umask means setting it, which is not thread-safe).
    while True:
        temp = target.with_name(f".{target.stem}.{secrets.token_hex(4)}.partial{target.suffix}")
        try:
            os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return temp
        except FileExistsError:
            continue


def format_for(kind: str, path: Path, format_name: str | None = None) -> str:
    """The name of the importer or exporter to use: ``format_name``, else the one fitting the extension.

    Where several importers share an extension, each one's ``sniff`` looks at the file's start; where
    several formats still fit, the one named after the extension (``csv`` for ``.csv``) wins.
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
    if len(candidates) > 1:
        # Several formats write .csv (plain, Unreal curves, Live Link): the one named after it is the default.
        candidates = [c for c in candidates if c.name == suffix.lstrip(".")] or candidates
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


def output_rig(exporter: Any, rig_name: str) -> str:
    """The rig an exporter writes a ``rig_name`` sequence as: the same, unless the format cannot hold it."""
    if exporter.rigs is None or rig_name in exporter.rigs:
        return rig_name
    return exporter.rigs[0]


def write_sequence(
    sequence: RigSequence,
    path: str | os.PathLike[str],
    format_name: str | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    overwrite: bool = False,
    mapping: RigMapping | None = None,
) -> Path:
    """Write ``sequence`` atomically with the exporter named ``format_name`` or chosen by extension.

    ``mapping`` retargets the sequence first; a format that holds only certain rigs gets the sequence
    retargeted to its first rig through the built-in mapping otherwise.
    """
    from medtalk.core.retarget import retarget

    target = Path(path)
    exporter = get_registry("exporter").build(
        {"type": format_for("exporter", target, format_name), **(options or {})}
    )
    if mapping is not None:
        sequence = mapping.apply(sequence)
    sequence = retarget(sequence, output_rig(exporter, sequence.rig))
    rig = get_registry("rig").get(sequence.rig)
    sequence.check_rig(rig)
    with atomic_output(target, overwrite=overwrite) as temp:
        exporter.write(sequence, rig, temp)
    return target
