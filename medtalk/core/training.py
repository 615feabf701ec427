"""Running training stages: data preparation, optimiser, StepLR, checkpoints, exact resume, logs, DDP, AMP.

A stage (a ``Trainer``: disentangle, acm, fim, guidance) says what trains, what is frozen, how batches
are drawn and which loss terms to compute; this module runs every stage the same way:

- Adam on the stage's trainable parts, StepLR stepped once per epoch (``lr_step_epochs``, ``lr_decay``);
- a checkpoint after every epoch (model, optimiser, schedule, RNG states, position), written atomically,
  so ``resume`` continues exactly: the same weights as an uninterrupted run with the same seed;
- a JSONL log with every loss term of every step;
- under torchrun, ``DistributedDataParallel`` (gloo on CPU, NCCL on CUDA), each rank its own share of
  every epoch; rank 0 alone writes; bfloat16 autocast on CUDA;
- after each stage, the model so far as a bundle (``OUTPUT/bundle``), ready for ``Pipeline``.

Core returns data: progress goes to a callback, which the CLI draws as rich progress bars.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medtalk.core.config import format_validation_error
from medtalk.core.errors import ConfigError, FileFormatError, InputError, OutputError

if TYPE_CHECKING:
    import numpy as np

    from medtalk.core.data.samples import Sample
    from medtalk.core.model.modules import MedtalkModel

CHECKPOINT_FORMAT = 1
GUIDANCE_MODALITIES = ("text", "image")


class FeaturesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: dict[str, Any] | str | None = Field(default=None, description="Content featurizer (ACM input)")
    emotion: dict[str, Any] | str | None = Field(default=None, description="Emotion featurizer (CMF queries)")
    text: dict[str, Any] | str | None = Field(default=None, description="Text encoder of the transcripts")
    guidance_text: dict[str, Any] | str | None = Field(
        default=None, description="Frozen text encoder whose sentence vector P_text projects"
    )


class TrainingConfig(BaseModel):
    """One YAML holds the pipeline (features and model) and the stages (docs/training.md)."""

    model_config = ConfigDict(extra="forbid")

    output: Path = Field(description="Folder for checkpoints, the log and the bundle")
    seed: int = Field(default=0, description="Seed of every random choice: data order, initial weights")
    rig: str = Field(default="metahuman-174", description="The rig every sample is on")
    fps: float = Field(default=60.0, gt=0, description="Frames per second of the rig sequences")
    cache: Path | None = Field(default=None, description="Feature cache folder; default OUTPUT/cache")
    features: FeaturesConfig = Field(default_factory=FeaturesConfig, description="Featurizers and encoders")
    model: dict[str, Any] = Field(description="The model config (MedtalkModel.from_config)")
    stages: list[dict[str, Any]] = Field(description="The stages in order: {type, dataset, ...options}")
    postprocessors: list[dict[str, Any]] | None = Field(
        default=None,
        description="Post-processors the bundle applies to its output, in order (default: savgol)",
    )
    source: Path | None = Field(default=None, description="Where the config was read from (set by medtalk)")


def load_training_config(path: str | os.PathLike[str]) -> TrainingConfig:
    """Read and check a training YAML; relative paths in it are relative to the YAML's folder."""
    import yaml

    source = Path(path)
    if not source.is_file():
        raise InputError(f"{source}: no such config file: check the path")
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise FileFormatError(f"{source}{where}: not valid YAML: fix the syntax") from None
    if not isinstance(document, dict):
        raise FileFormatError(f"{source}: a training config is a mapping with output, model and stages")
    try:
        config = TrainingConfig.model_validate({**document, "source": source})
    except ValidationError as error:
        raise ConfigError(format_validation_error(str(source), TrainingConfig, error)) from None
    base = source.parent
    updates: dict[str, Any] = {"output": base / config.output}
    if config.cache is not None:
        updates["cache"] = base / config.cache
    stages = []
    for number, stage in enumerate(config.stages, start=1):
        if "type" not in stage or "dataset" not in stage:
            raise ConfigError(
                f"{source}: stage {number} needs a 'type' and a 'dataset': see docs/training.md"
            )
        dataset = dict(stage["dataset"])
        for key in ("path", "root"):
            if key in dataset:
                dataset[key] = str(base / dataset[key])
        stages.append({**stage, "dataset": dataset})
    updates["stages"] = stages
    if config.postprocessors:
        from medtalk.core.plugins import build

        # Checked now, so a typo surfaces before hours of training rather than at the first inference.
        for spec in config.postprocessors:
            build("postprocessor", spec)
    return config.model_copy(update=updates)


