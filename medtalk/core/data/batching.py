"""Variable-length batches: features brought to the rig's frame rate, padding, masks, length buckets.

Every sequence in a batch is zero-padded to the longest one; ``mask`` marks the real frames, so losses
and attention ignore the padding. Feature streams at their own rate (mel 100 Hz, whisper 50 Hz) are
linearly interpolated in time to the sample's T frames first (DESIGN.md section 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from medtalk.core.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from medtalk.core.data.samples import Sample
    from medtalk.core.types import FeatureSeq

# Keys collate always fills; a feature stream called "content" arrives as "content_features".
BATCH_KEYS = ("rig", "mask", "lengths", "emotion", "text_tokens", "text_mask")
FEATURE_KEY_SUFFIX = "_features"


def interpolate_to_frames(values: np.ndarray, rate_hz: float, num_frames: int, fps: float) -> np.ndarray:
    """Resample (T_f, D) features at ``rate_hz`` to (num_frames, D) at ``fps`` by linear interpolation.

    Feature frame k stands for time k / rate_hz and output frame t for time t / fps; times before the
    first or after the last feature frame take that frame's value.
    """
    import numpy as np

    values = np.asarray(values)
    if values.ndim != 2:
        raise InputError(f"features need shape (frames, dims), got {values.shape}: reshape them first")
    if values.shape[0] == 0:
        raise InputError("the features have no frames: the audio is too short to featurize")
    if not (rate_hz > 0 and fps > 0):
        raise InputError(f"rates must be positive, got rate_hz={rate_hz}, fps={fps}")
    source = values.astype(np.float64, copy=False)
    positions = np.arange(num_frames, dtype=np.float64) * (rate_hz / fps)
    positions = np.clip(positions, 0.0, values.shape[0] - 1)
    before = np.floor(positions).astype(np.int64)
    after = np.minimum(before + 1, values.shape[0] - 1)
    weight = (positions - before)[:, None]
    return (source[before] * (1.0 - weight) + source[after] * weight).astype(np.float32)


def frame_count(sample: Sample, fps: float) -> int:
    """T for a sample: its rig frames, else round(audio duration x fps) from the audio file's header."""
    if sample.rig is not None:
        return int(sample.rig.shape[0])
    if sample.audio_path is None:
        raise InputError(
            f"sample '{sample.id}' has neither a rig nor audio, so its length is unknown: give it one"
        )
    import soundfile

    try:
        info = soundfile.info(sample.audio_path)
    except (OSError, soundfile.SoundFileError) as error:
        raise InputError(
            f"{sample.audio_path}: not a readable audio file: convert it to wav, flac, ogg or mp3"
        ) from error
    return round(info.frames / info.samplerate * fps)


def collate(
    samples: Sequence[Sample],
    features: Mapping[str, Sequence[FeatureSeq]] | None = None,
    fps: float | None = None,
    text_tokens: Sequence[np.ndarray] | None = None,
) -> dict[str, Any]:
    """Stack samples into padded torch tensors.

    Returns ``rig`` (B, Tmax, C) float32 (when the samples have rigs), ``mask`` (B, Tmax) bool, True on
    real frames, ``lengths`` (B,) long, ``emotion`` (B,) long (-1 where unknown), one
    ``<name>_features`` (B, Tmax, D) float32 per stream of ``features`` (each sample's features
    interpolated to its T frames), and with ``text_tokens`` (one (N, Dt) array per sample)
    ``text_tokens`` (B, Nmax, Dt) and ``text_mask`` (B, Nmax). ``fps`` defaults to the samples' own.
    """
    import numpy as np
    import torch

    if not samples:
        raise InputError("collate got no samples: give at least one")
    fps = _batch_fps(samples, fps)
    lengths = [frame_count(sample, fps) for sample in samples]
    longest = max(lengths)
    batch: dict[str, Any] = {}

    with_rig = [sample.rig is not None for sample in samples]
    if any(with_rig):
        if not all(with_rig):
            missing = samples[with_rig.index(False)].id
            raise InputError(
                f"sample '{missing}' has no rig but others in its batch do: batch samples of one kind, "
                "or require rig in the dataset config"
            )
        widths = {sample.rig.shape[1] for sample in samples}  # type: ignore[union-attr]
        if len(widths) > 1:
            raise InputError(
                f"the batch mixes rigs of {sorted(widths)} controls: retarget every sample to one rig"
            )
        batch["rig"] = torch.from_numpy(_padded([sample.rig for sample in samples], longest))  # type: ignore[misc]

    positions = np.arange(longest)
    batch["mask"] = torch.from_numpy(positions[None, :] < np.asarray(lengths)[:, None])
    batch["lengths"] = torch.tensor(lengths, dtype=torch.long)
    batch["emotion"] = torch.tensor([sample.emotion_index for sample in samples], dtype=torch.long)

    for name, streams in (features or {}).items():
        if len(streams) != len(samples):
            raise InputError(
                f"feature stream '{name}' has {len(streams)} entries for {len(samples)} samples: "
                "give one FeatureSeq per sample"
            )
        frames = [
            interpolate_to_frames(stream.values, stream.rate_hz, length, fps)
            for stream, length in zip(streams, lengths, strict=True)
        ]
        batch[name + FEATURE_KEY_SUFFIX] = torch.from_numpy(_padded(frames, longest))

    if text_tokens is not None:
        if len(text_tokens) != len(samples):
            raise InputError(
                f"text_tokens has {len(text_tokens)} entries for {len(samples)} samples: "
                "give one (tokens, dims) array per sample"
            )
        token_counts = [int(np.shape(tokens)[0]) for tokens in text_tokens]
        most = max(token_counts)
        batch["text_tokens"] = torch.from_numpy(_padded(list(text_tokens), most))
        batch["text_mask"] = torch.from_numpy(np.arange(most)[None, :] < np.asarray(token_counts)[:, None])
    return batch


