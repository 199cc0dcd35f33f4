"""Checks for 11_mnist and 12_fashion_mnist: a training epoch and an evaluation compared with a
reference loop, models that must reach a test accuracy under the course's own recipe, per-class
accuracy against torchmetrics, and checkpoints that resume training bit for bit."""

from __future__ import annotations

import contextlib
import copy
import inspect
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._core import CheckFailure, call, forbid_delegation, require, same_tensor, tripwire

__all__ = ["CNN_RECIPE", "MLP_RECIPE", "FashionCNN", "build_mnist_mlp", "build_mnist_mlp_accuracy",
           "checkpoint", "evaluate", "fashion_cnn_accuracy", "per_class_accuracy",
           "train_one_epoch", "train_with_recipe"]

MLP_RECIPE = {"dataset": "MNIST", "epochs": 3, "batch_size": 128, "optimizer": "Adam",
              "lr": 1e-3, "max_lr": 3e-3, "target": 0.975, "max_params": 1_500_000,
              "max_macs": 1_500_000}
CNN_RECIPE = {"dataset": "FashionMNIST", "epochs": 4, "batch_size": 128, "optimizer": "SGD",
              "lr": 0.1, "max_lr": 0.1, "target": 0.90, "max_params": 1_000_000,
              "max_macs": 2_500_000}
# The training budget is counted in multiply-adds per image, not seconds: a wall-clock guard
# fails correct answers on a busy machine. The course's own CNN needs 1.2 M (about 85 s for the
# recipe on 2 CPU cores), so the budgets leave about 2x headroom inside the cell timeout.


def _macs(model: nn.Module, device: torch.device) -> int:
    """Multiply-adds of Conv and Linear layers for one (1, 1, 28, 28) image."""
    total = 0

    def hook(mod: nn.Module, inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d | nn.Conv1d | nn.Conv3d):
            k = 1
            for size in mod.kernel_size:
                k *= size
            total += out.numel() * (mod.in_channels // mod.groups) * k
        elif isinstance(mod, nn.Linear | nn.LazyLinear):
            total += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 1, 28, 28, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total


def _device() -> torch.device:
    from course.device import get_device

    return get_device(verbose=False)


def _close(a: float, b: float, tol: float = 1e-4) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(b))


def _is_float(x: Any) -> bool:
    return isinstance(x, float)


_LOOP_HINT = "Write the loop yourself with torch; course.training is what it is checked against."

# --- 11: train_one_epoch -------------------------------------------------------------------------

def _tiny_classifier(seed: int, width: int = 12) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(6, width), nn.BatchNorm1d(width), nn.ReLU(),
                             nn.Linear(width, 3))


def _tiny_data(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def _loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, as_list: bool) -> Iterable[Any]:
    if as_list:  # any iterable of batches is a loader: no .dataset, no len(loader.dataset)
        return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(y), batch_size)]
    from torch.utils.data import DataLoader, TensorDataset

    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)


def _reference_epoch(run: tuple[nn.Module, torch.optim.Optimizer], loader: Iterable[Any],
                     loss_fn: Callable[..., Any], device: torch.device, *, train_mode: bool = True,
                     zero_grad: str = "before") -> tuple[float, float]:
    """The course's loop; returns (sample-weighted mean loss, mean of batch losses)."""
    model, optimizer = run
    model.train(train_mode)
    total, n, batch_losses = 0.0, 0, []
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        if zero_grad == "before":
            optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        if zero_grad == "after":
            optimizer.zero_grad()
        total += loss.item() * len(y)
        n += len(y)
        batch_losses.append(loss.item())
    return total / n, sum(batch_losses) / len(batch_losses)


def _same_state(a: nn.Module, b: nn.Module, tol: float = 1e-5) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.allclose(sa[k].double(), sb[k].double(), rtol=tol, atol=1e-6) for k in sa)