# ---------------------------------------------------------------------------------------- processes


@dataclass
class DistributedContext:
    """Who this process is in a torchrun job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def join_process_group(device: str) -> DistributedContext:
    """Join torchrun's process group when launched by torchrun (gloo on CPU, NCCL on CUDA)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistributedContext()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    return DistributedContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _barrier(context: DistributedContext) -> None:
    if context.world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def resolve_device(requested: str, context: DistributedContext) -> str:
    import torch

    if requested == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                "--device cuda was asked for, but this machine has no CUDA device: use --device cpu"
            )
        torch.cuda.set_device(context.local_rank)
        return f"cuda:{context.local_rank}"
    if requested != "cpu":
        raise ConfigError(f"unknown device '{requested}': use cpu or cuda")
    return "cpu"


# --------------------------------------------------------------------------------------------- data


@dataclass
class PreparedItem:
    """A sample with the inputs a stage needs, computed once per run (features come from the cache)."""

    sample: Sample
    num_frames: int
    features: dict[str, Any] = field(default_factory=dict)  # stream name -> FeatureSeq
    text_tokens: np.ndarray | None = None
    guidance: np.ndarray | None = None
    guidance_modality: str | None = None


@dataclass
class StageData:
    """What a stage's ``batches`` draws from."""

    dataset: Any
    samples: list[Sample]
    items: list[PreparedItem]
    fps: float
    intensity_indices: tuple[int, ...]
    text_dim: int | None = None

    def collate(self, items: list[PreparedItem]) -> dict[str, Any]:
        import numpy as np
        import torch

        from medtalk.core.data.batching import collate

        streams = {name: [item.features[name] for item in items] for name in items[0].features}
        tokens = None
        if self.text_dim is not None:
            empty = np.zeros((0, self.text_dim), dtype=np.float32)
            tokens = [item.text_tokens if item.text_tokens is not None else empty for item in items]
        batch = collate([item.sample for item in items], streams, fps=self.fps, text_tokens=tokens)
        if tokens is not None and batch["text_tokens"].shape[1] == 0:
            batch["text_tokens"] = batch["text_mask"] = None
        batch["intensity_indices"] = self.intensity_indices
        if items[0].guidance is not None:
            modalities = {item.guidance_modality for item in items}
            if len(modalities) > 1:
                raise InputError("a batch mixes text and image guidance: batch one modality at a time")
            batch["guidance"] = torch.from_numpy(
                np.stack([item.guidance for item in items]).astype(np.float32)
            )
            batch["guidance_modality"] = items[0].guidance_modality
        return batch


class Featurizers:
    """The run's featurizers and encoders, built once, with the on-disk feature cache."""

    def __init__(self, config: TrainingConfig) -> None:
        from medtalk.core.data.cache import FeatureCache
        from medtalk.core.plugins import build

        spec = config.features
        self.content = build("featurizer", spec.content) if spec.content is not None else None
        self.emotion = build("featurizer", spec.emotion) if spec.emotion is not None else None
        self.text = build("text_encoder", spec.text) if spec.text is not None else None
        self.guidance_text = (
            build("text_encoder", spec.guidance_text) if spec.guidance_text is not None else None
        )
        self.cache = FeatureCache(config.cache if config.cache is not None else config.output / "cache")
        self._texts: dict[tuple[str, str], Any] = {}

    def embed_guidance(self, encoder: Any, value: str) -> Any:
        """A guidance encoder's frozen vector of one text or image path, computed once per run."""
        key = (
            "guidance:" + encoder.name + json.dumps(encoder.config.model_dump(mode="json"), sort_keys=True),
            value,
        )
        if key not in self._texts:
            self._texts[key] = encoder.embed([value])[0]
        return self._texts[key]

    def encode_text(self, encoder: Any, text: str) -> Any:
        key = (encoder.name + json.dumps(encoder.config.model_dump(mode="json"), sort_keys=True), text)
        if key not in self._texts:
            self._texts[key] = encoder(text)
        return self._texts[key]