def _batch_fps(samples: Sequence[Sample], fps: float | None) -> float:
    rates = {sample.fps for sample in samples}
    if fps is None:
        if len(rates) > 1:
            raise InputError(
                f"the batch mixes frame rates {sorted(rates)}: resample the rigs to one fps, or pass fps"
            )
        return float(rates.pop())
    for sample in samples:
        if sample.rig is not None and sample.fps != fps:
            raise InputError(
                f"sample '{sample.id}' has rig frames at {sample.fps:g} fps, but the batch is at "
                f"{fps:g} fps: resample the rig first"
            )
    return float(fps)


def _padded(arrays: Sequence[np.ndarray], length: int) -> np.ndarray:
    """(B, length, D) float32, each array's rows first and zeros after."""
    import numpy as np

    dims = {int(np.shape(array)[1]) for array in arrays}
    if len(dims) > 1:
        raise InputError(f"the batch mixes feature sizes {sorted(dims)}: use one featurizer for a stream")
    out = np.zeros((len(arrays), length, dims.pop()), dtype=np.float32)
    for row, array in enumerate(arrays):
        out[row, : len(array)] = array
    return out


def length_bucketed_batches(
    lengths: Sequence[int],
    batch_size: int,
    seed: int,
    shuffle: bool = True,
    *,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
    bucket_batches: int = 50,
) -> list[list[int]]:
    """Batches of sample indices whose lengths are close, for one epoch on one rank.

    The (shuffled) indices are cut into windows of ``bucket_batches`` batches; each window is sorted by
    length and cut into batches, so a batch holds similar lengths (little padding) while the windows keep
    the epochs varied. The batch order is then shuffled. The same ``seed`` gives the same batches; pass
    ``seed + epoch`` for a new order each epoch.

    For data-parallel training every rank calls this with the same seed and its own ``rank``: the ranks
    get disjoint batches, the same number each, all of ``batch_size`` samples (the last, partial batch
    and the batches that do not divide evenly among the ranks are left out of that epoch). With one
    rank the partial batch is kept unless ``drop_last``.
    """
    import numpy as np

    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise InputError(f"rank must be in 0..world_size-1, got rank {rank} of world_size {world_size}")
    if bucket_batches < 1:
        raise InputError(f"bucket_batches must be at least 1, got {bucket_batches}")
    lengths = np.asarray(lengths, dtype=np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths)) if shuffle else np.arange(len(lengths))

    window = batch_size * bucket_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        # A stable sort keeps the shuffled order among equal lengths, so ties vary with the seed.
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size].tolist() for i in range(0, len(chunk), batch_size)]

    # At most one batch (the last) can be short; it goes unless one rank may keep it.
    if batches and len(batches[-1]) < batch_size and (drop_last or world_size > 1):
        batches.pop()
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    if world_size > 1:
        per_rank = len(batches) // world_size
        if per_rank == 0:
            raise InputError(
                f"{len(lengths)} samples make fewer than one batch of {batch_size} for each of "
                f"{world_size} ranks: lower batch_size or use fewer ranks"
            )
        batches = batches[rank : per_rank * world_size : world_size]
    return batches
