"""Checks for 01_neural_networks: one neuron by hand, and an MLP that learns XOR."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ._core import (
    Check,
    CheckFailure,
    Delegation,
    attempt,
    check_device,
    expect,
    require,
    type_name,
)
from ._guards import tripwire
from ._transcript import meta

__all__ = ["neuron", "train_xor_mlp"]



# --- neuron ---------------------------------------------------------------------------------------

def _identity(z: torch.Tensor) -> torch.Tensor:
    return z


def _relu6(z: torch.Tensor) -> torch.Tensor:  # custom: the student must call the one given
    return torch.clamp(z, 0.0, 6.0)


_ACTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": _identity, "torch.sigmoid": torch.sigmoid, "torch.relu": torch.relu,
    "torch.tanh": torch.tanh, "a custom clamp(z, 0, 6)": _relu6}
_FIXED = ["torch.sigmoid", "torch.relu", "torch.tanh"]  # what a hard-coded activation would be


@dataclass(frozen=True)
class _Neuron:
    act: str
    x: torch.Tensor  # built on the CPU; the scenario moves it to its device
    w: torch.Tensor
    b: float
    b_tensor: bool  # b passed as a 0-d tensor of x's dtype instead of a Python float

    @property
    def probe(self) -> str:
        kind = "one sample x of shape (in,)" if self.x.dim() == 1 else "a batch x of shape (N, in)"
        b = "b as a 0-d tensor" if self.b_tensor else "b as a Python float"
        dtype = str(self.x.dtype).removeprefix("torch.")
        return f"{kind}, {b}, activation={self.act}, dtype={dtype}"

    def call(self) -> str:
        b = f"torch.tensor({self.b:.4g})" if self.b_tensor else f"{self.b:.4g}"
        return (f"neuron(<x of shape {tuple(self.x.shape)}>, <w of shape {tuple(self.w.shape)}>, "
                f"{b}, {self.act})")


def _neuron_cases(thorough: bool, seed: int, float64: bool) -> list[_Neuron]:
    gen = torch.Generator().manual_seed(seed)
    acts = ["identity", "torch.sigmoid", "torch.relu"]
    shapes = [(3, None), (4, 5), (2, 1)]  # (in_features, N or None for one unbatched sample)
    dtypes = [torch.float32]
    if thorough:
        acts += ["torch.tanh", "a custom clamp(z, 0, 6)"]
        shapes += [(1, None), (7, 16), (1, 3)]
        if float64:
            dtypes.append(torch.float64)
    cases = []
    for dtype in dtypes:
        for act in acts:
            for n_in, batch in shapes:
                x_shape = (n_in,) if batch is None else (batch, n_in)
                x = torch.randn(x_shape, generator=gen, dtype=dtype) * 2
                w = torch.randn(n_in, generator=gen, dtype=dtype)
                b = float(torch.randn((), generator=gen)) + 0.5
                b_tensor = thorough and act in ("torch.relu", "torch.tanh")
                cases.append(_Neuron(act, x, w, b, b_tensor))
    return cases


def _neuron_scenario(fn: Any, *, thorough: bool = False, seed: int = 0) -> dict:
    """Per case: what ``fn(x, w, b, activation)`` returned and whether x and w were left alone."""
    dev = check_device()
    device = str(torch.empty(0, device=dev).device)
    results = []
    for case in _neuron_cases(thorough, seed, float64=dev.type != "mps"):
        x, w = case.x.to(dev, copy=True), case.w.to(dev, copy=True)
        b: Any = torch.tensor(case.b, dtype=x.dtype, device=dev) if case.b_tensor else case.b
        with tripwire([(F, "linear")]):
            got = attempt(fn, x, w, b, _ACTS[case.act], call=case.call())
        unchanged = torch.equal(x.cpu(), case.x) and torch.equal(w.cpu(), case.w)
        results.append({"result": got, "unchanged": unchanged})
    return {"device": device, "results": results}


def _close(got: torch.Tensor, want: torch.Tensor) -> bool:
    return (tuple(got.shape) == tuple(want.shape)
            and torch.allclose(got.detach().cpu().to(want.dtype), want, rtol=1e-5, atol=1e-6))


def _neuron_verdict(data: dict, *, thorough: bool = False, hidden: bool = False,
                    seed: int = 0) -> None:
    """``fn(x, w, b, activation)`` must equal ``activation(x @ w + b)`` for (in,) and (N, in) x,
    with x's dtype and device, calling the activation it was given."""
    require(isinstance(data, dict), "the check's record of neuron is damaged", hidden=hidden)
    device = data.get("device")
    require(isinstance(device, str), "the check's record of neuron is damaged", hidden=hidden)
    cases = _neuron_cases(thorough, seed, float64=not device.startswith("mps"))
    results = data.get("results")
    require(isinstance(results, list) and len(results) == len(cases),
            "the check's record of neuron is incomplete", hidden=hidden)
    for case, record in zip(cases, results, strict=True):
        act = _ACTS[case.act]
        z0 = case.x @ case.w
        expected = act(z0 + case.b)
        where = (f"{case.call()} with dtype {case.x.dtype}: expected e.g. "
                 f"{[round(v, 4) for v in expected.flatten()[:3].tolist()]}")
        require(isinstance(record, dict), "the check's record of neuron is incomplete",
                hidden=hidden)
        got = expect(record.get("result"), "neuron", case.probe, hidden=hidden)
        require(record.get("unchanged") is True,
                "neuron must not modify its inputs x and w (no in-place operations on them)",
                case.call(), hidden)
        require(isinstance(got, torch.Tensor), "neuron must return a tensor",
                f"{case.call()} returned {type_name(got)}", hidden)
        shape = f"expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        require(not (expected.dim() == 0 and tuple(got.shape) == (1,)),
                "one sample must give a 0-d tensor (shape ()), not shape (1,): keep b a plain "
                "number or a 0-d tensor and do not wrap it (or the result) in a list",
                f"{case.call()}: {shape}", hidden)
        require(tuple(got.shape) == tuple(expected.shape),
                "neuron returns ONE number per sample: `x @ w` sums over the input features of "
                "each row, so one sample x gives a 0-d tensor and a batch (N, in) gives shape (N,)",
                f"{case.call()}: {shape}", hidden)
        require(got.dtype == expected.dtype,
                "neuron's result must keep x's dtype: compute with x, w and b as given, without "
                "converting (e.g. no .float(), no new float32 tensors)",
                f"{case.call()}: expected {expected.dtype}, got {got.dtype}", hidden)
        require(meta(got)["device"] == device,
                "neuron's result must be on the same device as x: compute from x and w, do not "
                "create new tensors on the CPU",
                f"{case.call()}: expected {device}, got {meta(got)['device']}", hidden)
        if _close(got, expected):
            continue
        candidates = [
            (act(z0), "the bias is missing: a neuron adds b to the weighted sum x @ w before the "
                      "activation"),
            (z0 + case.b, "the activation was not applied: return activation(x @ w + b), calling "
                          "the `activation` you were given"),
            (act(z0) + case.b, "the bias must be added BEFORE the activation: "
                               "activation(x @ w + b), not activation(x @ w) + b"),
            (z0, "both the bias and the activation are missing: return activation(x @ w + b)"),
        ] + [(_ACTS[name](z0 + case.b), f"call the `activation` argument you were given: this "
              f"result is {name}(x @ w + b), but neuron must work for ANY activation function "
              f"(here {case.act})") for name in _FIXED if name != case.act]
        for wrong, concept in candidates:
            if not torch.allclose(wrong, expected, rtol=1e-5, atol=1e-6) and _close(got, wrong):
                raise CheckFailure(concept, where, hidden)
        raise CheckFailure("neuron's output is not activation(x @ w + b): a neuron computes the "
                           "activation of (the weighted sum of the inputs + the bias)", where,
                           hidden)


