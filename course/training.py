"""Training support for the course: one loop that fits a classifier and one that evaluates it.

``fit`` trains for some epochs with an optional scheduler, progress bars (``tqdm.auto``), a
history dict ready for plotting, TensorBoard scalars and a checkpoint after every epoch that
``fit(..., resume=True)`` picks up exactly where it stopped. ``evaluate`` measures loss and
accuracy with torchmetrics. torchmetrics and tqdm are imported inside the functions so that
``import course`` stays light.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["evaluate", "fit", "load_state", "predict", "save_state", "seed_everything",
           "train_epoch"]

Batch = tuple[torch.Tensor, torch.Tensor]


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (every device) so that a run can be repeated.

    ``deterministic=True`` also asks torch for deterministic kernels (slower on a GPU; an
    operation without a deterministic version then raises an error instead of varying).
    """
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy ships with torch's usual installs
        pass
    torch.manual_seed(seed)  # seeds CUDA and MPS generators too
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def _num_samples(loader: Any) -> int | None:
    for attr in ("num_samples",):
        if hasattr(loader, attr):
            return int(getattr(loader, attr))
    dataset = getattr(loader, "dataset", None)
    try:
        return len(dataset) if dataset is not None else None
    except TypeError:
        return None


def _bar(iterable: Iterable[Any], progress: bool, **kwargs: Any) -> Any:
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)


def train_epoch(model: nn.Module, loader: Iterable[Batch], loss_fn: Callable[..., torch.Tensor],
                optimizer: torch.optim.Optimizer, device: torch.device | str = "cpu",
                scheduler: Any = None, progress: bool = False, desc: str = "train",
                ) -> dict[str, float]:
    """One pass over ``loader``; returns ``{"loss", "accuracy"}`` averaged over samples.

    ``scheduler`` (optional) is stepped after every batch, as ``OneCycleLR`` expects.
    """
    model.train()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    bar = _bar(loader, progress, desc=desc, leave=False, total=_len(loader))
    for inputs, targets in bar:
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        logits = model(inputs)
        loss = loss_fn(logits, targets)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        n = targets.shape[0]
        total_loss += loss.detach() * n  # stays on the device: no sync per batch
        correct += (logits.detach().argmax(dim=1) == targets).sum()
        seen += n
    seen = max(seen, 1)
    return {"loss": total_loss.item() / seen, "accuracy": correct.item() / seen}


def _len(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable[Batch], loss_fn: Callable[..., torch.Tensor],
             device: torch.device | str = "cpu", num_classes: int = 10,
             progress: bool = False) -> dict[str, float]:
    """Loss and accuracy over every sample of ``loader``, in eval mode, with torchmetrics."""
    from torchmetrics import MeanMetric
    from torchmetrics.classification import MulticlassAccuracy

    model.eval()
    accuracy = MulticlassAccuracy(num_classes=num_classes, average="micro").to(device)
    mean_loss = MeanMetric().to(device)
    for inputs, targets in _bar(loader, progress, desc="eval", leave=False, total=_len(loader)):
        inputs, targets = inputs.to(device), targets.to(device)
        logits = model(inputs)
        mean_loss.update(loss_fn(logits, targets), weight=targets.shape[0])
        accuracy.update(logits, targets)
    return {"loss": float(mean_loss.compute()), "accuracy": float(accuracy.compute())}


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable[Batch], device: torch.device | str = "cpu",
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits (N, C), targets (N,))`` on the CPU, in the loader's order (eval mode)."""
    model.eval()
    outs, targets = [], []
    for inputs, y in loader:
        outs.append(model(inputs.to(device)).float().cpu())
        targets.append(y.cpu())
    return torch.cat(outs), torch.cat(targets)


def save_state(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: Any = None, epoch: int = 0, history: dict[str, list] | None = None,
               generator: torch.Generator | None = None) -> None:
    """Everything needed to resume exactly: weights, optimizer, scheduler, RNG states, history."""
    state: dict[str, Any] = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": int(epoch),
        "history": history or {},
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loader_rng": generator.get_state() if generator is not None else None,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint behind


def load_state(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
               scheduler: Any = None, generator: torch.Generator | None = None,
               map_location: Any = None) -> tuple[int, dict[str, list]]:
    """Restore what :func:`save_state` wrote; returns ``(epoch, history)``."""
    state = torch.load(path, map_location=map_location or "cpu", weights_only=True)
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    if generator is not None and state["loader_rng"] is not None:
        generator.set_state(state["loader_rng"])
    return int(state["epoch"]), dict(state["history"])


def fit(model: nn.Module, train_loader: Iterable[Batch], loss_fn: Callable[..., torch.Tensor],
        optimizer: torch.optim.Optimizer, epochs: int, device: torch.device | str = "cpu", *,
        val_loader: Iterable[Batch] | None = None, scheduler: Any = None,
        checkpoint: str | Path | None = None, best_path: str | Path | None = None,
        resume: bool = False, progress: bool = True, writer: Any = None,
        num_classes: int = 10) -> dict[str, list[float]]:
    """Train for ``epochs`` epochs; returns the history ``{"epoch", "train_loss", ...}``.

    * ``scheduler`` is stepped once per batch (build ``OneCycleLR`` with ``epochs`` and
      ``steps_per_epoch=len(train_loader)``).
    * ``checkpoint``: saved after every epoch; with ``resume=True`` training continues from it,
      and the result is the same as an uninterrupted run.
    * ``best_path``: the weights with the best validation accuracy so far.
    * ``writer``: a TensorBoard ``SummaryWriter``; scalars are logged per epoch.
    """
    from tqdm.auto import tqdm

    history: dict[str, list[float]] = {"epoch": [], "train_loss": [], "train_accuracy": [],
                                       "val_loss": [], "val_accuracy": [], "lr": []}
    generator = getattr(train_loader, "generator", None)
    start = 0
    if resume and checkpoint is not None and Path(checkpoint).is_file():
        start, saved = load_state(checkpoint, model, optimizer, scheduler, generator)
        history.update({k: list(v) for k, v in saved.items()})
    best = max(history["val_accuracy"], default=-1.0)
    epochs_bar = tqdm(range(start, epochs), desc="epochs", initial=start, total=epochs,
                      disable=not progress)
    for epoch in epochs_bar:
        lr = optimizer.param_groups[0]["lr"]
        train = train_epoch(model, train_loader, loss_fn, optimizer, device, scheduler,
                            progress=progress, desc=f"epoch {epoch + 1}")
        row = {"train_loss": train["loss"], "train_accuracy": train["accuracy"], "lr": lr}
        if val_loader is not None:
            val = evaluate(model, val_loader, loss_fn, device, num_classes)
            row.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
        history["epoch"].append(epoch + 1)
        for key, value in row.items():
            history[key].append(float(value))
        epochs_bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k != "lr"})
        if writer is not None:
            for key, value in row.items():
                writer.add_scalar(key.replace("_", "/", 1), value, epoch + 1)
        if best_path is not None and row.get("val_accuracy", -1.0) > best:
            best = row["val_accuracy"]
            torch.save(model.state_dict(), best_path)
        if checkpoint is not None:
            save_state(checkpoint, model, optimizer, scheduler, epoch + 1, history, generator)
    return history
