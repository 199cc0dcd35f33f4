"""Checks for 09_schedulers: hand-written ``StepLR``, ``MultiStepLR``, ``LambdaLR`` and
``CosineAnnealingLR`` against ``torch.optim.lr_scheduler``.

Each scheduler drives an optimizer with several param groups the standard way (``optimizer.step()``
then ``scheduler.step()``); the scenario records every group's lr at every epoch, the verdict runs
torch's scheduler itself and compares (see ``run``). The resume checks construct the scheduler
with ``last_epoch`` on an optimizer restored from a checkpoint, and carry ``state_dict()`` into a
fresh scheduler. A ``state_dict`` of torch's own kind (``LambdaLR``'s, which leaves its lambdas
out) is as good as the inherited one.
"""

from __future__ import annotations

import math

import torch
from torch.optim import lr_scheduler as _L

from .run import Case, resume_check, sequence_check

__all__ = ["cosine_annealing_lr", "cosine_annealing_lr_resume", "lambda_lr", "lambda_lr_resume",
           "multi_step_lr", "multi_step_lr_resume", "step_lr", "step_lr_resume"]

# --- StepLR ----------------------------------------------------------------------------------------

_STEP = ("StepLR multiplies the lr by gamma once every step_size epochs: "
         "lr = base_lr · gamma^(epoch // step_size)")


def _step_cases(thorough: bool, seed: int) -> list[Case]:
    size = int(torch.randint(2, 6, (1,), generator=torch.Generator().manual_seed(seed)))
    cases = [([0.1], {"step_size": 3}, 12, _STEP),
             ([0.1, 0.05, 1.0], {"step_size": size, "gamma": 0.5}, 4 * size + 3, _STEP)]
    if thorough:
        cases += [([0.3, 0.02], {"step_size": 1, "gamma": 0.9}, 15, _STEP),
                  ([0.1, 0.2, 0.4, 0.8], {"step_size": 7, "gamma": 0.3}, 40, _STEP)]
    return cases


step_lr = sequence_check(
    "schedulers.step_lr", "StepLR", _L.StepLR, _step_cases,
    "StepLR first decays when last_epoch reaches step_size (epochs 0 … step_size − 1 use base_lr)")
step_lr_resume = resume_check("schedulers.step_lr_resume", "StepLR", _L.StepLR, lambda thorough, seed: [
    ([0.1, 0.3], {"step_size": 3, "gamma": 0.5}, k + seed % 2, 10, _STEP)
    for k in [5, 8] + ([2, 11] if thorough else [])])

# --- MultiStepLR -----------------------------------------------------------------------------------

_MULTI = ("MultiStepLR multiplies the lr by gamma at every milestone: lr = base_lr · gamma^(number of "
          "milestones ≤ epoch); milestones may be given in any order, and one listed twice decays twice")


def _multi_cases(thorough: bool, seed: int) -> list[Case]:
    first = int(torch.randint(2, 5, (1,), generator=torch.Generator().manual_seed(seed)))
    cases = [([0.1], {"milestones": [first, 7, 12]}, 16, _MULTI),
             ([0.1, 0.5, 0.02], {"milestones": [10, 4], "gamma": 0.5}, 14, _MULTI)]
    if thorough:
        cases += [([0.2, 0.1], {"milestones": (3, 3, 8), "gamma": 0.5}, 12, _MULTI),
                  ([0.1, 1.0, 0.3], {"milestones": [15, 1, 9, 5], "gamma": 0.7}, 20, _MULTI)]
    return cases


multi_step_lr = sequence_check(
    "schedulers.multi_step_lr", "MultiStepLR", _L.MultiStepLR, _multi_cases,
    "MultiStepLR decays AT the milestone epoch: epoch m already uses the decayed lr")
multi_step_lr_resume = resume_check(
    "schedulers.multi_step_lr_resume", "MultiStepLR", _L.MultiStepLR, lambda thorough, seed: [
    ([0.1, 0.4], {"milestones": [4, 8, 10], "gamma": 0.5}, k + seed % 2, 8, _MULTI)
    for k in [3, 6] + ([1, 9] if thorough else [])])

# --- LambdaLR --------------------------------------------------------------------------------------

_LAMBDA = ("LambdaLR sets lr = base_lr · lr_lambda(epoch): it scales the INITIAL lr of each group "
           "(self.base_lrs), never the current one, so factors do not compound")


