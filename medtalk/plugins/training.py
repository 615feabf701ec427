"""Built-in training stages (the paper's order: disentangle, acm, fim, guidance) and `medtalk train`.

Each stage is a ``Trainer``: what it needs, what trains, how batches are drawn, which losses. The loop
itself (optimiser, StepLR, checkpoints, exact resume, logs, DDP, AMP) is ``medtalk.core.training``.
torch is imported inside methods only: this module loads at CLI start-up.

No ``from __future__ import annotations`` here: Typer reads the command's options from the annotations,
which must be evaluated where the command is defined, inside the hook, where ``typer`` is imported.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field

from medtalk import hookimpl
from medtalk.core.components import ComponentConfig, Trainer
from medtalk.core.errors import ConfigError

LAMBDA_SIM = 0.1  # paper section 4: lambda_sim = lambda_int = 0.1
LAMBDA_INT = 0.1


class StageConfig(ComponentConfig):
    epochs: int = Field(default=10, ge=0, description="Epochs of the stage (of each phase for disentangle)")
    batch_size: int = Field(default=16, ge=1, description="Sequences per batch on each process")
    lr: float = Field(default=1e-3, gt=0, description="Adam learning rate (paper: 1e-3 after stage 1)")
    lr_decay: float = Field(default=0.9, gt=0, le=1, description="StepLR gamma (paper: 0.9 after stage 1)")
    lr_step_epochs: int = Field(
        default=10, ge=1, description="StepLR step size in epochs (the paper's 'drop rate r = 10')"
    )
    grad_accumulation: int = Field(default=1, ge=1, description="Batches whose gradients add up per step")


class DisentangleConfig(StageConfig):
    lr: float = Field(default=1e-4, gt=0, description="Adam learning rate (paper: 1e-4 for stage 1)")
    lr_decay: float = Field(default=0.995, gt=0, le=1, description="StepLR gamma (paper: 0.995 for stage 1)")
    phase_epochs: dict[str, int] | None = Field(
        default=None,
        description="Epochs per phase (reconstruct, content, emotion, cycle); default `epochs` for each",
    )


def masked_mse(prediction: Any, target: Any, mask: Any) -> Any:
    """Mean squared error over the real frames (mask True) and every control."""
    weights = mask.unsqueeze(-1).to(prediction.dtype)
    squared = (prediction - target) ** 2 * weights
    return squared.sum() / (weights.sum() * prediction.shape[-1]).clamp_min(1.0)


def masked_cosine_distance(first: Any, second: Any, mask: Any) -> Any:
    """1 - cos per frame along the embedding, averaged over the real frames (eqs. 6, 10, 13)."""
    import torch.nn.functional as F

    cosine = F.cosine_similarity(first, second, dim=-1, eps=1e-8)
    weights = mask.to(cosine.dtype)
    return ((1.0 - cosine) * weights).sum() / weights.sum().clamp_min(1.0)


def _chunks(items: list[Any], size: int, rank: int, world_size: int) -> list[list[Any]]:
    """Batches of ``size`` for this rank: disjoint across ranks, the same count on each."""
    batches = [items[i : i + size] for i in range(0, len(items), size)]
    if world_size > 1:
        usable = len(batches) - len(batches) % world_size
        batches = [b for b in batches[:usable] if len(b) == size] if usable else []
        batches = batches[rank::world_size]
    return batches


class DisentangleTrainer(Trainer):
    """Stage 1: self-reconstruction, overlap exchange (same content, same emotion), cycle exchange."""

    name = "disentangle"
    Config = DisentangleConfig
    needs: ClassVar[frozenset[str]] = frozenset()
    PHASES = ("reconstruct", "content", "emotion", "cycle")

    def phases(self) -> list[tuple[str, int]]:
        custom = self.config.phase_epochs or {}
        unknown = sorted(set(custom) - set(self.PHASES))
        if unknown:
            raise ConfigError(
                f"disentangle has no phase '{unknown[0]}': its phases are {', '.join(self.PHASES)}"
            )
        return [(phase, custom.get(phase, self.config.epochs)) for phase in self.PHASES]

    def trainable_parts(self, model: Any) -> list[Any]:
        return [model.motion]

    def batches(self, data: Any, phase: str, seed: int, rank: int, world_size: int) -> Iterator[Any]:
        from medtalk.core.data.batching import collate

        dataset = data.dataset
        if phase == "reconstruct":
            import numpy as np

            order = np.random.default_rng(seed).permutation(len(data.samples)).tolist()
            for chunk in _chunks([data.samples[i] for i in order], self.config.batch_size, rank, world_size):
                yield {"self": collate(chunk, fps=data.fps)}
            return
        if not hasattr(dataset, "same_content_pairs"):
            raise ConfigError(
                "the disentangle stage needs a paired dataset (type: paired): the same utterance under "
                "several emotions"
            )
        pairs = {
            "content": dataset.same_content_pairs,
            "emotion": dataset.same_emotion_pairs,
            "cycle": dataset.cycle_pairs,
        }[phase](seed)
        for chunk in _chunks(pairs, self.config.batch_size, rank, world_size):
            yield {
                "first": collate([a for a, _ in chunk], fps=data.fps),
                "second": collate([b for _, b in chunk], fps=data.fps),
            }

    def losses(self, model: Any, batch: Any, phase: str) -> dict[str, Any]:
        motion = model.motion
        if phase == "reconstruct":
            rig, mask = batch["self"]["rig"], batch["self"]["mask"]
            loss = masked_mse(motion(rig), rig, mask)
            return {"total": loss, "recon": loss}
        first, second = batch["first"]["rig"], batch["second"]["rig"]
        mask = batch["first"]["mask"] & batch["second"]["mask"]
        emotion_1, content_1 = motion.encode_emotion(first), motion.encode_content(first)
        emotion_2, content_2 = motion.encode_emotion(second), motion.encode_content(second)
        if phase == "cycle":
            # Eq. 4: swap twice; the second swap must give back the originals.
            swapped_12 = motion.decode(emotion_1, content_2)
            swapped_21 = motion.decode(emotion_2, content_1)
            back_1 = motion.decode(motion.encode_emotion(swapped_12), motion.encode_content(swapped_21))
            back_2 = motion.decode(motion.encode_emotion(swapped_21), motion.encode_content(swapped_12))
            terms = {"cycle_1": masked_mse(back_1, first, mask), "cycle_2": masked_mse(back_2, second, mask)}
        else:
            # Eq. 3 with the self-reconstructions, as the authors train it: with the same content (or
            # the same emotion) the swapped pair must rebuild the sequence that owns the emotion (content).
            target_12 = first if phase == "content" else second
            target_21 = second if phase == "content" else first
            terms = {
                "recon_1": masked_mse(motion.decode(emotion_1, content_1), first, mask),
                "recon_2": masked_mse(motion.decode(emotion_2, content_2), second, mask),
                "swap_12": masked_mse(motion.decode(emotion_1, content_2), target_12, mask),
                "swap_21": masked_mse(motion.decode(emotion_2, content_1), target_21, mask),
            }
        return {"total": sum(terms.values()), **terms}


class _AudioStage(Trainer):
    """Stages that read prepared samples (rig + features) and batch them by length."""

    def batches(self, data: Any, phase: str, seed: int, rank: int, world_size: int) -> Iterator[Any]:
        from medtalk.core.data.batching import length_bucketed_batches

        lengths = [item.num_frames for item in data.items]
        for indices in length_bucketed_batches(
            lengths, self.config.batch_size, seed, rank=rank, world_size=world_size
        ):
            yield data.collate([data.items[i] for i in indices])


class AcmTrainer(_AudioStage):
    """Stage 2: audio content mapping (eqs. 6-7); the motion autoencoder is frozen."""

    name = "acm"
    Config = StageConfig
    needs: ClassVar[frozenset[str]] = frozenset({"content"})

    def trainable_parts(self, model: Any) -> list[Any]:
        return [model._part("content_mapper", "content mapper")]

    def losses(self, model: Any, batch: Any, phase: str) -> dict[str, Any]:
        rig, mask, motion = batch["rig"], batch["mask"], model.motion
        content = model.content_mapper(batch["content_features"])
        prediction = motion.decode(motion.encode_emotion(rig), content)
        recon = masked_mse(prediction, rig, mask)
        sim = masked_cosine_distance(motion.encode_content(rig), content, mask)
        return {"total": recon + LAMBDA_SIM * sim, "recon": recon, "sim": sim}


def _generate(model: Any, batch: Any, guidance: Any) -> dict[str, Any]:
    return model(
        batch["content_features"],
        batch["emotion_features"],
        batch.get("text_tokens"),
        batch.get("text_mask"),
        guidance,
    )


class FimTrainer(_AudioStage):
    """Stage 3: fusion intensity modelling (eqs. 8-12): CMF, label embedding and E_fuse train."""

    name = "fim"
    Config = StageConfig
    needs: ClassVar[frozenset[str]] = frozenset({"content", "emotion", "text", "label"})

    def trainable_parts(self, model: Any) -> list[Any]:
        if "label" not in model.guidance:
            raise ConfigError(
                "the fim stage needs a label guidance encoder in the model config "
                "(guidance_encoders: {label: {type: label}})"
            )
        return [
            model._part("intensity_predictor", "intensity predictor"),
            model.guidance["label"],
            model._part("fusion", "fusion encoder"),
        ]

    def losses(self, model: Any, batch: Any, phase: str) -> dict[str, Any]:
        from medtalk.core.model.modules import intensity_target

        rig, mask = batch["rig"], batch["mask"]
        if bool((batch["emotion"] < 0).any()):
            raise ConfigError("the fim stage needs an emotion label on every sample: add emotion to the data")
        output = _generate(model, batch, model.encode_guidance("label", batch["emotion"]))
        recon = masked_mse(output["rig"], rig, mask)
        sim = masked_cosine_distance(model.motion.encode_emotion(rig), output["emotion"], mask)
        indices = batch["intensity_indices"]
        intensity = masked_mse(intensity_target(output["rig"], indices), intensity_target(rig, indices), mask)
        total = recon + LAMBDA_SIM * sim + LAMBDA_INT * intensity
        return {"total": total, "recon": recon, "sim": sim, "int": intensity}


class GuidanceConfig(StageConfig):
    train_fusion: bool = Field(
        default=True,
        description="Train E_fuse too, as the paper does; false keeps the E_fuse that label guidance was "
        "trained with, so label guidance gives exactly what it gave after the fim stage",
    )


class GuidanceTrainer(_AudioStage):
    """Stage 4: text and image guidance (eqs. 13-14): only P_text, P_image and E_fuse train."""

    name = "guidance"
    Config = GuidanceConfig
    config: GuidanceConfig
    needs: ClassVar[frozenset[str]] = frozenset({"content", "emotion", "text", "guidance"})

    def trainable_parts(self, model: Any) -> list[Any]:
        parts = [model.guidance[m] for m in ("text", "image") if m in model.guidance]
        if not parts:
            raise ConfigError(
                "the guidance stage needs a text or image guidance encoder in the model config "
                "(guidance_encoders: {text: {type: text-features, input_dim: N}})"
            )
        fusion = model._part("fusion", "fusion encoder")
        return [*parts, fusion] if self.config.train_fusion else parts

    def batches(self, data: Any, phase: str, seed: int, rank: int, world_size: int) -> Iterator[Any]:
        # A batch holds one modality: text and image guidance go through different projections.
        from medtalk.core.data.batching import length_bucketed_batches

        groups: dict[str, list[int]] = {}
        for index, item in enumerate(data.items):
            groups.setdefault(item.guidance_modality, []).append(index)
        for offset, (_, members) in enumerate(sorted(groups.items())):
            lengths = [data.items[i].num_frames for i in members]
            for indices in length_bucketed_batches(
                lengths, self.config.batch_size, seed + offset, rank=rank, world_size=world_size
            ):
                yield data.collate([data.items[members[i]] for i in indices])

    def losses(self, model: Any, batch: Any, phase: str) -> dict[str, Any]:
        rig, mask = batch["rig"], batch["mask"]
        modality = batch["guidance_modality"]
        output = _generate(model, batch, model.encode_guidance(modality, batch["guidance"]))
        recon = masked_mse(output["rig"], rig, mask)
        sim = masked_cosine_distance(model.motion.encode_emotion(rig), output["emotion"], mask)
        return {"total": recon + LAMBDA_SIM * sim, "recon": recon, "sim": sim}


@hookimpl
def register_trainers(register):
    register(DisentangleTrainer)
    register(AcmTrainer)
    register(FimTrainer)
    register(GuidanceTrainer)


@hookimpl
def register_commands(app) -> None:
    import typer

    @app.command()
    def train(
        config: Annotated[Path, typer.Argument(metavar="CONFIG.yaml", help="The training config.")],
        stage: Annotated[
            str | None, typer.Option(metavar="NAME", help="Run only this stage (its config entry's type).")
        ] = None,
        resume: Annotated[
            bool, typer.Option("--resume", help="Continue the run in the config's output folder.")
        ] = False,
        device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    ) -> None:
        """Train the model stage by stage from a YAML config (torchrun for several processes)."""
        from medtalk.cli import console
        from medtalk.core.training import load_training_config, run_training

        run_config = load_training_config(config)
        with _progress() as on_step:
            result = run_training(run_config, stage=stage, resume=resume, device=device, on_step=on_step)
        if result.is_main:
            console().print(f"wrote {result.bundle} ({', '.join(result.stages)}); log: {result.log}")


def _progress() -> Any:
    """A context manager giving a progress callback that drives one rich progress bar per phase."""
    import contextlib

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from medtalk.cli import console

    @contextlib.contextmanager
    def bar() -> Iterator[Any]:
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            console=console(stderr=True),
            transient=False,
        )
        tasks: dict[tuple[str, str, int], Any] = {}

        def on_step(report: Any) -> None:
            # Started on the first step, so an error before training prints its one line alone.
            if not tasks:
                progress.start()
            key = (report.stage, report.phase, report.epoch)
            if key not in tasks:
                label = f"{report.stage}/{report.phase} epoch {report.epoch + 1}/{report.epochs}"
                tasks[key] = progress.add_task(label, total=report.steps_per_epoch, losses="")
            losses = " ".join(f"{name} {value:.4g}" for name, value in report.losses.items())
            progress.update(tasks[key], completed=report.step, losses=losses)

        try:
            yield on_step
        finally:
            if tasks:
                progress.stop()

    return bar()
