"""Checks for 01_neural_networks: one neuron by hand, and an MLP that learns XOR."""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ._core import CheckFailure, call, forbid_delegation, require, same_tensor, tripwire

__all__ = ["neuron", "train_xor_mlp"]

_NEURON_HINT = ("Use the matrix product `x @ w` (or torch.matmul), add `b`, then call `activation`; "
                "nn.Linear and F.linear are not allowed here.")


def _identity(z: torch.Tensor) -> torch.Tensor:
    return z


def _relu6(z: torch.Tensor) -> torch.Tensor:  # a custom activation: the student must call the one given
    return torch.clamp(z, 0.0, 6.0)


def _device(device: torch.device | str | None) -> torch.device:
    return torch.device(device) if device is not None else torch.device("cpu")


def neuron(fn: Callable[..., Any], *, thorough: bool = False, hidden: bool = False, seed: int = 0,
           device: torch.device | str | None = None) -> None:
    """``fn(x, w, b, activation)`` must equal ``activation(x @ w + b)`` for (in,) and (N, in) x."""
    __tracebackhide__ = True
    forbid_delegation(fn, ["linear", "Linear", "addmv", "addmm"], "neuron", _NEURON_HINT,
                      references=(F.linear,))
    dev = _device(device)
    gen = torch.Generator().manual_seed(seed)
    acts: list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = [
        ("identity", _identity), ("torch.sigmoid", torch.sigmoid), ("torch.relu", torch.relu)]
    shapes = [(3, None), (4, 5), (2, 1)]  # (in_features, N or None for one unbatched sample)
    dtypes = [torch.float32]
    if thorough:
        acts += [("torch.tanh", torch.tanh), ("a custom clamp(z, 0, 6)", _relu6)]
        shapes += [(1, None), (7, 16), (1, 3)]
        if dev.type != "mps":
            dtypes.append(torch.float64)
    for dtype in dtypes:
        for act_name, act in acts:
            for n_in, batch in shapes:
                x_shape = (n_in,) if batch is None else (batch, n_in)
                x = (torch.randn(x_shape, generator=gen, dtype=dtype) * 2).to(dev)
                w = torch.randn(n_in, generator=gen, dtype=dtype).to(dev)
                b = float(torch.randn((), generator=gen)) + 0.5
                b_arg: Any = b  # a Python float; in thorough mode sometimes a 0-d tensor
                if thorough and act_name == "torch.relu":
                    b_arg = torch.tensor(b, dtype=dtype, device=dev)
                z0 = x @ w
                expected = act(z0 + b)
                with tripwire([(F, "linear")], "neuron", _NEURON_HINT), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # e.g. torch.tensor(b) on a 0-d tensor b
                    got = call(fn, x, w, b_arg, act, name="neuron", hidden=hidden)
                where = (f"activation={act_name}, x.shape={tuple(x.shape)}, w.shape={tuple(w.shape)}, "
                         f"b={b:.4g}, dtype={dtype}")
                require(isinstance(got, torch.Tensor), "neuron must return a tensor",
                        f"{where}: it returned {type(got).__name__}", hidden)
                want_shape = "a 0-d tensor (one number)" if batch is None else f"shape ({batch},)"
                require(tuple(got.shape) == tuple(expected.shape),
                        "neuron returns ONE number per sample: `x @ w` sums over the input "
                        f"features, so a {'single' if batch is None else 'batched'} x gives "
                        f"{want_shape}",
                        f"{where}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}",
                        hidden)
                if (got.dtype == expected.dtype and got.device == expected.device
                        and torch.allclose(got, expected, rtol=1e-5, atol=1e-6)):
                    continue
                candidates = [
                    (act(z0), "the bias is missing: a neuron adds b to the weighted sum x @ w "
                              "before the activation"),
                    (z0 + b, "the activation was not applied: return activation(x @ w + b), "
                             "calling the `activation` you were given"),
                    (act(z0) + b, "the bias must be added BEFORE the activation: "
                                  "activation(x @ w + b), not activation(x @ w) + b"),
                    (z0, "both the bias and the activation are missing: return "
                         "activation(x @ w + b)"),
                ]
                for wrong, concept in candidates:
                    if (got.dtype == wrong.dtype and torch.allclose(got.to(wrong.device), wrong,
                                                                    rtol=1e-5, atol=1e-6)):
                        raise CheckFailure(concept, where, hidden)
                same_tensor(got, expected, "neuron's output", hidden=hidden,
                            concept="a neuron computes activation(weighted sum of the inputs + bias)")
                raise CheckFailure("neuron's output is not activation(x @ w + b)", where, hidden)