neuron = Check("neural_networks.neuron", "neuron", _neuron_scenario, _neuron_verdict, Delegation(
    "Use the matrix product `x @ w` (or torch.matmul), add `b`, then call `activation`; nn.Linear "
    "and F.linear are not allowed here.", names=frozenset({"linear", "Linear", "addmv", "addmm"})))


# --- train_xor_mlp --------------------------------------------------------------------------------

_XOR_X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
_XOR_Y = [0.0, 1.0, 1.0, 0.0]
_BATCH_ROWS = [1, 0, 3, 2, 3, 1, 1]  # a batch of 7 drawn from the four points
_TIME_LIMIT = 30.0  # seconds for one call: a few hundred steps on four points take well under 1 s
_OTHER_SEEDS = 3  # thorough: seeds seed+1 ... seed+3 must train too ("any seed")


def _call(seed: int | None) -> str:
    return "train_xor_mlp()" if seed is None else f"train_xor_mlp(seed={seed})"


_INCOMPLETE = "the check's record of train_xor_mlp is incomplete"


def _xor_plan(thorough: bool, seed: int) -> list[int | None]:
    """The seed argument of each training call; None calls train_xor_mlp() with its default.

    The first two calls use the same seed (from different global RNG states): same model expected.
    The third uses another seed: a different model expected.
    """
    if not thorough:
        return [None, None, 1]
    return [seed, seed] + [seed + k for k in range(1, _OTHER_SEEDS + 1)]