def _warmup(epoch: int) -> float:
    return min(1.0, (epoch + 1) / 4)


def _decay(epoch: int) -> float:
    return 0.9 ** epoch


def _wave(epoch: int) -> float:
    return 1.0 + 0.5 * math.sin(epoch)


def _lambda_cases(thorough: bool, seed: int) -> list[Case]:
    cases = [([0.1], {"lr_lambda": _decay}, 10, _LAMBDA),
             ([0.1, 0.5], {"lr_lambda": _warmup}, 8, _LAMBDA),
             ([0.1, 0.5, 0.2], {"lr_lambda": [_warmup, _decay, _wave]}, 12,
              "with a list, param group i uses lr_lambda[i] (one lambda per param group): "
              "lr_i = base_lrs[i] · lr_lambda[i](epoch)")]
    if thorough:
        rate = 0.8 + 0.05 * (seed % 3)
        cases += [([0.3, 0.03], {"lr_lambda": (lambda e: rate ** (e // 2), _wave)}, 15, _LAMBDA),
                  ([0.2, 0.1, 0.4], {"lr_lambda": lambda e: 1.0 / (1 + e)}, 20, _LAMBDA)]
    return cases


lambda_lr = sequence_check(
    "schedulers.lambda_lr", "LambdaLR", _L.LambdaLR, _lambda_cases,
    "use lr_lambda(self.last_epoch): epoch 0 (right after construction) uses lr_lambda(0)")
lambda_lr_resume = resume_check(
    "schedulers.lambda_lr_resume", "LambdaLR", _L.LambdaLR, lambda thorough, seed: [
    ([0.1, 0.4], {"lr_lambda": [_warmup, _wave]}, k + seed % 2, 8, _LAMBDA)
    for k in [3, 7] + ([0, 12] if thorough else [])])

# --- CosineAnnealingLR -----------------------------------------------------------------------------

_COS = ("CosineAnnealingLR follows half a cosine period over T_max epochs: lr = eta_min + (base_lr − "
        "eta_min) · (1 + cos(π · epoch / T_max)) / 2, from base_lr down to eta_min")
_COS_MIN = ("eta_min is the floor of the schedule: lr = eta_min + (base_lr − eta_min) · "
            "(1 + cos(π · epoch / T_max)) / 2, so the lr ends at eta_min, not at 0")
_COS_AFTER = ("after T_max epochs the cosine goes on: the lr climbs back towards base_lr over the next "
              "T_max epochs (a full period is 2·T_max); do not clamp it or restart it")
_COS_RESUME = ("resumed with last_epoch=k, torch's CosineAnnealingLR keeps the optimizer's current lr "
               "during the constructor's step and then applies its recursive formula to the current "
               "lr at every step; a closed form computed from base_lrs gives other values here")


def _cos_cases(thorough: bool, seed: int) -> list[Case]:
    t_max = 8 + seed % 5
    cases = [([0.1], {"T_max": t_max}, t_max, _COS),
             ([0.1, 0.5], {"T_max": t_max, "eta_min": 0.01}, t_max, _COS_MIN),
             ([0.1], {"T_max": t_max}, 3 * t_max + 2, _COS_AFTER),
             ([0.1, 0.5, 0.02], {"T_max": 5, "eta_min": 0.001}, 13, _COS)]
    if thorough:
        cases += [([1.0, 0.2], {"T_max": 1, "eta_min": 0.05}, 6, _COS_AFTER),
                  ([0.3, 0.1, 0.05], {"T_max": 20, "eta_min": 0.002}, 50, _COS)]
    return cases


cosine_annealing_lr = sequence_check(
    "schedulers.cosine_annealing_lr", "CosineAnnealingLR", _L.CosineAnnealingLR, _cos_cases,
    "epoch 0 (right after construction) must use base_lr; epoch T_max reaches eta_min")
cosine_annealing_lr_resume = resume_check(
    "schedulers.cosine_annealing_lr_resume", "CosineAnnealingLR", _L.CosineAnnealingLR,
    lambda thorough, seed: [
    ([0.1, 0.4], {"T_max": 10, "eta_min": 0.01}, k + seed % 2, 14, _COS_RESUME)
    for k in [4, 9] + ([1, 15] if thorough else [])])
