"""load_audio / audio_from_array: decoding, mix-down, resampling, and every refusal with its exact message."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile

from medtalk.core.audio import (
    DEFAULT_MAX_DURATION_S,
    MIN_DURATION_S,
    SILENCE_PEAK_DBFS,
    TARGET_SAMPLE_RATE,
    Audio,
    audio_from_array,
    load_audio,
)
from medtalk.core.errors import AudioError, MedtalkWarning

REAL_CLIP = Path("/work/shared/data/real/emoface_validation/angry_gd04_001_021.wav")


def tone(seconds: float, rate: int, *, amplitude: float = 0.5, hz: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * hz * t)


def dbfs(level: float) -> float:
    return 10.0 ** (level / 20.0)


def peak_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1.0 / rate)[spectrum.argmax()])


def silent_message(source: object) -> str:
    return f"{source}: the audio is silent (peak below -60 dBFS): the animation will show no speech"


def test_constants_are_the_documented_ones():
    assert (TARGET_SAMPLE_RATE, DEFAULT_MAX_DURATION_S, MIN_DURATION_S, SILENCE_PEAK_DBFS) == (
        16_000,
        600.0,
        0.1,
        -60.0,
    )


# --- decoding, mix-down, resampling -------------------------------------------------------------------


def test_wav_48k_stereo_int16_becomes_16k_mono_float32_holding_the_channel_mean(tmp_path):
    left = tone(1.0, 48_000, amplitude=0.5)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, np.zeros_like(left)], axis=1), 48_000, subtype="PCM_16")

    audio = load_audio(path)

    assert audio.sample_rate == 16_000
    assert audio.samples.dtype == np.float32
    assert audio.samples.ndim == 1
    assert abs(audio.num_samples - 16_000) <= 1
    assert audio.duration == pytest.approx(1.0, abs=1 / 16_000)
    assert audio.path == path
    # Away from the edges, where the resampling filter rings: a 0.5 tone mixed with silence peaks at 0.25.
    middle = audio.samples[1_000:-1_000]
    assert np.abs(middle).max() == pytest.approx(0.25, abs=0.005)
    assert np.sqrt(np.mean(middle.astype(np.float64) ** 2)) == pytest.approx(0.25 / math.sqrt(2), rel=0.01)


def test_stereo_at_16k_is_the_exact_channel_mean(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "stereo16k.wav"
    soundfile.write(path, rng.uniform(-0.5, 0.5, size=(8_000, 2)), 16_000, subtype="PCM_16")
    decoded, _ = soundfile.read(path, dtype="float32")

    audio = load_audio(path)

    np.testing.assert_array_equal(audio.samples, (decoded[:, 0] + decoded[:, 1]) / 2)


@pytest.mark.parametrize(
    ("file_format", "suffix", "rate"),
    [("FLAC", "flac", 22_050), ("OGG", "ogg", 44_100), ("MP3", "mp3", 44_100)],
)
def test_compressed_formats_load_at_16k_with_duration_and_pitch_kept(tmp_path, file_format, suffix, rate):
    path = tmp_path / f"tone.{suffix}"
    try:
        soundfile.write(path, tone(1.5, rate), rate, format=file_format)
    except (soundfile.SoundFileError, ValueError, TypeError) as error:
        pytest.skip(f"this libsndfile cannot write {file_format}: {error}")

    audio = load_audio(path)

    assert audio.sample_rate == 16_000
    assert audio.samples.dtype == np.float32
    assert audio.samples.ndim == 1
    assert audio.duration == pytest.approx(1.5, abs=0.020)
    assert peak_frequency(audio.samples, audio.sample_rate) == pytest.approx(440.0, abs=2.0)


def test_16k_mono_is_returned_sample_exact_without_resampling(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "native.wav"
    soundfile.write(path, rng.uniform(-0.8, 0.8, size=16_000), 16_000, subtype="PCM_16")
    decoded, _ = soundfile.read(path, dtype="float32")

    audio = load_audio(path)

    assert audio.samples.dtype == np.float32
    np.testing.assert_array_equal(audio.samples, decoded)


def test_another_target_rate_is_honoured(tmp_path):
    path = tmp_path / "tone.wav"
    soundfile.write(path, tone(1.0, 48_000), 48_000)

    audio = load_audio(path, sample_rate=24_000)

    assert audio.sample_rate == 24_000
    assert abs(audio.num_samples - 24_000) <= 1
    assert peak_frequency(audio.samples, 24_000) == pytest.approx(440.0, abs=2.0)


@pytest.mark.skipif(
    not REAL_CLIP.is_file(), reason=f"the shared real clip {REAL_CLIP} is not on this machine"
)
def test_real_48k_clip_loads():
    header = soundfile.info(REAL_CLIP)

    audio = load_audio(REAL_CLIP)

    assert audio.sample_rate == 16_000
    assert audio.duration == pytest.approx(header.duration, abs=0.001)
    assert np.abs(audio.samples).max() > 0.01


def test_audio_samples_are_read_only_and_the_callers_array_keeps_its_flags():
    samples = np.zeros(3_200, dtype=np.float32)
    samples[100] = 0.5

    audio = audio_from_array(samples, 16_000)

    assert (audio.num_samples, audio.duration) == (3_200, 0.2)
    assert not audio.samples.flags.writeable
    assert samples.flags.writeable
    with pytest.raises(ValueError):
        audio.samples[0] = 1.0


def test_audio_refuses_multichannel_samples():
    with pytest.raises(AudioError) as e:
        Audio(samples=np.zeros((10, 2), dtype=np.float32))
    assert str(e.value) == (
        "Audio needs 1-D mono samples, got shape (10, 2): build it with audio_from_array, "
        "which mixes channels down"
    )


def test_audio_from_array_scales_integers_like_soundfile_and_mixes_channels():
    samples = np.array([[16_384, 0], [-32_768, -32_768], [0, 8_192]] * 600, dtype=np.int16)

    audio = audio_from_array(samples, 16_000, path="mic")

    np.testing.assert_array_equal(audio.samples[:3], np.array([0.25, -1.0, 0.125], dtype=np.float32))
    assert audio.path == Path("mic")


# --- refusals -------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError) as e:
        load_audio(str(path))
    assert str(e.value) == f"{path}: no such file: check the path"


def test_folder(tmp_path):
    with pytest.raises(AudioError) as e:
        load_audio(tmp_path)
    assert str(e.value) == (
        f"{tmp_path}: is a folder, not an audio file: give the path of a wav, flac, ogg or mp3 file"
    )


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.wav", b"this is a text file, not audio\n" * 20),
        ("song.mp3", bytes(range(7, 250)) * 40),
        ("blank.flac", b""),
        ("cut.wav", b"RIFF\x24\x00\x00\x00WAVEfmt "),
    ],
)
def test_unreadable_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert str(e.value) == f"{path}: not a readable audio file: convert it to wav, flac, ogg or mp3"


def test_zero_samples(tmp_path):
    path = tmp_path / "empty.wav"
    soundfile.write(path, np.zeros(0), 16_000)
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert str(e.value) == f"{path}: the audio has no samples: export it again with sound in it"


def test_shorter_than_the_minimum(tmp_path):
    path = tmp_path / "blip.wav"
    soundfile.write(path, tone(0.05, 16_000), 16_000)
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert str(e.value) == (
        f"{path}: the audio is 0.050 s long, shorter than the 0.1 s minimum: give a longer recording"
    )


def test_exactly_the_minimum_is_accepted():
    assert audio_from_array(tone(0.1, 16_000), 16_000).num_samples == 1_600


def long_file(tmp_path) -> Path:
    """90 s at 8 kHz: its header says 1.5 min, while the file stays small (1.4 MB)."""
    path = tmp_path / "lecture.wav"
    soundfile.write(path, tone(90.0, 8_000, amplitude=0.1), 8_000, subtype="PCM_16")
    return path


def too_long_message(path: Path) -> str:
    return (
        f"{path}: the audio is 90.0 s long, over the 60.0 s limit: split it, or raise the limit "
        "with max_duration_s"
    )


def test_too_long_is_refused_from_the_header_without_decoding(tmp_path, monkeypatch):
    path = long_file(tmp_path)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the audio was decoded although its header already says it is too long")

    monkeypatch.setattr(soundfile, "read", no_decoding)
    monkeypatch.setattr(soundfile.SoundFile, "read", no_decoding)
    with pytest.raises(AudioError) as e:
        load_audio(path, max_duration_s=60.0)
    assert str(e.value) == too_long_message(path)


def test_too_long_is_caught_after_decoding_when_the_header_has_no_length(tmp_path, monkeypatch):
    path = long_file(tmp_path)
    real_info, real_read = soundfile.info, soundfile.read
    decoded = []

    def info_without_length(file, *args, **kwargs):
        header = real_info(file, *args, **kwargs)
        header.frames = 0
        return header

    def spying_read(*args, **kwargs):
        decoded.append(args[0])
        return real_read(*args, **kwargs)

    monkeypatch.setattr(soundfile, "info", info_without_length)
    monkeypatch.setattr(soundfile, "read", spying_read)
    with pytest.raises(AudioError) as e:
        load_audio(path, max_duration_s=60.0)
    assert str(e.value) == too_long_message(path)
    assert decoded, "the fallback should have decoded the file to measure it"


def test_the_limit_itself_is_accepted(tmp_path):
    audio = load_audio(long_file(tmp_path), max_duration_s=90.0)
    assert audio.duration == pytest.approx(90.0, abs=1 / 16_000)


def test_too_long_array():
    with pytest.raises(AudioError) as e:
        audio_from_array(np.zeros(16_000 * 150, dtype=np.float32), 16_000, max_duration_s=120.0)
    assert str(e.value) == (
        "audio: the audio is 150.0 s long, over the 120.0 s limit: split it, or raise the limit with "
        "max_duration_s"
    )


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, "ten"])
def test_bad_max_duration_is_refused_before_the_file_is_touched(tmp_path, bad):
    with pytest.raises(AudioError) as e:
        load_audio(tmp_path / "nope.wav", max_duration_s=bad)
    assert str(e.value) == f"max_duration_s must be a positive number of seconds, got {bad}"


@pytest.mark.parametrize("bad", [0, -16_000, 16_000.5])
def test_bad_sample_rate(tmp_path, bad):
    with pytest.raises(AudioError) as e:
        load_audio(tmp_path / "nope.wav", sample_rate=bad)
    assert str(e.value) == f"sample_rate must be a positive whole number of Hz, got {bad}"


@pytest.mark.parametrize("bad_value", [math.nan, math.inf, -math.inf])
def test_array_with_nan_or_inf(bad_value):
    samples = tone(0.5, 16_000)
    samples[123] = bad_value
    with pytest.raises(AudioError) as e:
        audio_from_array(samples, 16_000)
    assert str(e.value) == "audio: the audio holds NaN or infinite samples: clean the signal first"


def test_nan_in_one_channel_of_a_named_array():
    samples = np.zeros((8_000, 2), dtype=np.float32)
    samples[10, 1] = np.nan
    with pytest.raises(AudioError) as e:
        audio_from_array(samples, 16_000, path="take3.wav")
    assert str(e.value) == "take3.wav: the audio holds NaN or infinite samples: clean the signal first"


def test_nan_in_a_float_wav(tmp_path):
    samples = tone(0.5, 16_000)
    samples[42] = np.nan
    path = tmp_path / "broken.wav"
    soundfile.write(path, samples, 16_000, subtype="FLOAT")
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert str(e.value) == f"{path}: the audio holds NaN or infinite samples: clean the signal first"


def test_channels_first_array_is_refused():
    with pytest.raises(AudioError) as e:
        audio_from_array(np.zeros((2, 16_000), dtype=np.float32), 16_000)
    assert str(e.value) == (
        "audio: an array of shape (2, 16000) reads as 16000 channels of 2 samples: "
        "pass it as (samples, channels), e.g. samples.T"
    )


def test_empty_array():
    with pytest.raises(AudioError) as e:
        audio_from_array(np.zeros(0, dtype=np.float32), 16_000)
    assert str(e.value) == "audio: the audio has no samples: export it again with sound in it"


# --- the silence warning --------------------------------------------------------------------------------


def test_all_zero_file_warns_silent(tmp_path):
    path = tmp_path / "zeros.wav"
    soundfile.write(path, np.zeros(16_000, dtype=np.int16), 16_000)
    with pytest.warns(MedtalkWarning, match=f"^{re.escape(silent_message(path))}$") as record:
        audio = load_audio(path)
    assert audio.num_samples == 16_000
    # The warning points at the caller's line, not at medtalk's internals.
    assert [Path(w.filename).name for w in record] == [Path(__file__).name]


def test_minus_70_dbfs_file_warns_silent(tmp_path):
    path = tmp_path / "whisper.wav"
    soundfile.write(path, tone(1.0, 44_100, amplitude=dbfs(-70.0)), 44_100, subtype="FLOAT")
    with pytest.warns(MedtalkWarning, match=f"^{re.escape(silent_message(path))}$"):
        load_audio(path)


def test_minus_40_dbfs_file_does_not_warn(tmp_path):
    path = tmp_path / "quiet.wav"
    soundfile.write(path, tone(1.0, 44_100, amplitude=dbfs(-40.0)), 44_100, subtype="FLOAT")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        audio = load_audio(path)
    assert np.abs(audio.samples).max() == pytest.approx(dbfs(-40.0), rel=0.02)


def test_silent_array_warns_naming_audio():
    with pytest.warns(MedtalkWarning, match=f"^{re.escape(silent_message('audio'))}$") as record:
        audio_from_array(np.zeros(4_000, dtype=np.float32), 16_000)
    assert [Path(w.filename).name for w in record] == [Path(__file__).name]
