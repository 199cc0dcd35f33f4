"""Models a notebook asks for (11's MLP, 12's CNN): their structure, and what they learn.

Two checks per model, each a scenario + verdict:

* **structure**: the runner builds the model and records facts about it (layer kinds, its outputs
  on fixed images, which parameters got gradients); the verdict reads the facts.
* **accuracy**: the runner trains a fresh model with the course's recipe and hands over a
  ``torch.export`` program (see ``program``); the judge counts the program's parameters and
  multiply-adds per image, runs it on the test set *it* loads, and compares the accuracy with the
  recipe's target. No student code runs in the verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._core import CheckFailure, Opaque, Raised, attempt, check_device, expect, require
from .program import EXPORT_BATCH, Program, ProgramError, record_program

__all__ = ["Recipe", "judge_structure", "judge_trained", "structure_facts", "train_and_export"]


@dataclass(frozen=True)
class Recipe:
    """How the accuracy check trains a model, and what the trained model must reach.

    The budgets bound training time: parameters, and multiply-adds per image counted from the
    exported program (a wall-clock guard would fail correct answers on a busy machine).
    """

    dataset: str
    train_images: int
    epochs: int
    batch_size: int
    optimizer: str
    max_lr: float
    target: float
    max_params: int
    max_macs: int

    def describe(self) -> str:
        opt = "Adam" if self.optimizer == "Adam" else "SGD (Nesterov momentum 0.9)"
        images = "all" if self.train_images >= 60_000 else f"the first {self.train_images:,}"
        return (f"{opt} with OneCycleLR up to lr {self.max_lr}, batches of {self.batch_size}, "
                f"{self.epochs} epoch{'s' * (self.epochs > 1)} over {images} training images")


_FORWARD = "a forward pass: the model must accept (N, 1, 28, 28) images and return (N, 10) logits"


def _rng(device: torch.device) -> Any:
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


# --- structure -----------------------------------------------------------------------------------

def _inputs(seed: int, n: int) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def _forward(model: nn.Module, x: torch.Tensor, train: bool = False) -> Any:
    model.train(train)
    with torch.no_grad():
        out = model(x)
    return out.detach().cpu() if isinstance(out, torch.Tensor) else out


def _is_conv(kind: type) -> bool:
    return issubclass(kind, nn.modules.conv._ConvNd) or "conv" in kind.__name__.lower()


def structure_facts(factory: Callable[[], Any], name: str, *, seed: int, thorough: bool) -> dict:
    """Runner side: build ``factory()`` and record what the structure verdict reads."""
    device = check_device()
    with _rng(device):
        torch.manual_seed(seed)
        model = attempt(factory, call=f"{name}()")
        facts: dict[str, Any] = {"built": model if isinstance(model, Raised) else None,
                                 "module": isinstance(model, nn.Module)}
        if not facts["module"] or facts["built"] is not None:
            facts["type"] = type(model).__name__
            return facts
        kinds = [type(m) for m in model.modules()]
        facts["conv_layers"] = sorted({k.__name__ for k in kinds if _is_conv(k)})
        facts["has"] = {"Conv2d": any(issubclass(k, nn.Conv2d) for k in kinds),
                        "BatchNorm2d": any(issubclass(k, nn.BatchNorm2d) for k in kinds),
                        "Dropout": any(issubclass(k, (nn.Dropout, nn.Dropout2d)) for k in kinds)}
        call = f"{name}()(x) for images x of shape (5, 1, 28, 28)"
        facts["out"] = attempt(lambda: _forward(model.to(device), _inputs(seed, 5).to(device)),
                               call=call)
        if isinstance(facts["out"], Raised):
            return facts
        a, b = _inputs(1, 4).to(device), _inputs(2, 4).to(device)
        facts["affine"] = [attempt(_forward, model, v, call=call) for v in (a, b, (a + b) / 2)]
        x = _inputs(seed, 8).to(device)
        facts["train_eval"] = [attempt(_forward, model, x, True, call=call),
                               attempt(_forward, model, x, call=call)]
        if thorough:
            facts["unused"] = attempt(_unused_parameters, model, device, call=call)
            other = attempt(factory, call=f"{name}()")
            facts["fresh"] = isinstance(other, nn.Module) and other is not model and all(
                p is not q for p, q in zip(other.parameters(), model.parameters(), strict=False))
    return facts


def _unused_parameters(model: nn.Module, device: torch.device) -> list[str]:
    model.zero_grad(set_to_none=True)
    model.train()
    model(_inputs(3, 3).to(device)).sum().backward()
    return [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]


def _tensor_out(value: Any, name: str, batch: int, hidden: bool) -> torch.Tensor:
    value = expect(value, name, _FORWARD, hidden=hidden)
    got = value.type if isinstance(value, Opaque) else type(value).__name__
    require(isinstance(value, torch.Tensor) and tuple(value.shape) == (batch, 10),
            f"{name}'s model must map (N, 1, 28, 28) images to (N, 10) logits, one score per class",
            f"input ({batch}, 1, 28, 28) gave "
            f"{tuple(value.shape) if isinstance(value, torch.Tensor) else got}", hidden)
    require(value.dtype == torch.float32, f"{name}'s model must return float32 logits",
            f"got {value.dtype}", hidden)
    return value


def judge_structure(facts: Any, name: str, *, mlp: bool, hidden: bool) -> None:
    """Judge side of :func:`structure_facts` (MLP: no convolutions, not affine; CNN: conv, BN,
    Dropout, train/eval behaviour)."""
    require(isinstance(facts, dict), f"the grader got no usable result for {name}", None, hidden)
    expect(facts.get("built"), name, "building a fresh model", hidden=hidden)
    require(facts.get("module") is True, f"{name} must give an nn.Module",
            f"got {facts.get('type')}", hidden)
    out = _tensor_out(facts.get("out"), name, 5, hidden)
    probs = bool((out >= 0).all()) and torch.allclose(out.sum(1), torch.ones(5), atol=1e-4)
    require(not probs, f"{name}'s model must return logits, not probabilities: leave out the final "
            "softmax (CrossEntropyLoss applies log-softmax itself)", None, hidden)
    has = facts.get("has") if isinstance(facts.get("has"), dict) else {}
    if mlp:
        conv = facts.get("conv_layers")
        require(not conv, "an MLP uses fully connected layers only: build it from nn.Flatten, "
                "nn.Linear and activations, without Conv layers", f"found {conv}", hidden)
        fa, fb, fm = (_tensor_out(v, name, 4, hidden) for v in facts.get("affine", [None] * 3))
        affine = torch.allclose(fm, (fa + fb) / 2, rtol=1e-4,
                                atol=1e-4 * float(fa.abs().max()) + 1e-5)
        require(not affine, "without a nonlinearity (such as nn.ReLU) between the Linear layers "
                "the whole network is one linear map, which tops out near 92% on MNIST: put an "
                "activation after each hidden layer", None, hidden)
    else:
        require(has.get("Conv2d") is True, "FashionCNN must use convolutions (nn.Conv2d) to "
                "extract local features", None, hidden)
        require(has.get("BatchNorm2d") is True, "each convolution block needs BatchNorm2d "
                "(Conv-BN-ReLU-Pool): it keeps training fast and stable", None, hidden)
        require(has.get("Dropout") is True, "FashionCNN needs Dropout (before the classifier) "
                "against overfitting", None, hidden)
        train, evaluated = (_tensor_out(v, name, 8, hidden)
                            for v in facts.get("train_eval", [None] * 2))
        require(not torch.allclose(train, evaluated), "FashionCNN behaves the same in train() and "
                "eval() mode: its Dropout and BatchNorm layers must be used in forward", None,
                hidden)
    if "unused" in facts:
        unused = expect(facts["unused"], name, "a backward pass through the model", hidden=hidden)
        require(unused == [], f"every parameter of {name}'s model must be used in forward (unused "
                "layers are never trained)", f"no gradient reached: {unused[:3]}", hidden)
        require(facts.get("fresh") is True, f"{name} must build a fresh model with its own "
                "parameters every time", None, hidden)


# --- accuracy ------------------------------------------------------------------------------------

def _hook_cost(model: nn.Module, device: torch.device) -> int:
    """Runner-side estimate of multiply-adds per image, only to skip hopeless training runs."""
    total = 0

    def hook(mod: nn.Module, inp: Any, out: Any) -> None:
        nonlocal total
        if isinstance(mod, nn.modules.conv._ConvNd) and isinstance(out, torch.Tensor):
            total += out.numel() * mod.in_channels // mod.groups * math.prod(mod.kernel_size)
        elif isinstance(mod, nn.Linear) and isinstance(out, torch.Tensor):
            total += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        _forward(model, torch.zeros(1, 1, 28, 28, device=device))
    finally:
        for h in handles:
            h.remove()
    return total


def _channels_last(model: nn.Module, device: torch.device) -> bool:
    """On a CPU, convolutions train ~25% faster in channels-last layout; use it if the model
    accepts it (``x.view(n, -1)`` on such a tensor does not)."""
    if device.type != "cpu" or not any(p.dim() == 4 for p in model.parameters()):
        return False
    model.to(memory_format=torch.channels_last)
    try:
        _forward(model, torch.zeros(2, 1, 28, 28).contiguous(memory_format=torch.channels_last))
        return True
    except Exception:  # noqa: BLE001 - a layout the model cannot take: train in the usual one
        model.to(memory_format=torch.contiguous_format)
        return False


def _train(model: nn.Module, recipe: Recipe, seed: int, device: torch.device) -> None:
    from course.data import load_split
    from course.loaders import NORMALIZATION, InMemoryImageLoader

    x, y = load_split(recipe.dataset, train=True)
    mean, std = NORMALIZATION[recipe.dataset]
    n = recipe.train_images
    loader = InMemoryImageLoader(x[:n], y[:n], recipe.batch_size, shuffle=True, device=device,
                                 mean=mean, std=std, generator=torch.Generator().manual_seed(seed))
    if recipe.optimizer == "Adam":  # OneCycleLR sets every step's lr, the first one included
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=recipe.max_lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=recipe.max_lr, momentum=0.9, nesterov=True,
                              weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.max_lr, epochs=recipe.epochs,
                                                steps_per_epoch=len(loader))
    layout = torch.channels_last if _channels_last(model, device) else torch.contiguous_format
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(recipe.epochs):
        model.train()
        for images, labels in loader:
            opt.zero_grad()
            loss_fn(model(images.contiguous(memory_format=layout)), labels).backward()
            opt.step()
            sched.step()
    model.to(memory_format=torch.contiguous_format)


def train_and_export(factory: Callable[[], Any], name: str, recipe: Recipe, *, seed: int) -> dict:
    """Runner side: build, train with ``recipe``, export. Training is skipped (and the untrained
    program handed over) when the model is clearly over budget."""
    device = check_device()
    with _rng(device):
        torch.manual_seed(seed)
        model = attempt(factory, call=f"{name}()")
        if not isinstance(model, nn.Module):
            return {"built": model if isinstance(model, Raised) else None,
                    "type": type(model).__name__}
        model = model.to(device)
        params = sum(p.numel() for p in model.parameters())
        macs = attempt(_hook_cost, model, device,
                       call=f"{name}()(x) for images x of shape (1, 1, 28, 28)")
        if isinstance(macs, Raised):
            return {"built": None, "forward": macs}
        over = params > recipe.max_params or macs > recipe.max_macs
        trained = "over budget" if over else attempt(
            _train, model, recipe, seed, device,
            call=f"training {name}() with the course's recipe")
    return {"built": None, "trained": trained if trained is not None else True,
            "program": record_program(model, name)}


def _test_accuracy(program: Program, dataset: str) -> float:
    from course.data import load_split
    from course.loaders import NORMALIZATION, InMemoryImageLoader

    x, y = load_split(dataset, train=False)
    mean, std = NORMALIZATION[dataset]
    correct = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # a program that drops units even in eval mode: the same each time
        for images, labels in InMemoryImageLoader(x, y, EXPORT_BATCH, mean=mean, std=std):
            n = labels.shape[0]
            if n < EXPORT_BATCH:  # the program's batch size is fixed
                images = torch.cat([images, images.new_zeros(EXPORT_BATCH - n, *images.shape[1:])])
            correct += int((program(images)[:n].argmax(1) == labels).sum())
    return correct / y.shape[0]


def judge_trained(data: Any, name: str, recipe: Recipe, advice: str, *, hidden: bool,
                  seed: int) -> None:
    """Judge side of :func:`train_and_export`: budgets from the program, then its accuracy on the
    test set the judge loads itself."""
    require(isinstance(data, dict), f"the grader got no usable result for {name}", None, hidden)
    expect(data.get("built"), name, "building a fresh model", hidden=hidden)
    expect(data.get("forward"), name, _FORWARD, hidden=hidden)
    require("program" in data, f"{name} must give an nn.Module", f"got {data.get('type')}", hidden)
    program = data["program"]
    if isinstance(program, Raised):
        raise CheckFailure(f"{name}'s model could not be exported with torch.export, so the "
                           "grader cannot run it: keep forward a plain computation on the input "
                           "tensor (no Python branches on its values, no prints of tensors)",
                           program.describe(), hidden)
    try:
        loaded = Program(program)
        macs, shape, dtype = loaded.cost()
    except ProgramError as exc:
        raise CheckFailure(f"{name}'s exported model cannot be evaluated by the grader: {exc}",
                           None, hidden) from None
    require(shape == (EXPORT_BATCH, 10) and dtype == torch.float32,
            f"{name}'s model must map (N, 1, 28, 28) images to (N, 10) float32 logits",
            f"a batch of {EXPORT_BATCH} gave {shape} {dtype}", hidden)
    require(loaded.params <= recipe.max_params,
            f"{name}'s model is too large to train inside the grading time: keep it under "
            f"{recipe.max_params:,} parameters", f"it has {loaded.params:,}", hidden)
    require(macs <= recipe.max_macs,
            f"{name}'s model needs too much computation to train inside the grading time: keep "
            f"it under {recipe.max_macs / 1e6:.1f} million multiply-adds per image (use fewer "
            "channels or units, or pool earlier)", f"it needs {macs / 1e6:.2f} million", hidden)
    trained = data.get("trained")
    expect(trained, name, "training with the course's recipe", hidden=hidden)
    require(trained is True, f"{name}'s model was not trained: the runner reported {trained!r}",
            None, hidden)
    try:
        accuracy = _test_accuracy(loaded, recipe.dataset)
    except ProgramError as exc:
        raise CheckFailure(f"{name}'s exported model cannot be evaluated by the grader: {exc}",
                           None, hidden) from None
    require(accuracy >= recipe.target,
            f"{name}'s model must reach {recipe.target:.1%} test accuracy on {recipe.dataset} "
            f"with the course's recipe ({recipe.describe()}); it reached {accuracy:.2%}. {advice}",
            f"seed {seed}", hidden)