def _signature(fn: Any) -> dict | None:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return None
    seed = params.get("seed")
    default = seed.default if seed is not None else None
    return {"params": [str(p) for p in params],
            "seed_default": default if type(default) is int else type_name(default)}


@contextmanager
def _kept_rng_one_thread() -> Iterator[None]:
    """The student's seeding must not leak out of the check; tiny tensors run fastest on one
    thread."""
    cuda = torch.cuda.is_initialized()
    mps = torch.backends.mps.is_available()
    mps_state = torch.mps.get_rng_state() if mps else None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if cuda else []):
            yield
    finally:
        torch.set_num_threads(threads)
        if mps_state is not None:
            torch.mps.set_rng_state(mps_state)


def _probes() -> list[torch.Tensor]:
    """Three batches a, b and t·a + (1 - t)·b: an affine model maps the mix to the same mix."""
    gen = torch.Generator().manual_seed(123)
    a, b = torch.rand(6, 2, generator=gen), torch.rand(6, 2, generator=gen)
    t = torch.rand(6, 1, generator=gen)
    return [a, b, t * a + (1 - t) * b, t]


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _train_once(fn: Any, seed: int | None, salt: int, batch: bool) -> dict:
    call = _call(seed)
    start = time.perf_counter()
    with _kept_rng_one_thread(), torch.enable_grad():
        torch.manual_seed(9973 + salt)  # another global RNG state each call: only `seed` decides
        model = attempt(fn, call=call) if seed is None else attempt(fn, seed=seed, call=call)
    run: dict[str, Any] = {"seconds": time.perf_counter() - start, "model": model}
    if not isinstance(model, nn.Module):
        return run
    run["model"] = f"an nn.Module ({type(model).__name__})"
    attempt(model.eval, call="model.eval()")
    try:
        dev = _model_device(model)
    except Exception:  # noqa: BLE001 - a student's parameters() may raise
        dev = torch.device("cpu")
    x = torch.tensor(_XOR_X)
    with torch.no_grad(), _kept_rng_one_thread():
        run["logits"] = attempt(model, x.to(dev), call="model(<the four XOR points, shape (4, 2)>)")
        run["probes"] = [attempt(model, p.to(dev), call="model(<6 random points, shape (6, 2)>)")
                         for p in _probes()[:3]]
        if batch:
            run["batch"] = attempt(model, x[_BATCH_ROWS].to(dev),
                                   call="model(<a batch of 7 XOR points, shape (7, 2)>)")
    return run


