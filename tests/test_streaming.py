"""Streaming inference: frames leave as the look-ahead allows, their count and values match offline."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import Field

from medtalk.core.audio import Audio
from medtalk.core.components import ComponentConfig, Featurizer, StreamingForm
from medtalk.core.errors import ConfigError, InputError
from medtalk.core.pipeline import Pipeline
from medtalk.core.streaming import StreamingSession
from medtalk.core.types import FeatureSeq

TINY = 32


def make_bundle(folder: Path, emotion: dict, emotion_dim: int, *, window: int = 9, seed: int = 0) -> Path:
    """A randomly initialised model (no training: streaming must equal offline for any weights)."""
    from medtalk.core.model.bundle import save_bundle
    from medtalk.core.model.modules import MedtalkModel

    torch.manual_seed(seed)
    model = MedtalkModel.from_config(
        {
            "motion_model": {"type": "medtalk-autoencoder", "hidden": TINY, "embedding": TINY},
            "content_mapper": {
                "type": "temporal-conv",
                "input_dim": 40,
                "window": window,
                "hidden": TINY,
                "embedding": TINY,
            },
            "intensity_predictor": {
                "type": "cmf",
                "emotion_dim": emotion_dim,
                "text_dim": 6,
                "model_dim": TINY,
                "heads": 4,
            },
            "guidance_encoders": {
                "label": {"type": "label", "embedding": 16, "hidden": TINY, "output_dim": TINY}
            },
        }
    )
    features = {"content": {"type": "logmel", "n_mels": 40}, "emotion": emotion}
    card = {"pipeline": {"rig": "metahuman-174", "fps": 60.0, "features": features}}
    return save_bundle(folder, model, card)


EXACT_EMOTION = ({"type": "logmel", "n_mels": 14, "fmax": 4000.0}, 14)
PROSODY_EMOTION = ({"type": "prosody"}, 14)


@pytest.fixture(scope="module")
def exact_pipeline(tmp_path_factory) -> Pipeline:
    """Every stage streams exactly: log-mel content and emotion features."""
    return Pipeline.from_pretrained(make_bundle(tmp_path_factory.mktemp("exact") / "b", *EXACT_EMOTION))


@pytest.fixture(scope="module")
def prosody_pipeline(tmp_path_factory) -> Pipeline:
    return Pipeline.from_pretrained(make_bundle(tmp_path_factory.mktemp("prosody") / "b", *PROSODY_EMOTION))


def speech_like(seconds: float, seed: int = 0, rate: int = 16000) -> np.ndarray:
    """A voiced tone gliding in pitch, with syllable-rate loudness changes, pauses and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.7 * t + seed)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = np.clip(np.sin(2 * np.pi * 3.1 * t + seed), 0, None) ** 0.5
    envelope *= (np.sin(2 * np.pi * 0.23 * t) > -0.8).astype(float)  # pauses
    samples = 0.2 * voice * envelope + rng.normal(0, 0.003, t.size)
    return samples.astype(np.float32)


def stream(pipeline, samples, chunk: int, **options) -> tuple[np.ndarray, list[int], object]:
    session = StreamingSession(pipeline, "label:happy", **options)
    parts, counts = [], []
    for start in range(0, len(samples), chunk):
        frames = session.push(samples[start : start + chunk])
        counts.append(frames.num_frames)
        parts.append(frames.values)
    rest, summary = session.finish()
    parts.append(rest.values)
    return np.concatenate(parts), counts, summary


@pytest.mark.parametrize("seconds", [1.0, 2.345, 3.01])
@pytest.mark.parametrize("chunk", [320, 777, 4000, 100_000])
def test_a_stream_gives_exactly_the_offline_frame_count(exact_pipeline, seconds, chunk):
    samples = speech_like(seconds)
    values, _, summary = stream(exact_pipeline, samples, chunk)
    assert values.shape == (round(seconds * 60), 174)
    assert summary.frames == round(seconds * 60)


@pytest.mark.parametrize("chunk", [320, 1111, 8000])
def test_streaming_equals_offline_when_the_look_ahead_covers_the_receptive_field(exact_pipeline, chunk):
    samples = speech_like(4.2, seed=1)
    offline = exact_pipeline(Audio(samples), guidance="label:happy").values
    exact_ms = StreamingSession(exact_pipeline, "label:happy").exact_lookahead_ms
    values, _, _ = stream(exact_pipeline, samples, chunk, lookahead_ms=exact_ms)
    np.testing.assert_allclose(values, offline, atol=2e-5, rtol=0)


def relative_error(values: np.ndarray, offline: np.ndarray) -> np.ndarray:
    """|streamed - offline| per frame and control, over each control's range across the clip."""
    spread = offline.max(axis=0) - offline.min(axis=0) + 1e-6
    return np.abs(values - offline) / spread


