"""The feature cache: computed once per (featurizer config, audio content), corrupt entries rebuilt."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile
from pydantic import Field

import medtalk
from medtalk.core.components import ComponentConfig, Featurizer
from medtalk.core.data.cache import CACHE_DIR_ENV, FeatureCache, default_cache_folder
from medtalk.core.errors import InputError, MedtalkWarning, OutputError
from medtalk.core.types import FeatureSeq


class EnergyConfig(ComponentConfig):
    scale: float = Field(default=1.0, description="Multiplies every value")


class CountingEnergy(Featurizer):
    """Frame energy at 100 Hz in three columns; counts its calls."""

    name = "counting-energy"
    role = "emotion"
    Config = EnergyConfig

    def __init__(self, config=None, barrier: threading.Barrier | None = None) -> None:
        super().__init__(config)
        self.calls = 0
        self.barrier = barrier

    @property
    def dim(self) -> int:
        return 3

    @property
    def rate_hz(self) -> float:
        return 100.0

    def __call__(self, audio):
        self.calls += 1
        if self.barrier is not None:
            self.barrier.wait(timeout=10)  # every racing writer computes before any of them stores
        frames = audio.samples[: audio.num_samples // 160 * 160].reshape(-1, 160)
        energy = np.sqrt((frames**2).mean(axis=1)) * self.config.scale
        return FeatureSeq(np.stack([energy, energy**2, -energy], axis=1).astype(np.float32), rate_hz=100.0)


def write_wav(path: Path, frequency: float = 220.0, seconds: float = 0.3) -> Path:
    time = np.arange(round(seconds * 16_000)) / 16_000
    soundfile.write(path, 0.25 * np.sin(2 * np.pi * frequency * time), 16_000, subtype="FLOAT")
    return path


@pytest.fixture
def clips(tmp_path):
    (tmp_path / "audio").mkdir()
    return [write_wav(tmp_path / "audio" / f"clip{i}.wav", frequency=200.0 + 100 * i) for i in range(3)]


@pytest.fixture
def cache(tmp_path):
    return FeatureCache(tmp_path / "cache")


def test_the_second_epoch_computes_nothing(cache, clips):
    featurizer = CountingEnergy()
    first = [cache.get(featurizer, clip) for clip in clips]
    second = [cache.get(featurizer, clip) for clip in clips]
    assert featurizer.calls == 3
    assert (cache.stats.hits, cache.stats.misses, cache.stats.rebuilt) == (3, 3, 0)
    for computed, cached in zip(first, second, strict=True):
        np.testing.assert_array_equal(cached.values, computed.values)
        assert cached.values.dtype == np.float32 and cached.rate_hz == 100.0


def test_a_new_process_reads_what_an_earlier_one_stored(tmp_path, clips):
    FeatureCache(tmp_path / "cache").get(CountingEnergy(), clips[0])
    featurizer = CountingEnergy()
    reopened = FeatureCache(tmp_path / "cache")
    reopened.get(featurizer, clips[0])
    assert (featurizer.calls, reopened.stats.hits) == (0, 1)


def test_another_featurizer_config_is_another_entry(cache, clips):
    plain, scaled = CountingEnergy(), CountingEnergy(EnergyConfig(scale=2.0))
    a = cache.get(plain, clips[0])
    b = cache.get(scaled, clips[0])
    assert (plain.calls, scaled.calls) == (1, 1)
    np.testing.assert_allclose(b.values[:, 0], 2 * a.values[:, 0])
    assert cache.entry_path(plain, clips[0]) != cache.entry_path(scaled, clips[0])


def test_a_featurizer_cache_version_is_part_of_the_key(cache, clips):
    class CountingEnergyV2(CountingEnergy):
        cache_version = 2

    assert cache.entry_path(CountingEnergy(), clips[0]) != cache.entry_path(CountingEnergyV2(), clips[0])


def test_new_audio_content_is_a_new_entry(cache, clips):
    featurizer = CountingEnergy()
    before = cache.get(featurizer, clips[0])
    write_wav(clips[0], frequency=950.0, seconds=0.5)
    after = cache.get(featurizer, clips[0])
    assert featurizer.calls == 2
    assert after.values.shape != before.values.shape


def test_renaming_or_touching_the_audio_keeps_its_entry(tmp_path, clips):
    FeatureCache(tmp_path / "cache").get(CountingEnergy(), clips[0])
    moved = clips[0].rename(tmp_path / "renamed.wav")
    os.utime(moved, ns=(10**18, 10**18))
    featurizer = CountingEnergy()
    cache = FeatureCache(tmp_path / "cache")
    cache.get(featurizer, moved)
    assert (featurizer.calls, cache.stats.hits) == (0, 1)


def test_the_same_content_under_two_names_is_one_entry(cache, clips, tmp_path):
    copy = tmp_path / "copy.wav"
    copy.write_bytes(clips[1].read_bytes())
    featurizer = CountingEnergy()
    cache.get(featurizer, clips[1])
    cache.get(featurizer, copy)
    assert featurizer.calls == 1
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 1


def test_the_entry_lives_under_the_featurizer_name_and_the_audio_hash(cache, clips, tmp_path):
    import hashlib

    featurizer = CountingEnergy()
    cache.get(featurizer, clips[0])
    path = cache.entry_path(featurizer, clips[0])
    assert path.is_file()
    assert path.name == hashlib.sha256(clips[0].read_bytes()).hexdigest() + ".npz"
    assert re.fullmatch(r"counting-energy-[0-9a-f]{16}", path.parent.name)
    assert path.parent.parent == tmp_path / "cache"


def corrupt_message(path: Path, reason: str) -> str:
    """The exact warning, as a pattern for pytest.warns."""
    return corrupt_pattern(path, re.escape(reason))


def corrupt_pattern(path: Path, reason_pattern: str) -> str:
    return "^" + re.escape(f"rebuilt corrupt cache entry {path}: ") + reason_pattern + "$"


@pytest.mark.parametrize(
    "kept_bytes",
    [lambda size: 0, lambda size: 10, lambda size: size // 2, lambda size: size - 1],
    ids=["empty", "10 bytes", "half", "all but the last byte"],
)
def test_a_truncated_entry_is_rebuilt_with_a_warning(cache, clips, kept_bytes):
    featurizer = CountingEnergy()
    good = cache.get(featurizer, clips[0])
    path = cache.entry_path(featurizer, clips[0])
    data = path.read_bytes()
    path.write_bytes(data[: kept_bytes(len(data))])
    with pytest.warns(MedtalkWarning, match=corrupt_pattern(path, r"unreadable \(\w+: .+\)")):
        rebuilt = cache.get(featurizer, clips[0])
    np.testing.assert_array_equal(rebuilt.values, good.values)
    assert (featurizer.calls, cache.stats.rebuilt) == (2, 1)
    assert path.read_bytes() == data
    cache.get(featurizer, clips[0])  # whole again: a hit, and no warning (warnings are errors here)
    assert featurizer.calls == 2


def rewrite_entry(path: Path, values: np.ndarray, record_edit=None) -> None:
    with np.load(path, allow_pickle=False) as entry:
        record = str(entry["record"])
    if record_edit is not None:
        record = record_edit(record)
    with open(path, "wb") as stream:
        np.savez(stream, values=values, record=np.array(record))


def test_values_that_do_not_match_their_checksum_are_rebuilt(cache, clips):
    featurizer = CountingEnergy()
    good = cache.get(featurizer, clips[0])
    path = cache.entry_path(featurizer, clips[0])
    flipped = good.values.copy()
    flipped[3, 1] += 1.0
    rewrite_entry(path, flipped)
    with pytest.warns(
        MedtalkWarning, match=corrupt_message(path, "the checksum of its values does not match")
    ):
        rebuilt = cache.get(featurizer, clips[0])
    np.testing.assert_array_equal(rebuilt.values, good.values)
    assert featurizer.calls == 2


def test_an_entry_of_the_wrong_shape_is_rebuilt(cache, clips):
    import hashlib
    import json

    featurizer = CountingEnergy()
    good = cache.get(featurizer, clips[0])
    path = cache.entry_path(featurizer, clips[0])
    wide = np.zeros((good.values.shape[0], 4), np.float32)
    digest = hashlib.sha256(f"{wide.dtype.str}{wide.shape}".encode())
    digest.update(wide)

    def consistent_record(text):  # a well-formed entry, just not what this featurizer makes
        record = json.loads(text)
        return json.dumps({**record, "shape": list(wide.shape), "checksum": digest.hexdigest()})

    rewrite_entry(path, wide, consistent_record)
    frames = good.values.shape[0]
    with pytest.warns(
        MedtalkWarning, match=corrupt_message(path, f"shape ({frames}, 4), expected ({frames}, 3)")
    ):
        cache.get(featurizer, clips[0])
    assert featurizer.calls == 2


def test_an_entry_of_another_featurizer_is_rebuilt(cache, clips):
    featurizer = CountingEnergy()
    cache.get(featurizer, clips[0])
    path = cache.entry_path(featurizer, clips[0])
    values = cache.get(featurizer, clips[0]).values
    rewrite_entry(path, values, lambda text: text.replace('"scale": 1.0', '"scale": 3.0'))
    with pytest.warns(
        MedtalkWarning, match=corrupt_message(path, "its record does not match the featurizer")
    ):
        cache.get(featurizer, clips[0])
    assert featurizer.calls == 2


def test_a_pickled_entry_is_never_unpickled(cache, clips):
    featurizer = CountingEnergy()
    good = cache.get(featurizer, clips[0])
    path = cache.entry_path(featurizer, clips[0])
    with open(path, "wb") as stream:
        np.savez(stream, values=np.array([good.values], dtype=object), record=np.array("{}"))
    with pytest.warns(MedtalkWarning, match=corrupt_pattern(path, r"unreadable \(ValueError: .*pickle.*\)")):
        cache.get(featurizer, clips[0])
    assert featurizer.calls == 2


def test_racing_writers_leave_one_valid_entry_and_no_partial_files(tmp_path, clips):
    writers = 4
    featurizer = CountingEnergy(barrier=threading.Barrier(writers))
    caches = [FeatureCache(tmp_path / "cache") for _ in range(writers)]  # one per rank, one shared folder
    results: list[FeatureSeq] = []
    threads = [
        threading.Thread(target=lambda c=c: results.append(c.get(featurizer, clips[0]))) for c in caches
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert featurizer.calls == writers and len(results) == writers
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*")) == sorted(
        [
            caches[0].entry_path(featurizer, clips[0]).parent.name,
            caches[0].entry_path(featurizer, clips[0]).name,
        ]
    )
    reader, fresh = FeatureCache(tmp_path / "cache"), CountingEnergy()
    np.testing.assert_array_equal(reader.get(fresh, clips[0]).values, results[0].values)
    assert fresh.calls == 0


def test_a_write_that_fails_midway_leaves_no_entry_and_no_partial_file(cache, clips, tmp_path, monkeypatch):
    def half_then_fail(stream, **arrays):
        stream.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", half_then_fail)
    with pytest.raises(OSError):
        cache.get(CountingEnergy(), clips[0])
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_a_missing_audio_file_is_named(cache, tmp_path):
    with pytest.raises(InputError) as error:
        cache.get(CountingEnergy(), tmp_path / "nope.wav")
    assert str(error.value) == f"{tmp_path / 'nope.wav'}: no such file: check the path"


def test_a_file_in_place_of_the_folder_is_refused(tmp_path):
    (tmp_path / "cache").write_text("")
    with pytest.raises(OutputError) as error:
        FeatureCache(tmp_path / "cache")
    assert (
        str(error.value)
        == f"{tmp_path / 'cache'}: is a file, not a folder: give a folder for the feature cache"
    )


def test_the_default_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "mine"))
    assert default_cache_folder() == tmp_path / "mine" / "features"
    monkeypatch.delenv(CACHE_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_folder() == tmp_path / "xdg" / "medtalk" / "features"


def test_the_built_in_logmel_caches_like_any_featurizer(cache, clips):
    logmel = medtalk.build("featurizer", "logmel")
    computed = cache.get(logmel, clips[2])
    cached = cache.get(logmel, clips[2])
    np.testing.assert_array_equal(cached.values, computed.values)
    assert (cached.values.shape, cached.rate_hz, cache.stats.hits) == ((31, 80), 100.0, 1)