def prepare_stage_data(
    trainer: Any,
    dataset: Any,
    featurizers: Featurizers,
    config: TrainingConfig,
    guidance_encoders: Mapping[str, Any] | None = None,
) -> StageData:
    """Compute what the stage needs for every sample, naming the first sample that lacks something."""

    from medtalk.core.data.batching import frame_count
    from medtalk.core.plugins import get_registry

    rig = get_registry("rig").get(config.rig)
    samples = list(dataset)
    if not samples:
        raise InputError(f"the {trainer.name} stage's dataset has no samples: check its path")
    needs = trainer.needs
    items: list[PreparedItem] = []
    for sample in samples:
        if sample.rig is None:
            raise InputError(
                f"sample '{sample.id}' has no rig: the {trainer.name} stage trains on rig sequences"
            )
        if sample.rig.shape[1] != rig.num_controls:
            raise InputError(
                f"sample '{sample.id}' has {sample.rig.shape[1]} controls, rig {rig.name} has "
                f"{rig.num_controls}: set rig in the config, or retarget the data"
            )
        item = PreparedItem(sample, frame_count(sample, config.fps))
        for stream, featurizer in (("content", featurizers.content), ("emotion", featurizers.emotion)):
            if stream in needs:
                if featurizer is None:
                    raise ConfigError(
                        f"the {trainer.name} stage needs {stream} features: "
                        f"set features.{stream} in the config"
                    )
                if sample.audio_path is None:
                    raise InputError(f"sample '{sample.id}' has no audio: the {trainer.name} stage needs it")
                item.features[stream] = featurizers.cache.get(featurizer, sample.audio_path)
        if "text" in needs and featurizers.text is not None and sample.transcript:
            item.text_tokens = featurizers.encode_text(featurizers.text, sample.transcript).tokens
        if "guidance" in needs:
            # A sample with both a text and an image trains each projection once: one item per modality.
            encoders = guidance_encoders or {}
            for vector, modality in _guidance_vectors(sample, featurizers, trainer.name, encoders):
                items.append(replace(item, guidance=vector, guidance_modality=modality))
            continue
        items.append(item)
    if "label" in needs:
        unlabelled = next((s for s in samples if s.emotion is None), None)
        if unlabelled is not None:
            raise InputError(
                f"sample '{unlabelled.id}' has no emotion: the {trainer.name} stage needs labels"
            )
    text_dim = None
    if "text" in needs and featurizers.text is not None:
        text_dim = int(featurizers.text.dim)
    return StageData(dataset, samples, items, config.fps, rig.index_set("intensity"), text_dim)


def _guidance_vectors(
    sample: Sample, featurizers: Featurizers, stage: str, guidance_encoders: Mapping[str, Any]
) -> list[tuple[np.ndarray, str]]:
    """(vector, modality) of each guidance a sample has: its text, and its image when the model has an
    image encoder (or no text encoder). Each vector is its frozen encoder's, as ``_guidance_vector`` says."""
    modalities = []
    if sample.guidance_text and ("text" in guidance_encoders or not guidance_encoders):
        modalities.append("text")
    if sample.guidance_image is not None and ("image" in guidance_encoders or not guidance_encoders):
        modalities.append("image")
    if not modalities:
        # Nothing the model can use: the single-modality path names what is missing.
        return [_guidance_vector(sample, featurizers, stage, guidance_encoders)]
    return [_guidance_vector(sample, featurizers, stage, guidance_encoders, m) for m in modalities]