def test_the_default_look_ahead_stays_within_the_documented_tolerance(exact_pipeline):
    """docs/server.md: at 100 ms, short of this chain's exact look-ahead, the frames differ from offline by
    at most 8% of each control's range over the clip, 0.2% on average; more look-ahead, less error."""
    samples = speech_like(4.0, seed=2)
    offline = exact_pipeline(Audio(samples), guidance="label:happy").values
    errors = {}
    for lookahead_ms in (50, 100, 150):
        values, _, summary = stream(exact_pipeline, samples, 640, lookahead_ms=lookahead_ms)
        errors[lookahead_ms] = relative_error(values, offline)
    assert summary.exact_lookahead_ms > 100
    assert errors[100].max() <= 0.08 and errors[100].mean() <= 0.002
    assert errors[50].mean() > errors[100].mean() > errors[150].mean()


def test_prosody_streams_with_running_statistics_within_tolerance(prosody_pipeline):
    """Prosody's utterance z-score runs on the frames heard so far: after the first second, within 8% of
    each control's range and 0.4% on average at the default look-ahead."""
    samples = speech_like(4.0, seed=3)
    offline = prosody_pipeline(Audio(samples), guidance="label:happy").values
    values, _, _ = stream(prosody_pipeline, samples, 1600)
    assert values.shape == offline.shape == (240, 174)
    error = relative_error(values, offline)[60:]
    assert error.max() <= 0.08
    assert error.mean() <= 0.004
    assert error.mean() > 1e-5  # the running statistics are not the utterance's


def test_frames_leave_as_soon_as_the_look_ahead_allows(exact_pipeline):
    samples = speech_like(2.0)
    chunk = 480  # 30 ms
    lookahead_ms = 100
    _, counts, _ = stream(exact_pipeline, samples, chunk, lookahead_ms=lookahead_ms)
    emitted = np.cumsum(counts)
    for pushes, total in enumerate(emitted, start=1):
        heard = pushes * chunk / 16000 - lookahead_ms / 1000
        expected = (
            0
            if heard < 0
            else min(math.floor(heard * 60 + 1e-9) + 1, math.floor(pushes * chunk / 16000 * 60))
        )
        assert total == expected


def test_int16_and_48_khz_input(exact_pipeline):
    import soxr

    samples = speech_like(2.5, seed=4)
    as_int16 = np.round(samples * 32767).astype(np.int16)
    exact_ms = StreamingSession(exact_pipeline).exact_lookahead_ms
    offline = exact_pipeline(Audio(as_int16 / np.float32(32768)), guidance="label:happy").values
    values, _, _ = stream(exact_pipeline, as_int16, 1000, lookahead_ms=exact_ms)
    np.testing.assert_allclose(values, offline, atol=2e-5, rtol=0)
    at_48k = soxr.resample(samples, 16000, 48000).astype(np.float32)
    values, _, summary = stream(exact_pipeline, at_48k, 4801, sample_rate=48000, lookahead_ms=exact_ms)
    assert values.shape == offline.shape
    assert summary.duration_s == pytest.approx(2.5, abs=1e-3)
    # Two resamplings (the test's and the stream's) stand between the two: close, not equal.
    assert relative_error(values, offline)[30:-30].mean() < 0.01


def test_memory_stays_bounded_on_a_long_stream(exact_pipeline):
    session = StreamingSession(exact_pipeline, "label:sad")
    samples = speech_like(2.0)
    for _ in range(10):  # 20 s
        for start in range(0, len(samples), 8000):
            session.push(samples[start : start + 8000])
    assert session._audio.samples.size < 16000  # under a second of audio kept
    assert all(len(s.cache) < 200 for s in session._streams)
    rest, summary = session.finish()
    assert summary.frames == 1200