def _make_optimizer(model: nn.Module, kind: str) -> torch.optim.Optimizer:
    if kind == "adam":
        return torch.optim.Adam(model.parameters(), lr=0.01)
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def train_one_epoch(fn: Callable[..., Any], *, thorough: bool = False, hidden: bool = False,
                    seed: int = 0) -> None:
    """``fn(model, loader, loss_fn, optimizer, device)`` must do what the reference loop does."""
    __tracebackhide__ = True
    from course import training as lib

    device = _device()
    cases = [(seed, 30, 8, False, "sgd", False)]
    if thorough:
        cases += [(seed + 1, 45, 16, True, "adam", True), (seed + 2, 8, 3, True, "sgd", True)]
    for case_seed, n, bs, as_list, opt_kind, stale in cases:
        x, y = _tiny_data(case_seed, n)
        loader = _loader(x, y, bs, as_list)
        loss_fn = nn.CrossEntropyLoss()
        base = _tiny_classifier(case_seed).to(device).eval()  # the loop must switch to train()
        runs = {}
        for variant in ("student", "ref", "no_zero", "eval_mode", "zero_after"):
            model = copy.deepcopy(base)
            opt = _make_optimizer(model, opt_kind)
            if stale:  # gradients left over from earlier work must not leak into the first step
                for p in model.parameters():
                    p.grad = torch.full_like(p, 0.5)
            runs[variant] = (model, opt)
        detail = f"{n} samples in batches of {bs}, optimizer {opt_kind}"
        model, opt = runs["student"]
        with tripwire([(lib, "train_epoch"), (lib, "fit")], "train_one_epoch", _LOOP_HINT):
            got = call(fn, model, loader, loss_fn, opt, device, name="train_one_epoch", hidden=hidden)
        ref_loss, batch_mean = _reference_epoch(runs["ref"], loader, loss_fn, device)
        _reference_epoch(runs["no_zero"], loader, loss_fn, device, zero_grad="never")
        _reference_epoch(runs["eval_mode"], loader, loss_fn, device, train_mode=False)
        _reference_epoch(runs["zero_after"], loader, loss_fn, device, zero_grad="after")
        if not _same_state(model, runs["ref"][0]):
            if all(torch.equal(p, q) for p, q in zip(model.parameters(), base.parameters(),
                                                       strict=True)):
                concept = ("the parameters did not change: call optimizer.step() after "
                           "loss.backward() for every batch")
            elif _same_state(model, runs["no_zero"][0]):
                concept = ("gradients accumulate: without optimizer.zero_grad() before each "
                           "backward(), every step also uses all the earlier batches' gradients")
            elif _same_state(model, runs["eval_mode"][0]):
                concept = ("call model.train() at the start of the epoch: the model arrived in "
                           "eval mode, so BatchNorm used its running statistics (and Dropout would "
                           "be off) while training")
            elif stale and _same_state(model, runs["zero_after"][0]):
                concept = ("gradients left over from before the epoch leaked into the first step: "
                           "call optimizer.zero_grad() before each backward(), not after step()")
            else:
                concept = ("after one epoch the parameters differ from a standard training loop: "
                           "for every batch move it to `device`, zero_grad, forward, loss, "
                           "backward, step")
            raise CheckFailure(concept, detail, hidden)
        require(_is_float(got), "train_one_epoch must return the epoch's loss as a Python float "
                "(use loss.item(), which also avoids keeping the graph alive)",
                f"it returned {type(got).__name__}", hidden)
        if _close(got, ref_loss):
            continue
        if _close(got, batch_mean):
            concept = ("average the loss over samples, not batches: weight each batch's loss by "
                       "its size (the last batch is smaller) and divide by the number of samples")
        else:
            concept = ("the returned loss must be the mean over all the epoch's samples of the "
                       "training loss (each batch's loss, computed before its step)")
        raise CheckFailure(concept, f"{detail}: expected {ref_loss:.6f}, got {got:.6f}", hidden)


# --- 11: evaluate --------------------------------------------------------------------------------