def _xor_scenario(fn: Any, *, thorough: bool = False, seed: int = 0) -> dict:
    """The signature, then per training call: its duration, what it returned and the returned
    model's outputs on the XOR points, on probe points and (thorough) on a batch of 7."""
    runs = []
    for i, s in enumerate(_xor_plan(thorough, seed)):
        run = _train_once(fn, s, salt=i, batch=thorough and i == 0)
        runs.append(run)
        if run["seconds"] > _TIME_LIMIT or "logits" not in run:
            break  # the verdict fails on this run: do not spend more time
    return {"signature": _signature(fn), "runs": runs}


def _is_affine(probes: Any) -> bool:
    """True when the recorded outputs show a model affine in its 2 inputs (it cannot solve XOR)."""
    if not (isinstance(probes, list) and len(probes) == 3
            and all(isinstance(p, torch.Tensor) and p.numel() == 6 for p in probes)):
        return False
    fa, fb, fm = (p.detach().float().cpu().reshape(6, 1) for p in probes)
    t = _probes()[3]
    scale = 1.0 + max(fa.abs().max().item(), fb.abs().max().item())
    return bool(((t * fa + (1 - t) * fb - fm).abs().max() <= 1e-4 * scale).item())


def _judge_run(run: Any, seed: int | None, hidden: bool, first: bool) -> torch.Tensor:
    """The run's logits as 4 floats on the CPU, after every rule a single run must meet."""
    call = _call(seed)
    probe = "training with the default seed" if seed is None else f"training with seed={seed}"
    require(isinstance(run, dict), _INCOMPLETE, hidden=hidden)
    model = expect(run.get("model"), "train_xor_mlp", probe, hidden=hidden)
    require(isinstance(model, str) and model.startswith("an nn.Module"),
            "train_xor_mlp must return the trained nn.Module (the model itself, not its outputs "
            "or its state_dict)", f"{call} returned {type_name(model)}", hidden)
    took = run.get("seconds")
    require(isinstance(took, int | float) and took <= _TIME_LIMIT,
            f"train_xor_mlp must finish within {_TIME_LIMIT:.0f} s; four points need only a small "
            "MLP and a few hundred optimizer steps (use a larger learning rate or fewer steps)",
            f"{call} took {took if not isinstance(took, int | float) else round(took)} s", hidden)
    out = expect(run.get("logits"), "train_xor_mlp", "the returned model on the four XOR points",
                 hidden=hidden)
    require(isinstance(out, torch.Tensor), "the model must return a tensor of logits",
            f"{call}: the model returned {type_name(out)}", hidden)
    shape = tuple(out.shape)
    require(shape != (4,),
            "the model must return logits of shape (N, 1), one column as nn.Linear(hidden, 1) "
            "gives, not (N,): do not squeeze the last dimension",
            f"{call}: input shape (4, 2) gave output shape {shape}", hidden)
    require(shape == (4, 1),
            "binary classification needs ONE output logit per sample: the model must map (N, 2) "
            "inputs to (N, 1) logits", f"{call}: input shape (4, 2) gave output shape {shape}",
            hidden)
    require(out.is_floating_point(), "the model must return float logits",
            f"{call}: dtype {out.dtype}", hidden)
    logits = out.detach().float().cpu().reshape(4)
    y = torch.tensor(_XOR_Y)
    pred = (logits > 0).float()
    if torch.equal(pred, y):
        return logits
    if bool(((logits >= 0) & (logits <= 1)).all()) and torch.equal((logits > 0.5).float(), y):
        raise CheckFailure(
            "the model returns probabilities (after a sigmoid), not logits: drop the final "
            "sigmoid so that class 1 means logit > 0 (train with nn.BCEWithLogitsLoss, which "
            "applies the sigmoid inside the loss)", f"{call}: outputs {logits.tolist()}", hidden)
    if _is_affine(run.get("probes")):
        raise CheckFailure(
            "the model is linear in its inputs (a single-layer perceptron, or layers with no "
            "activation between them), and XOR is not linearly separable: add a hidden layer "
            "followed by a non-linear activation such as ReLU or Tanh",
            f"{call}: {int((pred == y).sum())} of 4 XOR points correct", hidden)
    detail = (f"{call}: {int((pred == y).sum())} of 4 correct, logits "
              f"{[round(v, 3) for v in logits.tolist()]}")
    if not first:
        raise CheckFailure(
            "train_xor_mlp must work for ANY seed, but with this seed the trained model gets some "
            "XOR points wrong: a recipe that succeeds only from lucky starting weights is "
            "fragile. Give the hidden layer more units than the bare minimum (two can solve XOR, "
            "but from many starting weights they get stuck) and train long enough", detail, hidden)
    raise CheckFailure(
        "the trained model does not classify all four XOR points correctly (class 1 when the "
        "logit is > 0): train longer or with a larger learning rate, and check the loss goes down",
        detail, hidden)