def test_a_featurizer_that_cannot_stream_is_refused_in_one_line(tmp_path, register_plugin):
    class WholeClip(Featurizer):
        """Reads the whole clip at once."""

        name = "test-whole-clip"
        role = "emotion"
        Config = ComponentConfig
        dim = 14
        rate_hz = 100.0

        def __call__(self, audio):
            return FeatureSeq(np.zeros((audio.num_samples // 160 + 1, 14), np.float32), 100.0)

    class Plugin:
        from medtalk import hookimpl

        @staticmethod
        @hookimpl
        def register_featurizers(register):
            register(WholeClip)

    register_plugin(Plugin)
    pipeline = Pipeline.from_pretrained(make_bundle(tmp_path / "b", {"type": "test-whole-clip"}, 14))
    with pytest.raises(ConfigError) as error:
        StreamingSession(pipeline)
    assert str(error.value) == (
        "the emotion featurizer 'test-whole-clip' cannot stream (it reads the whole clip): use a model "
        "whose featurizers stream (logmel, prosody), or animate whole files with POST /v1/animate"
    )


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        (
            np.zeros((2, 10), np.float32),
            "a chunk must be 1-D mono samples, got shape (2, 10): mix it down first",
        ),
        (np.zeros(10, np.int32), "chunk samples must be float32 or int16, got int32"),
        (
            np.array([0.0, np.nan], np.float32),
            "a chunk holds NaN or infinite samples: send real numbers in [-1, 1]",
        ),
    ],
)
def test_bad_chunks_are_one_line(exact_pipeline, chunk, expected):
    session = StreamingSession(exact_pipeline)
    with pytest.raises(InputError) as error:
        session.push(chunk)
    assert str(error.value) == expected


def test_a_too_short_stream_and_a_finished_stream_are_refused(exact_pipeline):
    session = StreamingSession(exact_pipeline)
    session.push(np.zeros(100, np.float32))
    with pytest.raises(InputError) as error:
        session.finish()
    assert (
        str(error.value) == "the audio is too short for one frame at 60 fps: send at least 16.7 ms of audio"
    )
    with pytest.raises(InputError) as error:
        session.push(np.zeros(100, np.float32))
    assert str(error.value) == "this stream has finished: start a new one"


def test_an_unknown_label_is_refused_before_any_audio(exact_pipeline):
    with pytest.raises(InputError) as error:
        StreamingSession(exact_pipeline, "label:joyful")
    assert str(error.value) == (
        "unknown emotion label 'joyful': use one of angry, disgust, fear, happy, neutral, sad, surprise"
    )


def test_a_streaming_featurizer_with_other_framing_is_refused_in_one_line(tmp_path, register_plugin):
    class Misframed(Featurizer):
        """Claims to stream, but frames the audio from its first sample (no centring)."""

        name = "test-misframed"
        role = "emotion"
        supports_streaming = True
        Config = ComponentConfig
        dim = 14
        rate_hz = 100.0

        def __call__(self, audio):
            return FeatureSeq(np.zeros((audio.num_samples // 160, 14), np.float32), 100.0)

    class Plugin:
        from medtalk import hookimpl

        @staticmethod
        @hookimpl
        def register_featurizers(register):
            register(Misframed)

    register_plugin(Plugin)
    pipeline = Pipeline.from_pretrained(make_bundle(tmp_path / "b", {"type": "test-misframed"}, 14))
    with pytest.raises(ConfigError) as error:
        StreamingSession(pipeline)
    assert str(error.value) == (
        "featurizer 'test-misframed' gives 100 frames for 16000 samples, not samples // 160 + 1 "
        "(frame k centred on sample k x 160): it cannot stream"
    )


class ClipLevelConfig(ComponentConfig):
    normalize: bool = Field(default=True, description="z-score both columns over the whole clip")
    context_s: float = Field(default=0.08, description="context its streaming form declares on each side")


class ClipLevel(Featurizer):
    """Smoothed frame loudness and its change at 100 Hz, z-scored over the clip: a third-party featurizer
    that cannot run on windows as it is, and streams through its streaming_form."""

    name = "test-clip-level"
    role = "emotion"
    Config = ClipLevelConfig
    dim = 2
    rate_hz = 100.0

    def __call__(self, audio):
        padded = np.pad(audio.samples.astype(np.float64), 200)  # 25 ms windows centred on sample 160 k
        frames = audio.num_samples // 160 + 1
        windows = padded[np.arange(frames)[:, None] * 160 + np.arange(400)[None, :]]
        level = 10 * np.log10(np.mean(windows**2, axis=1) + 1e-10)
        # Smoothing over +-3 frames and a delta over +-2 more: this reads 7 frames (+ the window) each side.
        level = np.convolve(np.pad(level, 3, mode="edge"), np.ones(7) / 7, mode="valid")
        ahead, behind = np.pad(level, 2, mode="edge")[4:], np.pad(level, 2, mode="edge")[:-4]
        values = np.stack([level, (ahead - behind) * 25.0], axis=1)
        if self.config.normalize:
            values = (values - values.mean(axis=0)) / np.maximum(values.std(axis=0), 1e-6)
        return FeatureSeq(values.astype(np.float32), rate_hz=100.0)

    def streaming_form(self):
        raw = ClipLevel(ClipLevelConfig(normalize=False))
        columns = (0, 1) if self.config.normalize else ()
        return StreamingForm(raw, self.config.context_s, self.config.context_s, running_z_score=columns)


@pytest.fixture
def clip_level_bundle(tmp_path, register_plugin):
    """A bundle whose emotion featurizer is the third-party ClipLevel, with the given config."""

    class Plugin:
        from medtalk import hookimpl

        @staticmethod
        @hookimpl
        def register_featurizers(register):
            register(ClipLevel)

    register_plugin(Plugin)
    return lambda **config: make_bundle(tmp_path / "b", {"type": "test-clip-level", **config}, 2)


def test_a_third_party_featurizer_streams_exactly_through_its_streaming_form(clip_level_bundle):
    pipeline = Pipeline.from_pretrained(clip_level_bundle(normalize=False))
    assert not ClipLevel.supports_streaming
    samples = speech_like(3.0, seed=5)
    offline = pipeline(Audio(samples), guidance="label:happy").values
    exact_ms = StreamingSession(pipeline, "label:happy").exact_lookahead_ms
    values, _, _ = stream(pipeline, samples, 1111, lookahead_ms=exact_ms)
    np.testing.assert_allclose(values, offline, atol=2e-5, rtol=0)


def test_a_third_party_running_z_score_stays_within_the_documented_tolerance(clip_level_bundle):
    """docs/server.md: as prosody's, after the first second within 8% of each control's range and 0.4% on
    average at the default look-ahead."""
    pipeline = Pipeline.from_pretrained(clip_level_bundle())
    samples = speech_like(4.0, seed=6)
    offline = pipeline(Audio(samples), guidance="label:happy").values
    values, _, _ = stream(pipeline, samples, 1600)
    assert values.shape == offline.shape == (240, 174)
    error = relative_error(values, offline)[60:]
    assert error.max() <= 0.08
    assert error.mean() <= 0.004
    assert error.mean() > 1e-5  # the running statistics are not the clip's


def test_too_little_declared_context_shows_in_the_frames(clip_level_bundle):
    """The declared context is what streaming reads: declaring none cuts the smoothing short."""
    pipeline = Pipeline.from_pretrained(clip_level_bundle(normalize=False, context_s=0.0))
    samples = speech_like(3.0, seed=5)
    offline = pipeline(Audio(samples), guidance="label:happy").values
    exact_ms = StreamingSession(pipeline, "label:happy").exact_lookahead_ms
    values, _, _ = stream(pipeline, samples, 1111, lookahead_ms=exact_ms)
    assert np.abs(values - offline).max() > 1e-3


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        (
            lambda raw: StreamingForm(raw, -0.1, 0.05),
            "has left_s -0.1 and right_s 0.05, where both must be seconds >= 0",
        ),
        (
            lambda raw: StreamingForm(_OtherRate(), 0.1, 0.05),
            "runs a featurizer of 2 dims at 50 Hz, not 2 dims at 100 Hz as the featurizer itself",
        ),
        (
            lambda raw: StreamingForm(raw, 0.1, 0.05, running_z_score=(0, 2)),
            "z-scores columns [0, 2], not all within 0..1",
        ),
    ],
)
def test_a_streaming_form_that_does_not_fit_is_refused_in_one_line(
    clip_level_bundle, monkeypatch, form, expected
):
    pipeline = Pipeline.from_pretrained(clip_level_bundle())
    monkeypatch.setattr(ClipLevel, "streaming_form", lambda self: form(ClipLevel(ClipLevelConfig())))
    with pytest.raises(ConfigError) as error:
        StreamingSession(pipeline)
    assert str(error.value) == (
        f"featurizer 'test-clip-level' cannot stream: its StreamingForm {expected}: fix its streaming_form"
    )


class _OtherRate(ClipLevel):
    """ClipLevel at the wrong rate."""

    rate_hz = 50.0


def test_the_streaming_form_example_in_the_docs_streams(tmp_path, register_plugin):
    import re
    import types

    from medtalk import hookimpl

    text = (Path(__file__).resolve().parents[1] / "docs" / "plugin-hooks.md").read_text(encoding="utf-8")
    source = re.search(
        r"```python\n(import medtalk\nfrom medtalk.core.components import StreamingForm.*?)```", text, re.S
    )
    module = types.ModuleType("clip_energy_example")
    exec(compile(source.group(1), "docs/plugin-hooks.md", "exec"), module.__dict__)
    module.register_featurizers = hookimpl(lambda register: register(module.ClipEnergy))
    register_plugin(module)
    pipeline = Pipeline.from_pretrained(make_bundle(tmp_path / "b", {"type": "clip-energy"}, 1))
    samples = speech_like(3.0, seed=2)
    offline = pipeline(Audio(samples), guidance="label:happy").values
    values, _, _ = stream(pipeline, samples, 1600)
    error = relative_error(values, offline)[60:]
    assert error.max() <= 0.08 and error.mean() <= 0.004
