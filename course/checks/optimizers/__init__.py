"""Checks for 08_optimizers: hand-written ``SGD`` and ``Adam`` against ``torch.optim``.

The scenario runs the student's optimizer on parameters it creates from the seed and records every
step's parameters, closure results, the saved ``state_dict`` and ``zero_grad``; a resume loads the
saved ``state_dict`` into a FRESH optimizer over NEW parameter tensors, as a restart does. The
verdict runs ``torch.optim.SGD`` / ``Adam`` itself and names the first step and option where the
trajectories part (see ``trajectory``).
"""

from __future__ import annotations

from typing import Any

import torch

from .._core import Check
from .trajectory import DELEGATION, Case, Groups, scenario_for, verdict_for

__all__ = ["adam", "adam_state", "sgd", "sgd_state"]

# --- SGD -----------------------------------------------------------------------------------------

_SGD_MOMENTUM = ("momentum keeps one buffer per parameter: on the first step buf = grad, afterwards "
                 "buf = momentum·buf + (1 − dampening)·grad, and the step is p ← p − lr·buf")
_SGD_CONFIGS: list[tuple[dict[str, Any], str]] = [
    ({"lr": 0.05}, "plain SGD moves each parameter against its gradient: p ← p − lr·grad"),
    ({"lr": 0.05, "weight_decay": 0.1},
     "weight decay adds weight_decay·p to the gradient before the step (an L2 penalty): "
     "g ← grad + weight_decay·p"),
    ({"lr": 0.02, "momentum": 0.9}, _SGD_MOMENTUM),
    ({"lr": 0.02, "momentum": 0.9, "dampening": 0.5},
     "dampening scales only the NEW gradient added to the momentum buffer: "
     "buf = momentum·buf + (1 − dampening)·grad"),
    ({"lr": 0.02, "momentum": 0.9, "nesterov": True},
     "Nesterov momentum steps along grad + momentum·buf (a look-ahead) instead of along buf"),
    ({"lr": 0.02, "momentum": 0.8, "weight_decay": 0.05},
     "weight decay is added to the gradient BEFORE the gradient enters the momentum buffer "
     "(g = grad + weight_decay·p; buf = momentum·buf + (1 − dampening)·g)"),
]
_SGD_FIRST_DAMPENING = ("on the first step torch initialises the momentum buffer to the gradient "
                        "itself (buf = grad, no dampening); dampening applies from the second step on")
_SGD_GROUPS: Groups = [([0], {"lr": 0.05}), ([1], {"lr": 0.01, "momentum": 0.9, "nesterov": True}),
                       ([2], {"momentum": 0.5, "dampening": 0.2, "weight_decay": 0.1})]
_GROUPS_CONCEPT = ("every param group uses its own settings (group['lr'], group['momentum'], ...), "
                   "with the constructor's arguments only as defaults for keys a group leaves out")
_SKIP_CONCEPT = ("a parameter whose .grad is None is skipped: neither it nor its state changes that "
                 "step, and each parameter keeps its own state (its own step count) in self.state[p]")
_STATE_CONCEPT = ("saving state_dict() and loading it into a FRESH optimizer over new parameter "
                  "tensors (as after a restart) must not change the trajectory: keep every "
                  "per-parameter quantity in self.state[p] (the optimizer's state), not in "
                  "attributes or dicts of your own, nor keyed by id(p)")
_CLOSURE_CONCEPT = ("step(closure) must call the closure (with gradients enabled: torch.enable_grad()),"
                    " use the gradients it computes and return its loss")


def _first_alone(name: str, ref: str, kw: dict[str, Any], groups: Groups, seed: int) -> list[Case]:
    """Before blaming groups or state, each group's settings on their own."""
    concept = (f"fix {name}'s update rule first (see the test above): it already differs from "
               f"torch.optim.{ref} with a single param group")
    return [Case({**kw, **opts}, None, concept, 12, seed) for _, opts in groups or []]


def _sgd_cases(thorough: bool, seed: int) -> list[Case]:
    steps = 80 if thorough else 40
    cases = [Case(kw, None, concept, steps, seed,
                  first_step=_SGD_FIRST_DAMPENING if kw.get("dampening") else None)
             for kw, concept in _SGD_CONFIGS]
    if thorough:
        cases.append(Case({"lr": 0.03, "momentum": 0.7, "dampening": 0.1, "weight_decay": 0.02},
                          None, _SGD_MOMENTUM, 60, seed + 1, dtype=torch.float32))
    return cases