def _guidance_vector(
    sample: Sample,
    featurizers: Featurizers,
    stage: str,
    guidance_encoders: Mapping[str, Any],
    modality: str | None = None,
) -> tuple[np.ndarray, str]:
    """The frozen-encoder vector of a sample's guidance of ``modality`` (default: its text if it has one,
    else its image). The model's own guidance encoder computes it when it has a frozen encoder inside
    (clip-text, minilm-text, face-blendshapes ...); otherwise it is the sentence vector of
    features.guidance_text, or an image's precomputed vector file (.npy, or .json: a list of numbers, e.g.
    the 52 ARKit scores of a face). A precomputed vector file is always accepted."""
    import numpy as np

    if sample.guidance_text and modality in (None, "text"):
        encoder = guidance_encoders.get("text")
        if encoder is not None and encoder.embeds:
            vector = featurizers.embed_guidance(encoder, sample.guidance_text)
            return np.asarray(vector, dtype=np.float32).reshape(-1), "text"
        if featurizers.guidance_text is None:
            raise ConfigError(
                f"sample '{sample.id}' has text guidance: set features.guidance_text to a text encoder"
            )
        vector = featurizers.encode_text(featurizers.guidance_text, sample.guidance_text).sentence
        return np.asarray(vector, dtype=np.float32), "text"
    if sample.guidance_image is not None:
        path = Path(sample.guidance_image)
        encoder = guidance_encoders.get("image")
        if encoder is not None and encoder.embeds and path.suffix.lower() not in (".npy", ".json"):
            vector = featurizers.embed_guidance(encoder, str(path))
            return np.asarray(vector, dtype=np.float32).reshape(-1), "image"
        if path.suffix.lower() == ".npy":
            vector = np.load(path, allow_pickle=False)
        elif path.suffix.lower() == ".json":
            vector = np.asarray(json.loads(path.read_text(encoding="utf-8")), dtype=np.float32)
        else:
            raise InputError(
                f"{path}: the model's image guidance encoder takes precomputed vectors (.npy or .json): "
                "give one, or use an image encoder such as face-blendshapes"
            )
        return np.asarray(vector, dtype=np.float32).reshape(-1), "image"
    raise InputError(
        f"sample '{sample.id}' has no guidance_text or guidance_image: the {stage} stage needs one"
    )


# ------------------------------------------------------------------------------------- checkpoints


def _rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype("int64")), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
    }


def _restore_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])