class _Probe(nn.Module):
    """Records, for every forward call, the mode, grad mode and which inputs were seen."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[bool, bool, int, float]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, torch.is_grad_enabled(), int(x.shape[0]),
                           float(x.detach().double().sum())))
        return x


def _eval_case(seed: int, n: int, bs: int, device: torch.device, as_list: bool):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5),
                            nn.Linear(16, 4))
        for _ in range(5):  # give BatchNorm running statistics that differ from a batch's
            net(torch.randn(32, 6) * 2 + 1)
    net = net.to(device)
    x, _ = _tiny_data(seed, n)
    with torch.no_grad():
        pred = copy.deepcopy(net).eval()(x.to(device)).argmax(1).cpu()
    g = torch.Generator().manual_seed(seed + 100)
    y = torch.randint(0, 4, (n,), generator=g)
    last = n - (n - 1) % bs - 1
    y[last:] = pred[last:]  # the short last batch is all correct: batch means differ from sample means
    probe = _Probe()
    model = nn.Sequential(probe, net).to(device).train()
    return model, probe, _loader(x, y, bs, as_list), x


def _reference_eval(model: nn.Module, loader: Iterable[Any], loss_fn: Callable[..., Any],
                    device: torch.device) -> dict[str, float]:
    model.eval()
    tot_loss = correct = n = 0.0
    b_loss, b_acc = [], []
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            out = model(x)
            loss, right = loss_fn(out, y).item(), (out.argmax(1) == y).sum().item()
            tot_loss, correct, n = tot_loss + loss * len(y), correct + right, n + len(y)
            b_loss.append(loss)
            b_acc.append(right / len(y))
    return {"loss": tot_loss / n, "accuracy": correct / n, "batch_loss": sum(b_loss) / len(b_loss),
            "batch_accuracy": sum(b_acc) / len(b_acc)}


def evaluate(fn: Callable[..., Any], *, thorough: bool = False, hidden: bool = False,
             seed: int = 0) -> None:
    """``fn(model, loader, loss_fn, device)`` must give the reference loss and accuracy."""
    __tracebackhide__ = True
    from course import training as lib

    device = _device()
    cases = [(seed, 50, 16, False)]
    if thorough:
        cases += [(seed + 1, 23, 5, True), (seed + 2, 64, 64, True)]
    for case_seed, n, bs, as_list in cases:
        model, probe, loader, x = _eval_case(case_seed, n, bs, device, as_list)
        reference = copy.deepcopy(model)
        loss_fn = nn.CrossEntropyLoss()
        with tripwire([(lib, "evaluate"), (lib, "predict")], "evaluate", _LOOP_HINT):
            got = call(fn, model, loader, loss_fn, device, name="evaluate", hidden=hidden)
        expected = _reference_eval(reference, loader, loss_fn, device)
        detail = f"{n} samples in batches of {bs}"
        require(isinstance(got, dict) and {"loss", "accuracy"} <= set(got),
                "evaluate must return a dict with the keys 'loss' and 'accuracy'",
                f"it returned {type(got).__name__}" + (f" with keys {sorted(got)}" if isinstance(got, dict) else ""),
                hidden)
        require(_is_float(got["loss"]) and _is_float(got["accuracy"]),
                "evaluate's 'loss' and 'accuracy' must be Python floats (use .item())",
                f"got {type(got['loss']).__name__} and {type(got['accuracy']).__name__}", hidden)
        require(bool(probe.calls), "evaluate never called the model on the loader's batches",
                detail, hidden)
        require(not any(training for training, _, _, _ in probe.calls),
                "call model.eval() before evaluating: in training mode Dropout zeroes units at "
                "random and BatchNorm normalises with the batch's statistics (and overwrites its "
                "running averages), so the numbers are noisy and wrong", detail, hidden)
        require(not any(grad for _, grad, _, _ in probe.calls),
                "evaluate inside `with torch.no_grad():` (or torch.inference_mode()): evaluation "
                "needs no gradients, and recording the graph wastes memory and time", detail, hidden)
        seen_rows = sum(rows for *_, rows, _ in probe.calls)
        seen_sum = sum(s for *_, s in probe.calls)
        require(seen_rows == n and abs(seen_sum - float(x.double().sum())) < 1e-6 * max(1.0, n * 6),
                "evaluate must run the model on every batch of the loader it is given, and only "
                "on those (not on a global such as train_loader: evaluating on the training set "
                "hides overfitting and bugs in the test pipeline)",
                f"{detail}: the model saw {seen_rows} samples", hidden)
        acc, loss = got["accuracy"], got["loss"]
        if not _close(acc, expected["accuracy"]):
            if _close(acc, 100 * expected["accuracy"]):
                concept = "accuracy must be a fraction in [0, 1], not a percentage"
            elif _close(acc, expected["batch_accuracy"]):
                concept = ("average the accuracy over samples, not over batches: count correct "
                           "predictions and divide by the number of samples (the last batch is "
                           "smaller)")
            else:
                concept = ("accuracy must be the fraction of samples whose argmax over the class "
                           "dimension (dim=1) equals the target")
            raise CheckFailure(concept, f"{detail}: expected {expected['accuracy']:.6f}, got {acc}",
                               hidden)
        if not _close(loss, expected["loss"]):
            if _close(loss, expected["batch_loss"]):
                concept = ("average the loss over samples, not batches: weight each batch's mean "
                           "loss by its size and divide by the number of samples")
            else:
                concept = "the loss must be loss_fn's mean over every sample of the loader"
            raise CheckFailure(concept, f"{detail}: expected {expected['loss']:.6f}, got {loss}",
                               hidden)
        require(all(p.grad is None for p in model.parameters()),
                "evaluate must not call backward(): it only measures the model", detail, hidden)


# --- models that must reach an accuracy ---------------------------------------------------------

def _is_conv(m: nn.Module) -> bool:
    return isinstance(m, nn.modules.conv._ConvNd) or "conv" in type(m).__name__.lower()


def _has_conv(model: nn.Module) -> bool:
    return any(_is_conv(m) for m in model.modules())


def _instantiate(factory: Callable[..., Any], name: str, hidden: bool) -> nn.Module:
    __tracebackhide__ = True
    model = call(factory, name=name, hidden=hidden)
    require(isinstance(model, nn.Module), f"{name} must give an nn.Module",
            f"got {type(model).__name__}", hidden)
    return model


def _forward_shape(model: nn.Module, name: str, hidden: bool, device: torch.device,
                   batch: int = 5, seed: int = 0) -> torch.Tensor:
    __tracebackhide__ = True
    x = torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(seed)).to(device)
    try:
        with torch.no_grad():
            out = model.to(device).eval()(x)
    except Exception as exc:  # noqa: BLE001 - report the student's crash with a hint
        raise CheckFailure(f"{name}'s model must accept (N, 1, 28, 28) images and return (N, 10) "
                           f"logits; calling it raised {type(exc).__name__}: {exc}",
                           f"input shape {tuple(x.shape)}", hidden) from None
    require(isinstance(out, torch.Tensor) and tuple(out.shape) == (batch, 10),
            f"{name}'s model must map (N, 1, 28, 28) images to (N, 10) logits, one score per class",
            f"input {tuple(x.shape)} gave {tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}",
            hidden)
    require(out.dtype == torch.float32, f"{name}'s model must return float32 logits",
            f"got {out.dtype}", hidden)
    probs = (out >= 0).all() and torch.allclose(out.sum(1), torch.ones(batch, device=device), atol=1e-4)
    require(not bool(probs), f"{name}'s model must return logits, not probabilities: leave out the "
            "final softmax (CrossEntropyLoss applies log-softmax itself)", None, hidden)
    return out


def _count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _basic_model_checks(factory: Callable[..., Any], name: str, recipe: dict, hidden: bool,
                        mlp: bool) -> nn.Module:
    __tracebackhide__ = True
    device = _device()
    with torch.random.fork_rng(devices=[]):
        model = _instantiate(factory, name, hidden)
    if mlp:
        require(not _has_conv(model), "an MLP uses fully connected layers only: build it from "
                "nn.Flatten, nn.Linear and activations, without Conv layers",
                f"found {[type(m).__name__ for m in model.modules() if _is_conv(m)][:1]}", hidden)
    else:
        kinds = {type(m) for m in model.modules()}
        require(any(issubclass(k, nn.Conv2d) for k in kinds),
                "FashionCNN must use convolutions (nn.Conv2d) to extract local features", None,
                hidden)
        require(any(issubclass(k, nn.BatchNorm2d) for k in kinds),
                "each convolution block needs BatchNorm2d (Conv-BN-ReLU-Pool): it keeps training "
                "fast and stable", None, hidden)
        require(any(issubclass(k, (nn.Dropout, nn.Dropout2d)) for k in kinds),
                "FashionCNN needs Dropout (before the classifier) against overfitting", None, hidden)
    params = _count_params(model)
    require(params <= recipe["max_params"],
            f"{name}'s model is too large to train inside the grading time: keep it under "
            f"{recipe['max_params']:,} parameters", f"it has {params:,}", hidden)
    _forward_shape(model, name, hidden, device)
    macs = _macs(model, device)
    require(macs <= recipe["max_macs"],
            f"{name}'s model needs too much computation to train inside the grading time: keep "
            f"it under {recipe['max_macs'] / 1e6:.1f} million multiply-adds per image (use fewer "
            "channels or units, or pool earlier)", f"it needs {macs / 1e6:.2f} million", hidden)
    return model


def _is_affine(model: nn.Module, device: torch.device) -> bool:
    g = torch.Generator().manual_seed(1)
    a, b = (torch.randn(4, 1, 28, 28, generator=g).to(device) for _ in range(2))
    with torch.no_grad():
        fa, fb, fm = model(a), model(b), model((a + b) / 2)
    return torch.allclose(fm, (fa + fb) / 2, rtol=1e-4, atol=1e-4 * float(fa.abs().max()) + 1e-5)


def _structure_extras(model_fn: Callable[[], nn.Module], name: str, hidden: bool) -> None:
    __tracebackhide__ = True
    device = _device()
    model = model_fn().to(device)
    _forward_shape(model, name, hidden, device, batch=1, seed=3)
    model.train()
    out = model(torch.randn(3, 1, 28, 28).to(device))
    out.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    require(not missing, f"every parameter of {name}'s model must be used in forward (unused "
            "layers are never trained)", f"no gradient reached: {missing[:3]}", hidden)
    other = model_fn()
    require(other is not model and all(p is not q for p, q in zip(other.parameters(),
                                                                   model.parameters(), strict=False)),
            f"{name} must build a fresh model with its own parameters every time", None, hidden)


def build_mnist_mlp(fn: Callable[[], nn.Module], *, thorough: bool = False, hidden: bool = False,
                    seed: int = 0) -> None:
    """``fn()`` must build an MLP from (N, 1, 28, 28) images to (N, 10) logits, nonlinear."""
    __tracebackhide__ = True
    torch.manual_seed(seed)
    model = _basic_model_checks(fn, "build_mnist_mlp", MLP_RECIPE, hidden, mlp=True)
    require(not _is_affine(model, _device()),
            "without a nonlinearity (such as nn.ReLU) between the Linear layers the whole network "
            "is one linear map, which tops out near 92% on MNIST: put an activation after each "
            "hidden layer", None, hidden)
    if thorough:
        _structure_extras(lambda: call(fn, name="build_mnist_mlp", hidden=hidden),
                          "build_mnist_mlp", hidden)


def FashionCNN(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:  # noqa: N802
    """``cls()`` must be an nn.Module CNN (Conv2d, BatchNorm2d, Dropout) giving (N, 10) logits."""
    __tracebackhide__ = True
    require(inspect.isclass(cls) and issubclass(cls, nn.Module),
            "FashionCNN must be a class that subclasses nn.Module", f"got {cls!r}", hidden)
    torch.manual_seed(seed)
    model = _basic_model_checks(cls, "FashionCNN", CNN_RECIPE, hidden, mlp=False)
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(seed)).to(_device())
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        differs = not torch.allclose(model.train()(x), model.eval()(x))
    require(differs, "FashionCNN behaves the same in train() and eval() mode: its Dropout and "
            "BatchNorm layers must be used in forward", None, hidden)
    if thorough:
        _structure_extras(lambda: call(cls, name="FashionCNN", hidden=hidden), "FashionCNN", hidden)


def train_with_recipe(factory: Callable[[], nn.Module], recipe: dict, *, seed: int = 0,
                      device: torch.device | None = None, name: str = "model",
                      hidden: bool = False) -> float:
    """Train ``factory()`` with the course's recipe on the full training split; test accuracy."""
    __tracebackhide__ = True
    from course.loaders import mnist_loaders

    device = device or _device()
    train, test = mnist_loaders(recipe["dataset"], recipe["batch_size"], device, seed)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = call(factory, name=name, hidden=hidden).to(device)
        if recipe["optimizer"] == "Adam":
            opt = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
        else:
            opt = torch.optim.SGD(model.parameters(), lr=recipe["lr"], momentum=0.9,
                                  nesterov=True, weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["max_lr"],
                                                    epochs=recipe["epochs"],
                                                    steps_per_epoch=len(train))
        loss_fn = nn.CrossEntropyLoss()
        for _ in range(recipe["epochs"]):
            model.train()
            for x, y in train:
                opt.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                opt.step()
                sched.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test:
                correct += int((model(x).argmax(1) == y).sum())
    return correct / test.num_samples


