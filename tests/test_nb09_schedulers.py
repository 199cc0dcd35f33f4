"""09_schedulers: the checks accept the solution and reject known-wrong schedulers, naming the
concept (off-by-one epochs, forgotten param groups, compounding, eta_min, the cosine's period ...)."""

import pytest
from mutantkit import make_tests

pytestmark = pytest.mark.nb09

_HEAD = """
import bisect, math
from collections import Counter
from torch.optim.lr_scheduler import LRScheduler
"""


def _closed(name: str, args: str, store: str, body: str) -> str:
    """A scheduler class whose get_lr() is ``body`` (a closed form using e = self.last_epoch)."""
    return _HEAD + f"""
class {name}(LRScheduler):
    def __init__(self, optimizer, {args}, last_epoch=-1):
{store}
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        e = self.last_epoch
{body}
"""


_STEP_STORE = "        self.step_size, self.gamma = step_size, gamma"
_MULTI_STORE = "        self.milestones, self.gamma = list(milestones), gamma"
_LAMBDA_STORE = """        n = len(optimizer.param_groups)
        self.lr_lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * n"""
_COS_STORE = "        self.T_max, self.eta_min = T_max, eta_min"

MUTANTS = {
    "StepLR": [
        ("decays one epoch early", _closed("StepLR", "step_size, gamma=0.1", _STEP_STORE,
            "        return [b * self.gamma ** ((e + 1) // self.step_size) for b in self.base_lrs]"),
         "off by one"),
        ("only group 0", _closed("StepLR", "step_size, gamma=0.1", _STEP_STORE,
            "        lrs = [g['lr'] for g in self.optimizer.param_groups]\n"
            "        lrs[0] = self.base_lrs[0] * self.gamma ** (e // self.step_size)\n"
            "        return lrs"),
         "every param group"),
        ("decays every epoch", _closed("StepLR", "step_size, gamma=0.1", _STEP_STORE,
            "        return [b * self.gamma ** e for b in self.base_lrs]"),
         "once every step_size epochs"),
        ("wrong default gamma", _closed("StepLR", "step_size, gamma=0.5", _STEP_STORE,
            "        return [b * self.gamma ** (e // self.step_size) for b in self.base_lrs]"),
         "same defaults"),
        ("steps with the deprecated epoch argument", _closed(
            "StepLR", "step_size, gamma=0.1", _STEP_STORE,
            "        return [b * self.gamma ** (e // self.step_size) for b in self.base_lrs]\n\n"
            "    def step(self, epoch=None):\n"
            "        super().step(self.last_epoch + 1)"),
         "without warnings"),
        ("subclasses torch's StepLR", """
            class StepLR(torch.optim.lr_scheduler.StepLR):
                pass
        """, "delegates"),
        ("state_dict keeps the optimizer", _closed("StepLR", "step_size, gamma=0.1", _STEP_STORE,
            "        return [b * self.gamma ** (e // self.step_size) for b in self.base_lrs]\n\n"
            "    def state_dict(self):\n"
            "        return dict(self.__dict__)"),
         "state_dict() / load_state_dict() must carry"),
        ("calls torch's get_lr", _closed("StepLR", "step_size, gamma=0.1", _STEP_STORE,
            "        return torch.optim.lr_scheduler.StepLR.get_lr(self)"),
         "delegates"),
    ],
    "MultiStepLR": [
        ("ignores the first milestone", _closed("MultiStepLR", "milestones, gamma=0.1", _MULTI_STORE,
            "        n = bisect.bisect_right(sorted(self.milestones)[1:], e)\n"
            "        return [b * self.gamma ** n for b in self.base_lrs]"),
         "number of milestones"),
        ("assumes sorted milestones", _closed("MultiStepLR", "milestones, gamma=0.1", _MULTI_STORE,
            "        n = bisect.bisect_right(self.milestones, e)\n"
            "        return [b * self.gamma ** n for b in self.base_lrs]"),
         "any order"),
        ("decays one epoch late", _closed("MultiStepLR", "milestones, gamma=0.1", _MULTI_STORE,
            "        n = bisect.bisect_left(sorted(self.milestones), e)\n"
            "        return [b * self.gamma ** n for b in self.base_lrs]"),
         "off by one"),
        ("only group 0", _closed("MultiStepLR", "milestones, gamma=0.1", _MULTI_STORE,
            "        n = bisect.bisect_right(sorted(self.milestones), e)\n"
            "        return [self.base_lrs[0] * self.gamma ** n] + [g['lr'] for g in self.optimizer.param_groups[1:]]"),
         "every param group"),
        ("subclasses torch's MultiStepLR", """
            class MultiStepLR(torch.optim.lr_scheduler.MultiStepLR):
                pass
        """, "delegates"),
    ],
    "LambdaLR": [
        ("compounds the current lr", _closed("LambdaLR", "lr_lambda", _LAMBDA_STORE,
            "        return [g['lr'] * f(e) for f, g in zip(self.lr_lambdas, self.optimizer.param_groups)]"),
         "never the current one"),
        ("ignores per-group lambdas", _closed(
            "LambdaLR", "lr_lambda",
            "        n = len(optimizer.param_groups)\n"
            "        first = lr_lambda[0] if isinstance(lr_lambda, (list, tuple)) else lr_lambda\n"
            "        self.lr_lambdas = [first] * n",
            "        return [b * f(e) for f, b in zip(self.lr_lambdas, self.base_lrs)]"),
         "own lambda"),
        ("only accepts a list", _closed("LambdaLR", "lr_lambda", "        self.lr_lambdas = list(lr_lambda)",
            "        return [b * f(e) for f, b in zip(self.lr_lambdas, self.base_lrs)]"),
         "TypeError"),
        ("lambda of the next epoch", _closed("LambdaLR", "lr_lambda", _LAMBDA_STORE,
            "        return [b * f(e + 1) for f, b in zip(self.lr_lambdas, self.base_lrs)]"),
         "off by one"),
        ("only group 0", _closed("LambdaLR", "lr_lambda", _LAMBDA_STORE,
            "        return [self.base_lrs[0] * self.lr_lambdas[0](e)] + [g['lr'] for g in self.optimizer.param_groups[1:]]"),
         "every param group"),
        ("state_dict saves nothing", _closed("LambdaLR", "lr_lambda", _LAMBDA_STORE,
            "        return [b * f(e) for f, b in zip(self.lr_lambdas, self.base_lrs)]\n\n"
            "    def state_dict(self):\n"
            "        return {}"),
         "state_dict() / load_state_dict() must carry"),
        ("subclasses torch's LambdaLR", """
            class LambdaLR(torch.optim.lr_scheduler.LambdaLR):
                pass
        """, "delegates"),
    ],
    "CosineAnnealingLR": [
        ("eta_min ignored", _closed("CosineAnnealingLR", "T_max, eta_min=0.0", _COS_STORE,
            "        return [b * (1 + math.cos(math.pi * e / self.T_max)) / 2 for b in self.base_lrs]"),
         "eta_min is the floor"),
        ("period 4*T_max", _closed("CosineAnnealingLR", "T_max, eta_min=0.0", _COS_STORE,
            "        lo = self.eta_min\n"
            "        return [lo + (b - lo) * (1 + math.cos(math.pi * e / (2 * self.T_max))) / 2 for b in self.base_lrs]"),
         "half a cosine period"),
        ("clamped after T_max", _closed("CosineAnnealingLR", "T_max, eta_min=0.0", _COS_STORE,
            "        lo, e = self.eta_min, min(e, self.T_max)\n"
            "        return [lo + (b - lo) * (1 + math.cos(math.pi * e / self.T_max)) / 2 for b in self.base_lrs]"),
         "after t_max epochs the cosine goes on"),
        ("closed form (differs from torch on resume)", _closed(
            "CosineAnnealingLR", "T_max, eta_min=0.0", _COS_STORE,
            "        lo = self.eta_min\n"
            "        return [lo + (b - lo) * (1 + math.cos(math.pi * e / self.T_max)) / 2 for b in self.base_lrs]"),
         "recursive formula"),
        ("only group 0", _closed("CosineAnnealingLR", "T_max, eta_min=0.0", _COS_STORE,
            "        lo = self.eta_min\n"
            "        first = lo + (self.base_lrs[0] - lo) * (1 + math.cos(math.pi * e / self.T_max)) / 2\n"
            "        return [first] + [g['lr'] for g in self.optimizer.param_groups[1:]]"),
         "every param group"),
        ("subclasses torch's CosineAnnealingLR", """
            class CosineAnnealingLR(torch.optim.lr_scheduler.CosineAnnealingLR):
                pass
        """, "delegates"),
    ],
}