def _save_atomically(obj: Any, path: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        torch.save(obj, temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _config_fingerprint(config: TrainingConfig) -> str:
    # Post-processing acts at inference only: changing it does not make a checkpoint stale.
    relevant = config.model_dump(mode="json", exclude={"source", "cache", "output", "postprocessors"})
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------- loop


@dataclass
class StepReport:
    """What the progress callback receives after every optimiser step."""

    stage: str
    phase: str
    epoch: int
    epochs: int
    step: int
    steps_per_epoch: int
    losses: dict[str, float]


@dataclass
class TrainingResult:
    stages: list[str]
    bundle: Path
    log: Path
    final_losses: dict[str, dict[str, float]]
    is_main: bool = True


class _StageLoss:
    """Wraps model + stage so DistributedDataParallel sees one forward per step."""

    def __new__(cls, model: Any, trainer: Any) -> Any:
        import torch.nn as nn

        class StageLoss(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, batch: Any, phase: str) -> dict[str, Any]:
                return trainer.losses(self.model, batch, phase)

        return StageLoss()


def _to_device(batch: Any, device: str) -> Any:
    import torch

    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {key: _to_device(value, device) for key, value in batch.items()}
    return batch


def _freeze_all_but(model: Any, trainable: list[Any]) -> list[Any]:
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    parameters = []
    for part in trainable:
        for parameter in part.parameters():
            parameter.requires_grad_(True)
            parameters.append(parameter)
    model.eval()
    for part in trainable:
        part.train()
    return parameters


def run_training(
    config: TrainingConfig,
    *,
    stage: str | None = None,
    resume: bool = False,
    device: str = "cpu",
    on_step: Callable[[StepReport], None] | None = None,
    stop_after_epochs: int | None = None,
) -> TrainingResult:
    """Run the config's stages in order (or only ``stage``); see the module docstring.

    ``stop_after_epochs`` ends the run after that many epochs in this call (as an interruption would),
    leaving the checkpoints for ``resume``: tests use it to prove that resuming is exact.
    """
    import torch

    from medtalk.core.model.modules import MedtalkModel
    from medtalk.core.plugins import build

    context = join_process_group(device)
    device_name = resolve_device(device, context)
    output = config.output
    checkpoints = output / "checkpoints"
    log_path = output / "log.jsonl"
    fingerprint = _config_fingerprint(config)
    names = [entry["type"] for entry in config.stages]
    if stage is not None and stage not in names:
        raise ConfigError(f"the config has no stage '{stage}': its stages are {', '.join(names)}")
    if context.is_main:
        if not resume and checkpoints.exists() and any(checkpoints.iterdir()):
            raise OutputError(
                f"{output} already holds a run: pass --resume to continue it, or set another output"
            )
        output.mkdir(parents=True, exist_ok=True)
    _barrier(context)

    torch.manual_seed(config.seed)
    model = MedtalkModel.from_config(config.model).to(device_name)
    featurizers = Featurizers(config)
    done_stages = [n for n in names if (checkpoints / f"{n}.done.pt").exists()] if resume else []
    if stage is not None:
        # A single stage starts from the weights the stages before it left.
        previous = names[: names.index(stage)]
        done_stages = [n for n in done_stages if n in previous]
        last_done = next((n for n in reversed(previous) if (checkpoints / f"{n}.done.pt").exists()), None)
        if previous and last_done is None:
            raise InputError(
                f"stage '{stage}' starts from the weights of '{previous[-1]}', which has not run in "
                f"{output}: run the stages before it first"
            )
        if last_done is not None:
            model.load_state_dict(_load(checkpoints / f"{last_done}.done.pt")["model"])
    elif done_stages:
        model.load_state_dict(_load(checkpoints / f"{done_stages[-1]}.done.pt")["model"])

    final_losses: dict[str, dict[str, float]] = {}
    epochs_left = [stop_after_epochs]
    for entry in config.stages:
        name = entry["type"]
        if (stage is not None and name != stage) or (stage is None and name in done_stages):
            continue
        options = {key: value for key, value in entry.items() if key != "dataset"}
        trainer = build("trainer", options)
        dataset = build("dataset", entry["dataset"])
        data = prepare_stage_data(trainer, dataset, featurizers, config, dict(model.guidance.items()))
        completed = _run_stage(
            trainer,
            model,
            data,
            config,
            context,
            device_name,
            checkpoints,
            log_path,
            fingerprint,
            resume,
            on_step,
            epochs_left,
            final_losses,
        )
        if not completed:
            break
        if context.is_main:
            _save_atomically(
                {"format": CHECKPOINT_FORMAT, "model": model.state_dict()}, checkpoints / f"{name}.done.pt"
            )
            (checkpoints / f"{name}.pt").unlink(missing_ok=True)
            _write_bundle(model, config, final_losses, output / "bundle")
        _barrier(context)
    return TrainingResult(
        [n for n in names if (checkpoints / f"{n}.done.pt").exists()],
        output / "bundle",
        log_path,
        final_losses,
        context.is_main,
    )


def _load(path: Path) -> dict[str, Any]:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise InputError(
            f"{path}: not a readable medtalk checkpoint ({error}): delete it and run again"
        ) from None


def _run_stage(
    trainer: Any,
    model: MedtalkModel,
    data: StageData,
    config: TrainingConfig,
    context: DistributedContext,
    device: str,
    checkpoints: Path,
    log_path: Path,
    fingerprint: str,
    resume: bool,
    on_step: Callable[[StepReport], None] | None,
    epochs_left: list[int | None],
    final_losses: dict[str, dict[str, float]],
) -> bool:
    """Train one stage to its end (True) or until ``epochs_left`` runs out (False)."""
    import torch

    parameters = _freeze_all_but(model, trainer.trainable_parts(model))
    optimizer = torch.optim.Adam(parameters, lr=trainer.config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=trainer.config.lr_step_epochs, gamma=trainer.config.lr_decay
    )
    phases = trainer.phases()
    position = {"phase": 0, "epoch": 0, "step": 0}
    checkpoint_path = checkpoints / f"{trainer.name}.pt"
    if resume and checkpoint_path.exists():
        state = _load(checkpoint_path)
        if state.get("fingerprint") != fingerprint:
            raise InputError(
                f"{checkpoint_path}: the config changed since this checkpoint was written: resume with the "
                "same config, or start a new output"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _restore_rng_state(state["rng"])
        position = dict(state["position"])

    wrapped: Any = _StageLoss(model, trainer)
    if context.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(
            wrapped,
            device_ids=[context.local_rank] if device.startswith("cuda") else None,
            find_unused_parameters=True,
        )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else _no_autocast()
    accumulation = trainer.config.grad_accumulation
    while position["phase"] < len(phases):
        phase, epochs = phases[position["phase"]]
        while position["epoch"] < epochs:
            if epochs_left[0] is not None and epochs_left[0] <= 0:
                return False
            epoch = position["epoch"]
            seed = _epoch_seed(config.seed, trainer.name, phase, epoch)
            batches = list(trainer.batches(data, phase, seed, context.rank, context.world_size))
            totals: dict[str, float] = {}
            optimizer.zero_grad(set_to_none=True)
            for index, batch in enumerate(batches, start=1):
                with autocast:
                    losses = wrapped(_to_device(batch, device), phase)
                (losses["total"] / accumulation).backward()
                if index % accumulation == 0 or index == len(batches):
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                position["step"] += 1
                values = {key: float(value.detach()) for key, value in losses.items()}
                for key, value in values.items():
                    totals[key] = totals.get(key, 0.0) + value
                if context.is_main:
                    _append_log(log_path, trainer.name, phase, epoch, position["step"], optimizer, values)
                if on_step is not None and context.is_main:
                    on_step(StepReport(trainer.name, phase, epoch, epochs, index, len(batches), values))
            scheduler.step()
            position["epoch"] += 1
            if batches:
                final_losses[trainer.name] = {key: value / len(batches) for key, value in totals.items()}
            if context.is_main:
                _save_atomically(
                    {
                        "format": CHECKPOINT_FORMAT,
                        "fingerprint": fingerprint,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "rng": _rng_state(),
                        "position": {
                            "phase": position["phase"],
                            "epoch": position["epoch"],
                            "step": position["step"],
                        },
                    },
                    checkpoint_path,
                )
            _barrier(context)
            if epochs_left[0] is not None:
                epochs_left[0] -= 1
        position["phase"] += 1
        position["epoch"] = 0
    return True


class _no_autocast:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def _epoch_seed(seed: int, stage: str, phase: str, epoch: int) -> int:
    digest = hashlib.sha256(f"{seed}/{stage}/{phase}/{epoch}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _append_log(
    path: Path, stage: str, phase: str, epoch: int, step: int, optimizer: Any, losses: Mapping[str, float]
) -> None:
    record = {
        "stage": stage,
        "phase": phase,
        "epoch": epoch,
        "step": step,
        "lr": optimizer.param_groups[0]["lr"],
        **losses,
    }
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")


def _write_bundle(
    model: Any, config: TrainingConfig, losses: dict[str, dict[str, float]], folder: Path
) -> None:
    from medtalk.core.model.bundle import save_bundle

    pipeline: dict[str, Any] = {
        "rig": config.rig,
        "fps": config.fps,
        "features": config.features.model_dump(mode="json"),
    }
    if config.postprocessors is not None:
        pipeline["postprocessors"] = config.postprocessors
    card = {
        "pipeline": pipeline,
        "rig": config.rig,
        "fps": config.fps,
        "training": {
            "seed": config.seed,
            "stages": [{"type": entry["type"], "dataset": entry["dataset"]} for entry in config.stages],
        },
        "metrics": {"final_losses": losses},
    }
    save_bundle(folder, model, card, overwrite=True)