def _accuracy_check(factory: Callable[[], nn.Module], name: str, recipe: dict, hidden: bool,
                    seed: int, advice: str) -> None:
    __tracebackhide__ = True
    acc = train_with_recipe(factory, recipe, seed=seed, name=name, hidden=hidden)
    sched = "OneCycleLR" if recipe["optimizer"] == "Adam" else "momentum 0.9 with OneCycleLR"
    require(acc >= recipe["target"],
            f"{name}'s model must reach {recipe['target']:.1%} test accuracy on "
            f"{recipe['dataset']} with the course's recipe ({recipe['optimizer']} {sched}, "
            f"max lr {recipe['max_lr']}, batch {recipe['batch_size']}, {recipe['epochs']} epochs); "
            f"it reached {acc:.2%}. {advice}", f"seed {seed}", hidden)


def build_mnist_mlp_accuracy(fn: Callable[[], nn.Module], *, thorough: bool = False,
                             hidden: bool = False, seed: int = 0) -> None:
    """Train ``fn()`` with the course's recipe; it must reach 97.5% MNIST test accuracy."""
    __tracebackhide__ = True
    build_mnist_mlp(fn, hidden=hidden, seed=seed)
    _accuracy_check(fn, "build_mnist_mlp", MLP_RECIPE, hidden, seed,
                    "Give it more capacity: e.g. one or two hidden layers of 256-512 units, "
                    "each followed by ReLU.")


