"""An on-disk cache of computed features, so epochs after the first never featurize the audio again.

An entry is keyed by what determines its values: the featurizer (name, config, its optional
``cache_version``, and this cache's format version) and the SHA-256 of the audio file's bytes. Renaming
or touching a file keeps its entry; editing the audio or the featurizer's config makes a new one.

Each entry is one ``.npz`` file (no pickle) holding the values and a JSON record with the key and a
checksum of the values. It is written to a temporary file and renamed into place, so processes filling
the same cache (data-parallel ranks) never read half an entry; the last writer wins with equal values.
An entry that does not read back whole (truncated, bad checksum, wrong shape) is reported and rebuilt.
The folder is only ever a cache: deleting it costs one recomputation.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medtalk.core.errors import InputError, MedtalkWarning, OutputError

if TYPE_CHECKING:
    import numpy as np

    from medtalk.core.components import Featurizer
    from medtalk.core.types import FeatureSeq

# Bump when the entry layout or the meaning of a key changes: older entries are then never read.
CACHE_FORMAT_VERSION = 1
CACHE_DIR_ENV = "MEDTALK_CACHE_DIR"
_ENTRY_SUFFIX = ".npz"
_HASH_CHUNK = 1 << 20
# The featurizer's name only makes the folder readable (the hash is the key): keep it a plain file name.
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def default_cache_folder() -> Path:
    """``$MEDTALK_CACHE_DIR/features``, else ``$XDG_CACHE_HOME/medtalk/features`` (~/.cache by default)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]) / "features"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "medtalk" / "features"


@dataclass
class CacheStats:
    """What the cache did since it was opened."""

    hits: int = 0
    misses: int = 0
    rebuilt: int = 0  # corrupt entries found and recomputed (also counted as misses)


class _CorruptEntry(Exception):
    """An entry file that exists but does not read back as what was stored."""


class FeatureCache:
    """Features computed once per (featurizer config, audio content) and kept in ``folder``."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputError(f"{self.folder}: is a file, not a folder: give a folder for the feature cache")
        self.stats = CacheStats()
        self._lock = threading.Lock()
        # Hashing the audio every epoch would read every file again; a file whose size, mtime and inode
        # are unchanged is taken to have the same bytes within one process.
        self._content_hashes: dict[tuple[str, int, int, int], str] = {}

    def get(self, featurizer: Featurizer, audio_path: str | os.PathLike[str]) -> FeatureSeq:
        """The featurizer's output for the audio file: read from the cache, else computed and stored."""
        path = self.entry_path(featurizer, audio_path)
        if path.exists():
            try:
                features = self._read(path, featurizer)
            except _CorruptEntry as problem:
                warnings.warn(f"rebuilt corrupt cache entry {path}: {problem}", MedtalkWarning, stacklevel=2)
                self._count(misses=1, rebuilt=1)
            else:
                self._count(hits=1)
                return features
        else:
            self._count(misses=1)
        features = self._compute(featurizer, audio_path)
        self._write(path, featurizer, features)
        return features

    def entry_path(self, featurizer: Featurizer, audio_path: str | os.PathLike[str]) -> Path:
        """Where the entry for this featurizer config and audio content lives (it may not exist yet)."""
        return (
            self.folder
            / f"{_SAFE_NAME.sub('_', featurizer.name)}-{featurizer_key(featurizer)[:16]}"
            / f"{self.content_hash(audio_path)}{_ENTRY_SUFFIX}"
        )

    def content_hash(self, audio_path: str | os.PathLike[str]) -> str:
        """SHA-256 of the file's bytes (hex)."""
        path = Path(audio_path)
        try:
            status = path.stat()
        except FileNotFoundError:
            raise InputError(f"{path}: no such file: check the path") from None
        memo_key = (str(path.resolve()), status.st_size, status.st_mtime_ns, status.st_ino)
        with self._lock:
            known = self._content_hashes.get(memo_key)
        if known is not None:
            return known
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            while chunk := stream.read(_HASH_CHUNK):
                digest.update(chunk)
        with self._lock:
            self._content_hashes[memo_key] = digest.hexdigest()
        return digest.hexdigest()

    def _count(self, hits: int = 0, misses: int = 0, rebuilt: int = 0) -> None:
        with self._lock:
            self.stats.hits += hits
            self.stats.misses += misses
            self.stats.rebuilt += rebuilt

    @staticmethod
    def _compute(featurizer: Featurizer, audio_path: str | os.PathLike[str]) -> FeatureSeq:
        from medtalk.core.audio import load_audio

        return featurizer(load_audio(audio_path))

    def _read(self, path: Path, featurizer: Featurizer) -> FeatureSeq:
        import numpy as np

        from medtalk.core.types import FeatureSeq

        try:
            with np.load(path, allow_pickle=False) as entry:
                record = json.loads(str(entry["record"]))
                values = entry["values"]
        # A damaged file fails inside zipfile, numpy or json in many different ways (BadZipFile,
        # EOFError, ValueError, KeyError, struct.error, ...); any failure to read it means rebuild it.
        except Exception as error:
            raise _CorruptEntry(f"unreadable ({type(error).__name__}: {error})") from None
        if not isinstance(record, dict) or record.get("featurizer") != _featurizer_record(featurizer):
            raise _CorruptEntry("its record does not match the featurizer")
        if record.get("checksum") != _checksum(values):
            raise _CorruptEntry("the checksum of its values does not match")
        expected = (record.get("shape", [None])[0], featurizer.dim)
        if values.ndim != 2 or tuple(values.shape) != expected:
            raise _CorruptEntry(f"shape {values.shape}, expected ({expected[0]}, {featurizer.dim})")
        return FeatureSeq(values, rate_hz=float(record["rate_hz"]))

    def _write(self, path: Path, featurizer: Featurizer, features: FeatureSeq) -> None:
        import numpy as np

        values = np.ascontiguousarray(features.values)
        record = {
            "featurizer": _featurizer_record(featurizer),
            "rate_hz": float(features.rate_hz),
            "shape": list(values.shape),
            "checksum": _checksum(values),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.partial")
        try:
            with open(temp, "wb") as stream:
                np.savez(stream, values=values, record=np.array(json.dumps(record, sort_keys=True)))
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)


def featurizer_key(featurizer: Featurizer) -> str:
    """SHA-256 (hex) of what makes a featurizer's output: name, config, cache versions."""
    text = json.dumps(_featurizer_record(featurizer), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _featurizer_record(featurizer: Featurizer) -> dict[str, Any]:
    # A featurizer whose output changes for the same config (a new algorithm) sets cache_version.
    return {
        "name": featurizer.name,
        "config": featurizer.config.model_dump(mode="json"),
        "cache_version": getattr(featurizer, "cache_version", 0),
        "format": CACHE_FORMAT_VERSION,
    }


def _checksum(values: np.ndarray) -> str:
    import numpy as np

    digest = hashlib.sha256(f"{values.dtype.str}{values.shape}".encode())
    digest.update(np.ascontiguousarray(values))
    return digest.hexdigest()