_XOR_X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
_XOR_Y = [0.0, 1.0, 1.0, 0.0]
_TIME_LIMIT = 120.0  # seconds for one call: a few hundred steps on four points take ~1 s


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@torch.no_grad()
def _is_affine(model: nn.Module, dev: torch.device) -> bool:
    """True when the model is an affine map of its 2 inputs (then it cannot separate XOR)."""
    gen = torch.Generator().manual_seed(123)
    a, b = torch.rand(6, 2, generator=gen), torch.rand(6, 2, generator=gen)
    t = torch.rand(6, 1, generator=gen)
    mix = t * a + (1 - t) * b
    fa, fb, fm = (model(v.to(dev)).float().cpu().reshape(6, -1) for v in (a, b, mix))
    scale = 1.0 + max(fa.abs().max().item(), fb.abs().max().item())
    return bool(((t * fa + (1 - t) * fb - fm).abs().max() <= 1e-4 * scale).item())


def _train(fn: Callable[..., Any], seed: int | None, hidden: bool, salt: int = 0) -> nn.Module:
    __tracebackhide__ = True
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one CPU thread is several times faster than many
    start = time.perf_counter()
    try:
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            # the student's seeding does not leak out; harmless warnings do not reach stderr
            warnings.simplefilter("ignore")
            torch.manual_seed(9973 + salt)  # another global RNG state each call: only `seed` decides
            model = (call(fn, name="train_xor_mlp", hidden=hidden) if seed is None
                     else call(fn, seed=seed, name="train_xor_mlp", hidden=hidden))
    finally:
        took = time.perf_counter() - start
        torch.set_num_threads(threads)
    require(isinstance(model, nn.Module),
            "train_xor_mlp must return the trained nn.Module (the model itself, not its outputs "
            "or its state_dict)", f"it returned {type(model).__name__}", hidden)
    require(took <= _TIME_LIMIT,
            f"train_xor_mlp took {took:.0f} s; four points need only a small MLP and a few hundred "
            "optimizer steps (use a larger learning rate or fewer steps)", None, hidden)
    model.eval()
    return model


@torch.no_grad()
def _judge(model: nn.Module, hidden: bool, where: str) -> torch.Tensor:
    __tracebackhide__ = True
    dev = _model_device(model)
    x = torch.tensor(_XOR_X, device=dev)
    y = torch.tensor(_XOR_Y)
    out = call(model, x, name="the returned model", hidden=hidden)
    require(isinstance(out, torch.Tensor), "the model must return a tensor of logits",
            f"{where}: it returned {type(out).__name__}", hidden)
    shape = tuple(out.shape)
    require(shape != (4,),
            "the model must return logits of shape (N, 1), one column as nn.Linear(hidden, 1) "
            "gives, not (N,): do not squeeze the last dimension",
            f"{where}: input shape (4, 2) gave output shape {shape}", hidden)
    require(shape == (4, 1),
            "binary classification needs ONE output logit per sample: the model must map (N, 2) "
            "inputs to (N, 1) logits",
            f"{where}: input shape (4, 2) gave output shape {shape}", hidden)
    logits = out.float().cpu().reshape(4)
    pred = (logits > 0).float()
    if torch.equal(pred, y):
        return out
    if bool(((logits >= 0) & (logits <= 1)).all()) and torch.equal((logits > 0.5).float(), y):
        raise CheckFailure(
            "the model returns probabilities (after a sigmoid), not logits: drop the final "
            "sigmoid so that class 1 means logit > 0 (train with nn.BCEWithLogitsLoss, which "
            "applies the sigmoid inside the loss)", f"{where}: outputs {logits.tolist()}", hidden)
    if _is_affine(model, dev):
        raise CheckFailure(
            "the model is linear in its inputs (a single-layer perceptron, or layers with no "
            "activation between them), and XOR is not linearly separable: add a hidden layer "
            "followed by a non-linear activation such as ReLU or Tanh",
            f"{where}: {int((pred == y).sum())} of 4 XOR points correct", hidden)
    raise CheckFailure(
        "the trained model does not classify all four XOR points correctly (class 1 when the "
        "logit is > 0): train longer or with a larger learning rate, and check the loss goes down",
        f"{where}: {int((pred == y).sum())} of 4 correct, logits {[round(v, 3) for v in logits.tolist()]}",
        hidden)