def fashion_cnn_accuracy(cls: Any, *, thorough: bool = False, hidden: bool = False,
                         seed: int = 0) -> None:
    """Train ``cls()`` with the course's recipe; it must reach 90% FashionMNIST test accuracy."""
    __tracebackhide__ = True
    FashionCNN(cls, hidden=hidden, seed=seed)
    _accuracy_check(cls, "FashionCNN", CNN_RECIPE, hidden, seed,
                    "Use two or three Conv-BN-ReLU-Pool blocks with 16-64 channels before the "
                    "classifier.")


# --- 12: per-class accuracy ----------------------------------------------------------------------

_PCA_HINT = ("Count with plain tensor operations (argmax, ==, bincount or a loop over classes); "
             "torchmetrics is what the answer is checked against.")


def per_class_accuracy(fn: Callable[..., Any], *, thorough: bool = False, hidden: bool = False,
                       seed: int = 0) -> None:
    """``fn(preds, targets, num_classes)`` must equal MulticlassAccuracy(average=None)."""
    __tracebackhide__ = True
    import torchmetrics
    import torchmetrics.functional.classification as tmfc
    from torchmetrics.classification import MulticlassAccuracy

    forbid_delegation(fn, ["torchmetrics", "MulticlassAccuracy", "multiclass_accuracy", "Accuracy",
                           "MulticlassRecall", "multiclass_recall"], "per_class_accuracy", _PCA_HINT)
    device = _device()
    g = torch.Generator().manual_seed(seed)
    cases: list[tuple[torch.Tensor, torch.Tensor, int, str]] = []
    t = torch.randint(0, 4, (40,), generator=g)  # classes 4 and 5 never occur as targets
    p = torch.where(torch.rand(40, generator=g) < 0.6, t, torch.randint(0, 6, (40,), generator=g))
    cases.append((p, t, 6, "class indices"))
    cases.append((torch.randn(30, 5, generator=g), torch.randint(0, 5, (30,), generator=g), 5,
                  "scores (N, C)"))
    if thorough:
        t = torch.randint(0, 10, (200,), generator=g)
        cases.append((torch.where(torch.rand(200, generator=g) < 0.8, t, (t + 1) % 10), t, 10,
                      "class indices"))
        cases.append((torch.randn(17, 7, generator=g), torch.randint(0, 3, (17,), generator=g), 7,
                      "scores (N, C)"))
        cases.append((torch.tensor([2, 2, 2]), torch.tensor([1, 1, 2]), 4, "class indices"))
    for preds, targets, c, kind in cases:
        preds, targets = preds.to(device), targets.to(device)
        expected = MulticlassAccuracy(num_classes=c, average=None).to(device)(preds, targets)
        with tripwire([(torchmetrics.functional, "accuracy"), (tmfc, "multiclass_accuracy"),
                       (MulticlassAccuracy, "update")], "per_class_accuracy", _PCA_HINT):
            got = call(fn, preds, targets, c, name="per_class_accuracy", hidden=hidden)
        detail = f"{kind}, {len(targets)} samples, num_classes={c}"
        require(isinstance(got, torch.Tensor) and tuple(got.shape) == (c,),
                "per_class_accuracy must return a tensor with one value per class: shape "
                "(num_classes,)", f"{detail}: got {getattr(got, 'shape', type(got).__name__)}", hidden)
        require(got.is_floating_point(), "per_class_accuracy must return a float tensor",
                f"got {got.dtype}", hidden)
        got = got.float()
        if bool(torch.isnan(got).any()):
            raise CheckFailure("a class that never occurs in targets must get 0, not NaN: guard the "
                               "division by its count (0/0), as torchmetrics does", detail, hidden)
        labels = preds.argmax(1) if preds.dim() == 2 else preds
        counts_pred = torch.bincount(labels, minlength=c).float()
        hits = torch.bincount(labels[labels == targets], minlength=c).float()
        precision = torch.where(counts_pred > 0, hits / counts_pred.clamp(min=1), 0.0)
        overall = (labels == targets).float().mean()
        if torch.allclose(got, expected, atol=1e-6):
            same_tensor(got, expected.float(), "per_class_accuracy's result", hidden=hidden)
            continue
        if torch.allclose(got, precision, atol=1e-6):
            concept = ("that is precision: per-class accuracy is recall, the correct predictions "
                       "of class c divided by the number of samples whose TARGET is c (not the "
                       "number predicted as c)")
        elif torch.allclose(got, overall.expand(c), atol=1e-6):
            concept = ("that is the overall accuracy repeated: compute each class's own accuracy "
                       "over the samples whose target is that class")
        elif preds.dim() == 2:
            concept = "preds may be scores (N, C): turn them into classes with argmax over dim 1"
        else:
            concept = ("per-class accuracy of class c is (# samples with target c predicted as "
                       "c) / (# samples with target c), and 0 when c never occurs")
        raise CheckFailure(concept, f"{detail}: expected {expected.tolist()}, got {got.tolist()}",
                           hidden)