_TORCH_HEAD = _HEAD + """
import types
import warnings


def _warn_get_lr_called_within_step(scheduler):
    if not scheduler._get_lr_called_within_step:
        warnings.warn("To get the last learning rate computed by the scheduler, "
                      "please use `get_last_lr()`.", UserWarning, stacklevel=2)
"""

CORRECT = {
    "StepLR": [
        ("closed form", _closed("StepLR", "step_size, gamma=0.1", _STEP_STORE,
            "        return [b * self.gamma ** (e // self.step_size) for b in self.base_lrs]")),
        # torch's own StepLR: a chainable get_lr() that warns when called outside step(), and a
        # closed form for step(epoch)
        ("torch's chainable form", _TORCH_HEAD + """
class StepLR(LRScheduler):
    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        _warn_get_lr_called_within_step(self)
        if (self.last_epoch == 0) or (self.last_epoch % self.step_size != 0):
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size) for base_lr in self.base_lrs]
"""),
    ],
    "MultiStepLR": [
        ("closed form with bisect", _closed("MultiStepLR", "milestones, gamma=0.1", _MULTI_STORE,
            "        return [b * self.gamma ** bisect.bisect_right(sorted(self.milestones), e)\n"
            "                for b in self.base_lrs]")),
        ("torch's chainable form", _TORCH_HEAD + """
class MultiStepLR(LRScheduler):
    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        _warn_get_lr_called_within_step(self)
        if self.last_epoch not in self.milestones:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma ** self.milestones[self.last_epoch]
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        milestones = sorted(self.milestones.elements())
        return [base_lr * self.gamma ** bisect.bisect_right(milestones, self.last_epoch)
                for base_lr in self.base_lrs]
"""),
    ],
    "LambdaLR": [
        # torch's own LambdaLR: its state_dict copies self.__dict__ and leaves the lambdas out
        # (a lambda cannot be pickled); load_state_dict keeps the fresh scheduler's lambdas.
        ("torch's state_dict without the lambdas", _TORCH_HEAD + """
class LambdaLR(LRScheduler):
    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        self.optimizer = optimizer
        if not isinstance(lr_lambda, list) and not isinstance(lr_lambda, tuple):
            self.lr_lambdas = [lr_lambda] * len(optimizer.param_groups)
        else:
            if len(lr_lambda) != len(optimizer.param_groups):
                raise ValueError(f"Expected {len(optimizer.param_groups)} lr_lambdas, but got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        super().__init__(optimizer, last_epoch)

    def state_dict(self):
        state_dict = {key: value for key, value in self.__dict__.items()
                      if key not in ("optimizer", "lr_lambdas")}
        state_dict["lr_lambdas"] = [None] * len(self.lr_lambdas)
        for idx, fn in enumerate(self.lr_lambdas):
            if not isinstance(fn, types.FunctionType):
                state_dict["lr_lambdas"][idx] = fn.__dict__.copy()
        return state_dict

    def load_state_dict(self, state_dict):
        lr_lambdas = state_dict.pop("lr_lambdas")
        self.__dict__.update(state_dict)
        state_dict["lr_lambdas"] = lr_lambdas
        for idx, fn in enumerate(lr_lambdas):
            if fn is not None:
                self.lr_lambdas[idx].__dict__.update(fn)

    def get_lr(self):
        _warn_get_lr_called_within_step(self)
        return [base_lr * lmbda(self.last_epoch) for lmbda, base_lr in zip(self.lr_lambdas, self.base_lrs)]
"""),
    ],
    "CosineAnnealingLR": [
        ("torch's chainable form", _TORCH_HEAD + """
class CosineAnnealingLR(LRScheduler):
    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        _warn_get_lr_called_within_step(self)
        if self._is_initial:
            return [group["lr"] for group in self.optimizer.param_groups]
        elif self._step_count == 1 and self.last_epoch > 0:
            return [self.eta_min + (base_lr - self.eta_min)
                    * (1 + math.cos((self.last_epoch) * math.pi / self.T_max)) / 2
                    for base_lr, group in zip(self.base_lrs, self.optimizer.param_groups)]
        elif (self.last_epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
            return [group["lr"] + (base_lr - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
                    for base_lr, group in zip(self.base_lrs, self.optimizer.param_groups)]
        return [(1 + math.cos(math.pi * self.last_epoch / self.T_max))
                / (1 + math.cos(math.pi * (self.last_epoch - 1) / self.T_max))
                * (group["lr"] - self.eta_min) + self.eta_min
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [self.eta_min + (base_lr - self.eta_min)
                * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]
"""),
    ],
}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests(
    "09_schedulers", MUTANTS, CORRECT)
