"""Streaming inference: audio arrives in chunks, rig frames leave as soon as the look-ahead allows.

A ``StreamingSession`` wraps a loaded ``Pipeline``. Output frame t (time t / fps) is final once the audio
up to t / fps + lookahead has arrived; ``push`` returns the frames that became final, ``finish`` the rest,
so a stream gives round(duration x fps) frames, exactly as offline.

Every stage works on a sliding window, so a chunk costs the same at minute 10 as at second 1:

- featurizers: feature frames are cached once final (their right context has arrived) and only the frames
  after the cache are computed, from the audio since the cache end minus a left context;
- model and post-processors: run on the new frames plus their receptive field on each side, which is
  measured once per pipeline by perturbing one frame (so a third-party part needs no declaration).

Away from the edges the frames equal offline ``Pipeline(...)`` output when the look-ahead covers the
right receptive field of the whole chain (docs/server.md gives the figures). A featurizer that cannot
run on windows as it is streams through its ``streaming_form`` (``medtalk.core.components.StreamingForm``):
a featurizer for windows with a declared context, and the columns whose whole-clip z-score, which cannot
be known before the utterance ends, becomes a z-score over the frames heard so far. Intensity comes from
the emotion features alone (no transcript while streaming).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from medtalk.core.audio import TARGET_SAMPLE_RATE
from medtalk.core.errors import ConfigError, InputError

if TYPE_CHECKING:
    import numpy as np

    from medtalk.core.components import StreamingForm
    from medtalk.core.pipeline import Pipeline
    from medtalk.core.sequence import RigSequence

DEFAULT_LOOKAHEAD_MS = 100.0
# The receptive field of a model or post-processor is measured on this many frames; a part that reaches
# further than half of it is treated as looking at the whole sequence, which cannot stream.
_PROBE_FRAMES = 257
_PROBE_AUDIO_S = 1.0
_MAX_CHUNK_SAMPLES = 16000 * 60  # one push may carry at most a minute of audio


@dataclass
class StreamSummary:
    """What ``finish`` reports about a whole stream."""

    frames: int
    duration_s: float
    fps: float
    rig: str
    lookahead_ms: float
    exact_lookahead_ms: float
    compute_s: float
    pushes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "duration_s": round(self.duration_s, 6),
            "fps": self.fps,
            "rig": self.rig,
            "lookahead_ms": self.lookahead_ms,
            "exact_lookahead_ms": round(self.exact_lookahead_ms, 3),
            "compute_s": round(self.compute_s, 6),
            "pushes": self.pushes,
        }


@dataclass
class _Reach:
    """Frames a part reads before and after the frame it computes."""

    left: int
    right: int


@dataclass
class _PipelineProbe:
    model: _Reach
    postprocessors: _Reach
    # The furthest frame the first frames of a sequence read (Savitzky-Golay fits its edges to a whole
    # window, so frame 0 reads window - 1 frames ahead, further than a middle frame does).
    postprocessors_edge: int
    featurizers: dict[tuple[Any, ...], tuple[_Reach, _Reach]] = field(default_factory=dict)


_probes: weakref.WeakKeyDictionary[Any, _PipelineProbe] = weakref.WeakKeyDictionary()


@dataclass
class _StreamPlan:
    """How one featurizer streams: what runs on windows, its declared context (None: measured), and the
    columns that get a running z-score."""

    featurizer: Any
    declared: _Reach | None
    running_z_score: tuple[int, ...]


class _FeatureStream:
    """One featurizer's frames for a stream: a cache of final frames and the provisional tail."""

    def __init__(self, featurizer: Any, reach: _Reach, running_z_score: tuple[int, ...]) -> None:
        import numpy as np

        self.featurizer = featurizer
        self.rate_hz = float(featurizer.rate_hz)
        hop = TARGET_SAMPLE_RATE / self.rate_hz
        self.hop = round(hop)
        # Frames of context read on each side: the measured or declared reach, plus one for safety.
        self.left = reach.left + 1
        self.right = reach.right + 1
        self.normalizer = _RunningZScore(running_z_score) if running_z_score else None
        self.cache = np.zeros((0, featurizer.dim), dtype=np.float32)
        self.cache_start = 0  # global index of cache[0]
        self.final_until = 0  # global index one past the last cached frame

    def frames(self, audio: _AudioBuffer, finished: bool) -> tuple[np.ndarray, int]:
        """(values, global index of values[0]): every frame from the cache start to the audio's end."""
        import numpy as np

        from medtalk.core.audio import Audio

        total_frames = audio.received // self.hop + 1
        if self.final_until < total_frames:
            first = max(self.final_until - self.left, 0)
            segment = audio.read(first * self.hop, audio.received)
            computed = self.featurizer(Audio(segment)).values.astype(np.float32)
            # Frames whose own context was cut by the segment start are dropped: they are in the cache.
            keep = computed[self.final_until - first : total_frames - first]
            final = total_frames if finished else max(audio.received // self.hop - self.right, 0)
            final = max(min(final, total_frames), self.final_until)
            newly_final = keep[: final - self.final_until]
            if len(newly_final):
                self.cache = np.concatenate([self.cache, newly_final])
                if self.normalizer is not None:
                    self.normalizer.add(newly_final)
                self.final_until = final
            tail = keep[len(newly_final) :]
        else:
            tail = self.cache[:0]
        values = np.concatenate([self.cache, tail]) if len(tail) else self.cache
        if self.normalizer is not None:
            values = self.normalizer.apply(values)
        return values, self.cache_start

    def forget_before(self, frame: int) -> None:
        """Drop cached frames before global index ``frame`` (no later push reads them)."""
        drop = min(max(frame - self.cache_start, 0), len(self.cache))
        if drop:
            self.cache = self.cache[drop:]
            self.cache_start += drop

    def first_sample_needed(self) -> int:
        return max(self.final_until - self.left, 0) * self.hop


class _RunningZScore:
    """A whole-clip z-score of some columns, with the mean and deviation of the final frames so far."""

    def __init__(self, columns: tuple[int, ...]) -> None:
        import numpy as np

        self.columns = np.array(columns, dtype=np.int64)
        self.count = 0
        self.sum = np.zeros(len(self.columns))
        self.sum_squares = np.zeros(len(self.columns))

    def add(self, raw: np.ndarray) -> None:
        import numpy as np

        block = raw[:, self.columns].astype(np.float64)
        self.count += len(block)
        self.sum += block.sum(axis=0)
        self.sum_squares += (block**2).sum(axis=0)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        import numpy as np

        if self.count == 0:
            # Nothing final yet: the statistics of what there is.
            block = raw[:, self.columns].astype(np.float64)
            mean, std = block.mean(axis=0), block.std(axis=0)
        else:
            mean = self.sum / self.count
            std = np.sqrt(np.maximum(self.sum_squares / self.count - mean**2, 0.0))
        # As the featurizers' own z-scores do: a column that does not vary is only centred.
        scale = np.where(std > 1e-6 * np.maximum(np.abs(mean), 1.0), std, 1.0)
        out = raw.astype(np.float32, copy=True)
        out[:, self.columns] = ((raw[:, self.columns] - mean) / scale).astype(np.float32)
        return out


class _AudioBuffer:
    """The stream's 16 kHz samples, with everything no stage will read again dropped."""

    def __init__(self) -> None:
        import numpy as np

        self.samples = np.zeros(0, dtype=np.float32)
        self.start = 0  # global index of samples[0]
        self.received = 0

    def append(self, chunk: np.ndarray) -> None:
        import numpy as np

        self.samples = np.concatenate([self.samples, chunk])
        self.received += len(chunk)

    def read(self, first: int, stop: int) -> np.ndarray:
        if first < self.start:
            raise RuntimeError(f"streaming read sample {first}, but the buffer starts at {self.start}")
        return self.samples[first - self.start : stop - self.start]

    def forget_before(self, sample: int) -> None:
        drop = min(max(sample - self.start, 0), len(self.samples))
        if drop:
            self.samples = self.samples[drop:]
            self.start += drop


def _stream_plan(featurizer: Any, role: str) -> _StreamPlan:
    """How ``featurizer`` streams (as it is, or through its ``streaming_form``), or a one-line ConfigError."""
    if featurizer is None:
        raise ConfigError(f"this model's card names no {role} featurizer: it cannot animate audio")
    if getattr(featurizer, "supports_streaming", False):
        return _StreamPlan(featurizer, None, ())
    form = featurizer.streaming_form()
    if form is None:
        raise ConfigError(
            f"the {role} featurizer '{featurizer.name}' cannot stream (it reads the whole clip): use a model "
            "whose featurizers stream (logmel, prosody), or animate whole files with POST /v1/animate"
        )
    return _StreamPlan(form.featurizer, _declared_reach(featurizer, form), tuple(form.running_z_score))


def _declared_reach(featurizer: Any, form: StreamingForm) -> _Reach:
    """The frames of context a ``StreamingForm`` declares, after checking that it fits its featurizer."""
    windowed = form.featurizer
    problem = None
    if not all(math.isfinite(s) and s >= 0 for s in (form.left_s, form.right_s)):
        problem = f"has left_s {form.left_s:g} and right_s {form.right_s:g}, where both must be seconds >= 0"
    elif (windowed.dim, float(windowed.rate_hz)) != (featurizer.dim, float(featurizer.rate_hz)):
        problem = (
            f"runs a featurizer of {windowed.dim} dims at {float(windowed.rate_hz):g} Hz, not "
            f"{featurizer.dim} dims at {float(featurizer.rate_hz):g} Hz as the featurizer itself"
        )
    elif any(not 0 <= column < featurizer.dim for column in form.running_z_score):
        problem = f"z-scores columns {list(form.running_z_score)}, not all within 0..{featurizer.dim - 1}"
    if problem is not None:
        raise ConfigError(
            f"featurizer '{featurizer.name}' cannot stream: its StreamingForm {problem}: "
            "fix its streaming_form"
        )
    rate = float(windowed.rate_hz)
    return _Reach(math.ceil(form.left_s * rate), math.ceil(form.right_s * rate))


def _probe_featurizer(plan: _StreamPlan) -> _Reach:
    """How many frames before and after a sample's frame one sample changes (as declared, for a
    featurizer that streams through its streaming_form), after checking the framing either way."""
    import numpy as np

    from medtalk.core.audio import Audio

    featurizer = plan.featurizer
    hop_exact = TARGET_SAMPLE_RATE / float(featurizer.rate_hz)
    if abs(hop_exact - round(hop_exact)) > 1e-9:
        raise ConfigError(
            f"featurizer '{featurizer.name}' runs at {featurizer.rate_hz:g} Hz, not a whole number of "
            f"samples per frame at {TARGET_SAMPLE_RATE} Hz: it cannot stream"
        )
    hop = round(hop_exact)
    samples = np.random.default_rng(0).normal(0, 0.1, int(_PROBE_AUDIO_S * TARGET_SAMPLE_RATE))
    samples = samples.astype(np.float32)
    middle = len(samples) // 2 // hop * hop
    base = featurizer(Audio(samples)).values
    if base.shape[0] != len(samples) // hop + 1:
        # Windows are stitched by frame index: frame k must be centred on sample k x hop.
        raise ConfigError(
            f"featurizer '{featurizer.name}' gives {base.shape[0]} frames for {len(samples)} samples, not "
            f"samples // {hop} + 1 (frame k centred on sample k x {hop}): it cannot stream"
        )
    if plan.declared is not None:
        return plan.declared
    changed = samples.copy()
    changed[middle] += 0.5
    moved = np.flatnonzero(np.abs(featurizer(Audio(changed)).values - base).max(axis=1) > 0)
    frame = middle // hop
    if len(moved) == 0:
        return _Reach(0, 0)
    return _Reach(int(max(frame - moved.min(), 0)), int(max(moved.max() - frame, 0)))


def _reach_of(run: Any, frames: int, width: int, what: str) -> _Reach:
    """Receptive field of a per-sequence function ``run`` on (frames, width) arrays, found by perturbing
    the middle frame."""
    import numpy as np

    rng = np.random.default_rng(0)
    values = rng.normal(0, 1, (frames, width)).astype(np.float32)
    base = run(values)
    middle = frames // 2
    changed = values.copy()
    changed[middle] += 1.0
    moved = np.flatnonzero(np.abs(run(changed) - base).max(axis=1) > 1e-7)
    if len(moved) == 0:
        return _Reach(0, 0)
    reach = _Reach(int(max(middle - moved.min(), 0)), int(max(moved.max() - middle, 0)))
    if max(reach.left, reach.right) >= middle - 1:
        raise ConfigError(f"{what} reads the whole sequence at once: it cannot stream")
    return reach


def _edge_reach(run: Any, width: int, reach: _Reach) -> int:
    """The furthest frame that output frames 0 .. reach.left - 1 (the left edge) read."""
    import numpy as np

    values = np.random.default_rng(1).normal(0, 1, (_PROBE_FRAMES, width)).astype(np.float32)
    base = run(values)[: reach.left]
    furthest = reach.right
    for frame in range(reach.left + 4 * (reach.left + reach.right) + 4):
        changed = values.copy()
        changed[frame] += 1.0
        if np.abs(run(changed)[: reach.left] - base).max(initial=0.0) > 1e-7:
            furthest = max(furthest, frame)
    return furthest


def _probe(pipeline: Pipeline, content: Any, emotion: Any) -> _PipelineProbe:
    import torch

    from medtalk.core.sequence import RigSequence

    cached = _probes.get(pipeline)
    if cached is not None:
        return cached
    model = pipeline.model
    guidance = model.encode_guidance(*_any_guidance(model)).detach()
    content_dim, emotion_dim = content.dim, emotion.dim

    def run_model(values: np.ndarray) -> np.ndarray:
        features = torch.from_numpy(values)[None].to(pipeline.device)
        with torch.no_grad():
            out = model(features[..., :content_dim], features[..., content_dim:], None, None, guidance)["rig"]
        return out[0].cpu().numpy()

    def run_postprocessors(values: np.ndarray) -> np.ndarray:
        sequence = RigSequence(values, fps=pipeline.fps, rig=pipeline.rig.name)
        for postprocessor in pipeline.postprocessors:
            sequence = postprocessor(sequence, pipeline.rig)
        return sequence.values

    post = _reach_of(run_postprocessors, _PROBE_FRAMES, pipeline.rig.num_controls, "a post-processor")
    probe = _PipelineProbe(
        model=_reach_of(run_model, _PROBE_FRAMES, content_dim + emotion_dim, "the model"),
        postprocessors=post,
        postprocessors_edge=_edge_reach(run_postprocessors, pipeline.rig.num_controls, post),
    )
    _probes[pipeline] = probe
    return probe


def _any_guidance(model: Any) -> tuple[str, Any]:
    import torch

    for modality, encoder in model.guidance.items():
        if modality == "label":
            return modality, torch.tensor([0])
        size = getattr(encoder.config, "input_dim", None)
        if size is not None:
            return modality, torch.zeros(1, size)
    raise ConfigError("this model has no guidance encoder: it cannot animate")


def check_streaming(pipeline: Pipeline) -> None:
    """Whether ``pipeline`` can stream: a one-line ConfigError if not. Also measures the receptive fields
    (once per pipeline), so the first stream does not wait for it."""
    _streaming_parts(pipeline)


def _streaming_parts(pipeline: Pipeline) -> tuple[list[_FeatureStream], _PipelineProbe]:
    """The feature streams of a new session and the pipeline's measured receptive fields."""
    content = _stream_plan(pipeline.content_featurizer, "content")
    emotion = _stream_plan(pipeline.emotion_featurizer, "emotion")
    probe = _probe(pipeline, content.featurizer, emotion.featurizer)
    key = tuple((plan.featurizer.name, plan.declared is None) for plan in (content, emotion))
    if key not in probe.featurizers:
        probe.featurizers[key] = (_probe_featurizer(content), _probe_featurizer(emotion))
    content_reach, emotion_reach = probe.featurizers[key]
    streams = [
        _FeatureStream(content.featurizer, content_reach, content.running_z_score),
        _FeatureStream(emotion.featurizer, emotion_reach, emotion.running_z_score),
    ]
    return streams, probe


class StreamingSession:
    """Incremental animation of one audio stream under one guidance.

    ``push(chunk)`` takes float32 samples in [-1, 1] or int16 PCM, mono, at ``sample_rate``, and returns
    the frames that became final (a ``RigSequence``, possibly of 0 frames); ``finish()`` returns the
    remaining frames and a ``StreamSummary``. Not thread-safe: one session per stream.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        guidance: str = "label:neutral",
        lookahead_ms: float = DEFAULT_LOOKAHEAD_MS,
        sample_rate: int = TARGET_SAMPLE_RATE,
        fps: float | None = None,
    ) -> None:
        import time

        import torch

        if not (isinstance(lookahead_ms, int | float) and 0 <= lookahead_ms <= 10_000):
            raise InputError(f"lookahead_ms must be 0..10000, got {lookahead_ms}: e.g. 100")
        if not (isinstance(sample_rate, int) and 8000 <= sample_rate <= 192_000):
            raise InputError(
                f"sample_rate must be a whole number of Hz from 8000 to 192000, got {sample_rate}"
            )
        if fps is not None and not (isinstance(fps, int | float) and 1 <= fps <= 240):
            raise InputError(f"fps must be 1..240, got {fps}: e.g. 60")
        started = time.perf_counter()
        self.pipeline = pipeline
        self.fps = float(fps) if fps is not None else float(pipeline.fps)
        self.rig = pipeline.rig
        self.lookahead_ms = float(lookahead_ms)
        self.sample_rate = sample_rate
        # The featurizers first: a model that cannot stream is refused before its guidance is encoded.
        self._streams, probe = _streaming_parts(pipeline)
        self.guidance_feature = pipeline.encode_guidance(guidance)
        self._model_reach = probe.model
        self._post_reach = probe.postprocessors
        self._post_edge = probe.postprocessors_edge
        self._audio = _AudioBuffer()
        self._resampler = None
        if sample_rate != TARGET_SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(sample_rate, TARGET_SAMPLE_RATE, 1, dtype="float32")
        self.received_input_samples = 0
        self.emitted = 0
        self.pushes = 0
        self.finished = False
        self.compute_s = time.perf_counter() - started
        self._device = torch.device(pipeline.device)

    # ------------------------------------------------------------------------------------------ public

    @property
    def exact_lookahead_ms(self) -> float:
        """The look-ahead at which streamed frames equal offline ones (for exact featurizers)."""
        post_right = max(self._post_reach.right, self._post_edge)
        frames = self._model_reach.right + post_right + 1
        feature_s = max(s.right / s.rate_hz + 1.0 / s.rate_hz for s in self._streams)
        return 1000.0 * (frames / self.fps + feature_s)

    @property
    def duration_s(self) -> float:
        return self._audio.received / TARGET_SAMPLE_RATE

    def push(self, chunk: Any) -> RigSequence:
        """Add a chunk of mono samples; return the frames that became final."""
        import time

        if self.finished:
            raise InputError("this stream has finished: start a new one")
        started = time.perf_counter()
        samples = self._to_float(chunk)
        self.received_input_samples += len(samples)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples, last=False)
        self._audio.append(samples)
        self.pushes += 1
        final = self._final_frames()
        out = self._emit(final, finished=False)
        self.compute_s += time.perf_counter() - started
        return out

    def finish(self) -> tuple[RigSequence, StreamSummary]:
        """End of audio: the remaining frames, and a summary of the whole stream."""
        import time

        if self.finished:
            raise InputError("this stream has finished: start a new one")
        started = time.perf_counter()
        if self._resampler is not None:
            import numpy as np

            self._audio.append(self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        self.finished = True
        total = round(self.duration_s * self.fps)
        if total < 1:
            raise InputError(
                f"the audio is too short for one frame at {self.fps:g} fps: send at least "
                f"{1000.0 / self.fps:.1f} ms of audio"
            )
        out = self._emit(total, finished=True)
        self.compute_s += time.perf_counter() - started
        summary = StreamSummary(
            frames=self.emitted,
            duration_s=self.duration_s,
            fps=self.fps,
            rig=self.rig.name,
            lookahead_ms=self.lookahead_ms,
            exact_lookahead_ms=self.exact_lookahead_ms,
            compute_s=self.compute_s,
            pushes=self.pushes,
        )
        return out, summary

    # ---------------------------------------------------------------------------------------- internals

    def _to_float(self, chunk: Any) -> np.ndarray:
        import numpy as np

        array = np.asarray(chunk)
        if array.ndim != 1:
            raise InputError(f"a chunk must be 1-D mono samples, got shape {array.shape}: mix it down first")
        if len(array) > _MAX_CHUNK_SAMPLES:
            raise InputError(f"a chunk holds {len(array)} samples, more than a minute: send smaller chunks")
        if array.dtype == np.int16:
            return array.astype(np.float32) / 32768.0
        if array.dtype.kind != "f":
            raise InputError(f"chunk samples must be float32 or int16, got {array.dtype}")
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise InputError("a chunk holds NaN or infinite samples: send real numbers in [-1, 1]")
        return array

    def _final_frames(self) -> int:
        """Frames t with t / fps + lookahead <= the audio received (never past the offline count)."""
        heard = self.duration_s - self.lookahead_ms / 1000.0
        if heard < 0:
            return self.emitted
        # A little slack so that a boundary that is exact in decimal is not missed by float rounding.
        final = math.floor(heard * self.fps + 1e-9) + 1
        return max(self.emitted, min(final, math.floor(self.duration_s * self.fps + 1e-9)))

    def _emit(self, until: int, finished: bool) -> RigSequence:
        import numpy as np

        from medtalk.core.sequence import RigSequence

        first = self.emitted
        if until <= first:
            return RigSequence(
                np.zeros((0, self.rig.num_controls), np.float32), fps=self.fps, rig=self.rig.name
            )
        left = self._model_reach.left + self._post_reach.left
        right = self._model_reach.right + self._post_reach.right
        available = until if finished else math.floor(self.duration_s * self.fps + 1e-9) + 1
        window_start = max(first - left, 0)
        if first < self._post_reach.left:
            right = self._model_reach.right + max(self._post_reach.right, self._post_edge)
        window_stop = min(until + right, available)
        streams = []
        for stream in self._streams:
            values, start = stream.frames(self._audio, finished)
            streams.append(_interpolate(values, start, stream.rate_hz, window_start, window_stop, self.fps))
        rig = self._run_model(streams[0], streams[1])
        sequence = RigSequence(rig, fps=self.fps, rig=self.rig.name)
        for postprocessor in self.pipeline.postprocessors:
            sequence = postprocessor(sequence, self.rig)
        out = RigSequence(
            sequence.values[first - window_start : until - window_start], fps=self.fps, rig=self.rig.name
        )
        self.emitted = until
        self._forget(until - left)
        return out

    def _run_model(self, content: np.ndarray, emotion: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            content_t = torch.from_numpy(content)[None].to(self._device)
            emotion_t = torch.from_numpy(emotion)[None].to(self._device)
            output = self.pipeline.model(content_t, emotion_t, None, None, self.guidance_feature)
        return output["rig"][0].cpu().numpy()

    def _forget(self, next_window_start: int) -> None:
        """Drop features and audio the next pushes cannot read (keeps memory bounded)."""
        next_window_start = max(next_window_start, 0)
        for stream in self._streams:
            stream.forget_before(math.floor(next_window_start * stream.rate_hz / self.fps) - 1)
        self._audio.forget_before(min(stream.first_sample_needed() for stream in self._streams))


def _interpolate(
    values: np.ndarray, first: int, rate_hz: float, start: int, stop: int, fps: float
) -> np.ndarray:
    """Output frames start..stop-1 from feature frames first.. (as ``interpolate_to_frames`` does offline:
    frame t reads feature position t x rate / fps, clamped to the frames that exist)."""
    import numpy as np

    positions = np.arange(start, stop, dtype=np.float64) * (rate_hz / fps)
    last = first + values.shape[0] - 1
    positions = np.clip(positions, 0.0, last) - first
    if positions.size and positions.min() < 0:
        raise RuntimeError("streaming needs feature frames it has already dropped")
    before = np.floor(positions).astype(np.int64)
    after = np.minimum(before + 1, values.shape[0] - 1)
    weight = (positions - before)[:, None]
    source = values.astype(np.float64, copy=False)
    return (source[before] * (1.0 - weight) + source[after] * weight).astype(np.float32)