def _sgd_state_cases(thorough: bool, seed: int) -> list[Case]:
    steps = 60 if thorough else 30
    cases = _first_alone("SGD", "SGD", {"lr": 0.03}, _SGD_GROUPS, seed) + [
        Case({"lr": 0.03}, _SGD_GROUPS, _GROUPS_CONCEPT, steps, seed),
        Case({"lr": 0.02, "momentum": 0.9, "dampening": 0.3}, None, _SKIP_CONCEPT, steps, seed,
             skip=True),
        Case({"lr": 0.02, "momentum": 0.9, "weight_decay": 0.01}, None, _STATE_CONCEPT, steps, seed,
             reload_at=steps // 2),
        Case({"lr": 0.02, "momentum": 0.9}, None, _CLOSURE_CONCEPT, 10, seed, closure=True)]
    if thorough:
        cases.append(Case({"lr": 0.03, "momentum": 0.2}, _SGD_GROUPS, _STATE_CONCEPT, steps,
                          seed + 1, skip=True, reload_at=7))
    return cases


sgd = Check("optimizers.sgd", "SGD", scenario_for("SGD", _sgd_cases, False),
            verdict_for("SGD", torch.optim.SGD, _sgd_cases, False), DELEGATION)
sgd.__doc__ = ("``cls`` follows ``torch.optim.SGD``'s trajectory for each option (lr, weight decay, "
               "momentum, dampening, Nesterov, and momentum with weight decay).")
sgd_state = Check("optimizers.sgd_state", "SGD", scenario_for("SGD", _sgd_state_cases, True),
                  verdict_for("SGD", torch.optim.SGD, _sgd_state_cases, True), DELEGATION)
sgd_state.__doc__ = "Param groups, parameters without gradients, a resume from state_dict, closure."

# --- Adam ----------------------------------------------------------------------------------------

_ADAM_BIAS = ("Adam needs bias correction: m̂ = m / (1 − β1^t) and v̂ = v / (1 − β2^t), with t the "
              "parameter's own step count (1 on its first step); then p ← p − lr·m̂ / (√v̂ + eps). "
              "Its first step moves each parameter by about lr")
_ADAM_CONFIGS: list[tuple[dict[str, Any], str]] = [
    ({"lr": 0.01}, _ADAM_BIAS),
    ({"lr": 0.01, "betas": (0.7, 0.95)},
     "betas = (β1, β2): m = β1·m + (1 − β1)·grad and v = β2·v + (1 − β2)·grad², both bias-corrected "
     "with their own beta; use the group's betas"),
    ({"lr": 0.01, "eps": 0.1},
     "eps is added AFTER the square root: the denominator is √v̂ + eps, not √(v̂ + eps)"),
    ({"lr": 0.01, "weight_decay": 0.1},
     "Adam's weight_decay is an L2 term added to the gradient (g = grad + weight_decay·p) BEFORE the "
     "moments are updated; shrinking p directly (decoupled decay) is AdamW, a different optimizer"),
    ({"lr": 0.01, "betas": (0.9, 0.8), "amsgrad": True},
     "AMSGrad keeps the running maximum of the second moment v (not of m): "
     "v_max = max(v_max, v), denominator √v_max / √(1 − β2^t) + eps"),
]
_ADAM_GROUPS: Groups = [([0], {"lr": 0.02, "betas": (0.8, 0.9)}), ([1], {"amsgrad": True, "eps": 0.01}),
                        ([2], {"lr": 0.005, "weight_decay": 0.1})]


def _adam_cases(thorough: bool, seed: int) -> list[Case]:
    steps = 80 if thorough else 50
    cases = [Case(kw, None, concept, steps, seed) for kw, concept in _ADAM_CONFIGS]
    if thorough:
        cases.append(Case({"lr": 0.02, "betas": (0.85, 0.9), "weight_decay": 0.01, "amsgrad": True},
                          None, _ADAM_BIAS, 60, seed + 1, dtype=torch.float32))
    return cases


def _adam_state_cases(thorough: bool, seed: int) -> list[Case]:
    steps = 60 if thorough else 30
    cases = _first_alone("Adam", "Adam", {"lr": 0.01}, _ADAM_GROUPS, seed) + [
        Case({"lr": 0.01}, None, _SKIP_CONCEPT, steps, seed, skip=True),
        Case({"lr": 0.01}, _ADAM_GROUPS, _GROUPS_CONCEPT, steps, seed),
        Case({"lr": 0.01, "amsgrad": True, "betas": (0.9, 0.8)}, None, _STATE_CONCEPT, steps, seed,
             reload_at=steps // 2),
        Case({"lr": 0.01}, None, _CLOSURE_CONCEPT, 10, seed, closure=True)]
    if thorough:
        cases.append(Case({"lr": 0.01}, _ADAM_GROUPS, _STATE_CONCEPT, steps, seed + 1, skip=True,
                          reload_at=8))
    return cases


adam = Check("optimizers.adam", "Adam", scenario_for("Adam", _adam_cases, False),
             verdict_for("Adam", torch.optim.Adam, _adam_cases, False), DELEGATION)
adam.__doc__ = ("``cls`` follows ``torch.optim.Adam``'s trajectory for each option (bias correction, "
                "betas, eps, weight decay, AMSGrad).")
adam_state = Check("optimizers.adam_state", "Adam", scenario_for("Adam", _adam_state_cases, True),
                   verdict_for("Adam", torch.optim.Adam, _adam_state_cases, True), DELEGATION)
adam_state.__doc__ = "Per-parameter step counts, param groups, a resume from state_dict, closure."