def _xor_verdict(data: dict, *, thorough: bool = False, hidden: bool = False,
                 seed: int = 0) -> None:
    """``fn(seed)`` must return a module giving (N, 1) logits, right on all four XOR points for
    every seed tried, the same for the same seed and different for different seeds."""
    require(isinstance(data, dict), _INCOMPLETE, hidden=hidden)
    sig = data.get("signature")
    default = sig.get("seed_default") if isinstance(sig, dict) else None
    require(type(default) is int and default == 0,
            "train_xor_mlp must take the argument `seed` with default 0: def train_xor_mlp(seed=0)",
            f"its parameters are {sig.get('params') if isinstance(sig, dict) else '?'}", hidden)
    plan = _xor_plan(thorough, seed)
    runs = data.get("runs")
    require(isinstance(runs, list) and 0 < len(runs) <= len(plan), _INCOMPLETE, hidden=hidden)
    logits = []
    for i, (s, run) in enumerate(zip(plan, runs, strict=False)):
        logits.append(_judge_run(run, s, hidden, first=i == 0))
        if i == 1:
            require(torch.allclose(logits[1], logits[0], rtol=1e-5, atol=1e-6),
                    "training is not deterministic: the same seed must give the same model. Call "
                    "torch.manual_seed(seed) at the start of train_xor_mlp, before creating the "
                    "layers", f"two calls of {_call(s)} gave logits {logits[0].tolist()} and "
                    f"{logits[1].tolist()}", hidden)
        if i == 2:
            require(not torch.equal(logits[2], logits[0]),
                    "train_xor_mlp ignores its seed: different seeds must give different "
                    "starting weights, so call torch.manual_seed(seed) with the argument, not a "
                    "fixed number", f"{_call(plan[0])} and {_call(s)} gave the same logits", hidden)
    require(len(runs) == len(plan), _INCOMPLETE, hidden=hidden)
    if thorough:  # any batch size, and each row independent of the others
        got = expect(runs[0].get("batch"), "train_xor_mlp", "a batch of 7 points", hidden=hidden)
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type_name(got)
        require(shape == (7, 1),
                "the model must work for any batch size N: (N, 2) inputs give (N, 1) logits",
                f"a batch of 7 gave {shape}", hidden)
        want = logits[0][_BATCH_ROWS]
        require(torch.allclose(got.detach().float().cpu().reshape(7), want, rtol=1e-4, atol=1e-5),
                "each row's logit must depend only on that row (the same point gives the same "
                "logit whatever the batch)",
                f"expected {want.tolist()}, got {got.flatten().tolist()}", hidden)


train_xor_mlp = Check("neural_networks.train_xor_mlp", "train_xor_mlp", _xor_scenario, _xor_verdict)