# --- 12: checkpoints -----------------------------------------------------------------------------

def _ckpt_setup(seed: int, device: torch.device, opt_kind: str):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))
    model = model.to(device)
    if opt_kind == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[1, 3], gamma=0.3)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    return model, opt, sched


def _ckpt_epoch(model: nn.Module, opt: torch.optim.Optimizer, sched: Any, x: torch.Tensor,
                y: torch.Tensor) -> None:
    model.train()
    order = torch.randperm(len(y), device="cpu").to(x.device)  # shuffling draws from torch's RNG
    for i in range(0, len(y), 8):
        idx = order[i:i + 8]
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    sched.step()


def _states_equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and torch.equal(a.cpu(), b.cpu())
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_states_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_states_equal(u, v) for u, v in zip(a, b, strict=True))
    return a == b


@contextlib.contextmanager
def _recording_torch_load() -> Iterator[list[Any]]:
    """Record the ``weights_only`` argument of every ``torch.load`` call made meanwhile."""
    flags: list[Any] = []
    real_load = torch.load

    def recording_load(*args: Any, **kwargs: Any) -> Any:
        flags.append(kwargs.get("weights_only", True))  # True is torch's default since 2.6
        return real_load(*args, **kwargs)

    torch.load = recording_load
    try:
        yield flags
    finally:
        torch.load = real_load


