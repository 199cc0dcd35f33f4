"""08_optimizers: the checks accept the solution and reject known-wrong optimizers, naming the
concept. Most mutants are the solution with one line changed, so each isolates one mistake."""

import pytest
from mutantkit import make_tests
from nbharness import parts

pytestmark = pytest.mark.nb08

_ANSWERS = parts("08_optimizers").answers


def _edit(exercise: str, *pairs: tuple[str, str]) -> str:
    """The solution's source with each ``old`` replaced by ``new`` (each must occur)."""
    source = _ANSWERS[exercise]
    for old, new in pairs:
        assert old in source, f"mutant out of date: {old!r} is not in the {exercise} solution"
        source = source.replace(old, new)
    return source


MUTANTS = {
    "SGD": [
        ("weight decay after momentum", _edit(
            "SGD",
            ("                if weight_decay != 0:\n                    g = g + weight_decay * p\n", ""),
            ("p.add_(g, alpha=-lr)", "p.add_(g + weight_decay * p, alpha=-lr)")),
         "before the gradient enters the momentum buffer"),
        ("nesterov missing", _edit("SGD", ("g = g + momentum * buf if nesterov else buf", "g = buf")),
         "nesterov"),
        ("dampening ignored", _edit("SGD", ("buf.mul_(momentum).add_(g, alpha=1 - dampening)",
                                            "buf.mul_(momentum).add_(g)")),
         "dampening scales only the new gradient"),
        ("dampening on the first step", _edit("SGD", ("buf = g.clone()", "buf = (1 - dampening) * g")),
         "first step"),
        ("state in an attribute", _edit("SGD", ("state = self.state[p]",
                                                "state = self.__dict__.setdefault('bufs', {}).setdefault(p, {})")),
         "fresh optimizer"),
        ("ignores group settings", _edit("SGD", (
            'lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]',
            'lr, momentum, dampening = self.defaults["lr"], self.defaults["momentum"], '
            'self.defaults["dampening"]')),
         "own settings"),
        ("gradient ascent", _edit("SGD", ("p.add_(g, alpha=-lr)", "p.add_(g, alpha=lr)")),
         "against its gradient"),
        ("no update in place", _edit("SGD", ("p.add_(g, alpha=-lr)", "p = p - lr * g")),
         "in place"),
        ("None grads not skipped", _edit("SGD", ("                if p.grad is None:\n"
                                                 "                    continue\n", "")),
         "skip"),
        ("closure result dropped", _edit("SGD", ("        return loss\n", "        return None\n")),
         "closure"),
        ("wrong defaults", _edit("SGD", ("lr=1e-3, momentum=0", "lr=0.01, momentum=0")),
         "same defaults"),
        ("subclasses torch.optim.SGD", """
            class SGD(torch.optim.SGD):
                pass
        """, "delegates"),
        ("wraps torch's SGD at run time", """
            class SGD(torch.optim.Optimizer):
                def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                             nesterov=False):
                    params = list(params)
                    super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                                  weight_decay=weight_decay, nesterov=nesterov))
                    self.inner = getattr(torch.optim, "S" + "GD")(
                        params, lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov)

                def step(self, closure=None):
                    return self.inner.step(closure)
        """, "calls the pytorch reference"),
    ],
    "Adam": [
        ("no bias correction", _edit("Adam", ("m_hat = m / (1 - beta1 ** t)", "m_hat = m"),
                                     ("v_hat = v / (1 - beta2 ** t)", "v_hat = v")),
         "bias correction"),
        ("eps inside the sqrt", _edit("Adam", ('(v_hat.sqrt() + group["eps"])',
                                               '(v_hat + group["eps"]).sqrt()')),
         "after the square root"),
        ("decoupled weight decay (AdamW)", _edit("Adam", (
            'g = g + group["weight_decay"] * p', 'p.mul_(1 - group["lr"] * group["weight_decay"])')),
         "adamw"),
        ("amsgrad on m", _edit("Adam", (
            'torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])\n'
            '                    v = state["max_exp_avg_sq"]',
            'torch.maximum(state["max_exp_avg_sq"], m, out=state["max_exp_avg_sq"])\n'
            '                    m = state["max_exp_avg_sq"]')),
         "running maximum of the second moment"),
        ("state in an attribute", _edit("Adam", (
            "state = self.state[p]", "state = self.__dict__.setdefault('moments', {}).setdefault(p, {})")),
         "fresh optimizer"),
        ("shared step counter", _edit(
            "Adam",
            ('                state["step"] += 1\n                t = state["step"]\n',
             "                t = self.t\n"),
            ("        for group in self.param_groups:\n            beta1, beta2",
             "        self.t = getattr(self, 't', 0) + 1\n"
             "        for group in self.param_groups:\n            beta1, beta2")),
         "step count"),
        ("ignores group lr", _edit("Adam", ('p.sub_(group["lr"] * m_hat', 'p.sub_(self.defaults["lr"] * m_hat')),
         "own settings"),
        ("broken zero_grad", _edit("Adam", ("        return loss\n", "        return loss\n\n"
                                                 "    def zero_grad(self, set_to_none=True):\n"
                                                 "        pass\n")),
         "zero_grad"),
        ("subclasses torch.optim.Adam", """
            class Adam(torch.optim.Adam):
                pass
        """, "delegates"),
        ("calls the functional adam", _edit("Adam", (
            "        return loss\n",
            "        return loss\n\n    def _unused(self):\n        return torch.optim._functional.adam\n")),
         "delegates"),
    ],
}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests(
    "08_optimizers", MUTANTS)