def _same_again(fn: Callable[..., Any], seed: int | None, out: torch.Tensor, hidden: bool) -> None:
    """Train once more with the same seed (from another global RNG state): same logits expected."""
    __tracebackhide__ = True
    again = _train(fn, seed, hidden, salt=1)
    with torch.no_grad():
        out2 = call(again, torch.tensor(_XOR_X, device=_model_device(again)),
                    name="the returned model", hidden=hidden)
    require(isinstance(out2, torch.Tensor) and out2.shape == out.shape
            and torch.allclose(out2.float().cpu(), out.float().cpu(), rtol=1e-5, atol=1e-6),
            "training is not deterministic: the same seed must give the same model. Call "
            "torch.manual_seed(seed) at the start of train_xor_mlp, before creating the layers",
            f"two calls of train_xor_mlp({'' if seed is None else f'seed={seed}'}) gave different "
            "logits", hidden)


def train_xor_mlp(fn: Callable[..., Any], *, thorough: bool = False, hidden: bool = False,
                  seed: int = 0) -> None:
    """``fn(seed)`` must return a module giving (N, 1) logits, right on all four XOR points,
    the same for the same seed."""
    __tracebackhide__ = True
    params = inspect.signature(fn).parameters if callable(fn) else {}
    require("seed" in params and params["seed"].default == 0,
            "train_xor_mlp must take the argument `seed` with default 0: train_xor_mlp(seed=0)",
            f"its parameters are {list(params)}", hidden)
    if not thorough:
        out = _judge(_train(fn, None, hidden), hidden, "train_xor_mlp()")
        _same_again(fn, None, out, hidden)
        return
    model = _train(fn, seed, hidden)
    out = _judge(model, hidden, f"train_xor_mlp(seed={seed})")
    dev = _model_device(model)
    with torch.no_grad():  # any batch size, and each row independent of the others
        x = torch.tensor(_XOR_X * 3, device=dev)[torch.tensor([5, 0, 11, 2, 7, 9, 1])]
        got = call(model, x, name="the returned model", hidden=hidden)
        require(isinstance(got, torch.Tensor) and tuple(got.shape) == (7, 1),
                "the model must work for any batch size N: (N, 2) inputs give (N, 1) logits",
                f"a batch of 7 gave {tuple(getattr(got, 'shape', ()))}", hidden)
        same_tensor(got, out[torch.tensor([1, 0, 3, 2, 3, 1, 1], device=out.device)],
                    "the logits of a batch", hidden=hidden, rtol=1e-4, atol=1e-5,
                    concept="each row's logit must depend only on that row (the same point gives "
                            "the same logit whatever the batch)")
    _same_again(fn, seed, out, hidden)
    _judge(_train(fn, seed + 1, hidden, salt=2), hidden, f"train_xor_mlp(seed={seed + 1})")