def checkpoint(save_fn: Callable[..., Any], load_fn: Callable[..., Any], *, thorough: bool = False,
               hidden: bool = False, seed: int = 0) -> None:
    """Save after some epochs, load into fresh objects, finish: the result must be bit-identical."""
    __tracebackhide__ = True
    hint = "Write it with torch.save / torch.load and the objects' state_dict methods."
    for fn in (save_fn, load_fn):
        forbid_delegation(fn, ["save_state", "load_state"], fn.__name__, hint)
    device = _device()
    device = device if device.type == "cuda" else torch.device("cpu")
    cases = [(seed, "sgd", 4, 2, False)] + ([(seed + 1, "adam", 5, 3, True)] if thorough else [])
    for case_seed, opt_kind, epochs, stop, as_path in cases:
        g = torch.Generator().manual_seed(case_seed)
        x, y = torch.randn(40, 4, generator=g).to(device), torch.randint(0, 2, (40,), generator=g).to(device)
        detail = f"{opt_kind} optimizer, {epochs} epochs, interrupted after epoch {stop}"
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(case_seed + 7)
            full = _ckpt_setup(case_seed, device, opt_kind)
            for _ in range(epochs):
                _ckpt_epoch(*full, x, y)
            torch.manual_seed(case_seed + 7)
            part = _ckpt_setup(case_seed, device, opt_kind)
            for _ in range(stop):
                _ckpt_epoch(*part, x, y)
            saved = {"model": copy.deepcopy(part[0].state_dict()),
                     "optimizer": copy.deepcopy(part[1].state_dict()),
                     "scheduler": copy.deepcopy(part[2].state_dict()),
                     "rng": torch.get_rng_state(),
                     "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "ckpt.pt"
                call(save_fn, path if as_path else str(path), *part, stop, name="save_checkpoint",
                     hidden=hidden)
                require(path.is_file(), "save_checkpoint must write the checkpoint to `path`",
                        detail, hidden)
                try:
                    torch.load(path, map_location="cpu", weights_only=True)
                except Exception as exc:  # noqa: BLE001
                    raise CheckFailure(
                        "the checkpoint must load with torch.load(path, weights_only=True): store "
                        "state_dicts, numbers and RNG state tensors, not model or optimizer objects",
                        f"{type(exc).__name__}: {str(exc)[:200]}", hidden) from None
                torch.manual_seed(12345)  # a new session: different RNG state and weights
                fresh = _ckpt_setup(case_seed + 99, device, opt_kind)
                with _recording_torch_load() as flags:
                    epoch = call(load_fn, path if as_path else str(path), *fresh,
                                 name="load_checkpoint", hidden=hidden)
                rng_after = torch.get_rng_state()
                cuda_ok = device.type != "cuda" or torch.equal(torch.cuda.get_rng_state(device),
                                                               saved["cuda_rng"])
            require(all(f is True for f in flags),
                    "load_checkpoint must read the file with torch.load(path, weights_only=True): "
                    "unpickling arbitrary objects from a file can run code", detail, hidden)
            if epoch != stop:
                concept = ("load_checkpoint must return the epoch stored in the checkpoint (the "
                           "one just finished), not the next one" if epoch == stop + 1 else
                           "load_checkpoint must return the epoch that save_checkpoint stored")
                raise CheckFailure(concept, f"{detail}: expected {stop}, got {epoch!r}", hidden)
            require(_states_equal(fresh[0].state_dict(), saved["model"]),
                    "after load_checkpoint the model must hold the saved weights "
                    "(model.load_state_dict)", detail, hidden)
            require(_states_equal(fresh[1].state_dict(), saved["optimizer"]),
                    "save and restore optimizer.state_dict(): it holds the momentum buffers (or "
                    "Adam's moment estimates) and the learning rate, so without it the resumed run "
                    "takes different steps", detail, hidden)
            require(_states_equal(fresh[2].state_dict(), saved["scheduler"]),
                    "save and restore scheduler.state_dict(): without it the learning-rate "
                    "schedule restarts from the beginning", detail, hidden)
            require(torch.equal(rng_after, saved["rng"]),
                    "save torch's RNG state (torch.get_rng_state()) and restore it with "
                    "torch.set_rng_state(): dropout masks and shuffling after resuming depend on it",
                    detail, hidden)
            require(cuda_ok, "on a GPU, also save and restore CUDA's RNG state "
                    "(torch.cuda.get_rng_state_all / set_rng_state_all): dropout there draws from it",
                    detail, hidden)
            for _ in range(stop, epochs):
                _ckpt_epoch(*fresh, x, y)
        same = all(torch.equal(a, b) for a, b in zip(fresh[0].state_dict().values(),
                                                     full[0].state_dict().values(), strict=True))
        require(same, "the resumed run must end with exactly the same weights as an uninterrupted "
                "run (torch.equal): restore every state the training depends on", detail, hidden)
