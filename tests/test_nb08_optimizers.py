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
        ("state keyed by id(p)", _edit("SGD", ("state = self.state[p]", "state = self.state[id(p)]")),
         "keyed by"),
        ("state in a global dict keyed by the tensor", _edit(
            "SGD", ("state = self.state[p]", "state = _BUFFERS.setdefault(p, {})"),
            ("class SGD(torch.optim.Optimizer):", "_BUFFERS = {}\n\n\nclass SGD(torch.optim.Optimizer):")),
         "new parameter tensors"),
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
        """, "it called SGD.step"),
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
        ("state keyed by id(p)", _edit("Adam", ("state = self.state[p]", "state = self.state[id(p)]")),
         "keyed by"),
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

CORRECT = {
    "SGD": [
        # torch 1.x's SGD, step for step: `.data`, the deprecated add_(scalar, tensor) overloads
        # (a deprecation warning is no failure), no enable_grad around the closure.
        ("torch 1.x step", """
            import torch
            from torch.optim.optimizer import Optimizer


            class SGD(Optimizer):
                def __init__(self, params, lr=1e-3, momentum=0, dampening=0,
                             weight_decay=0, nesterov=False):
                    if lr < 0.0:
                        raise ValueError("Invalid learning rate: {}".format(lr))
                    if momentum < 0.0:
                        raise ValueError("Invalid momentum value: {}".format(momentum))
                    if weight_decay < 0.0:
                        raise ValueError("Invalid weight_decay value: {}".format(weight_decay))
                    defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                                    weight_decay=weight_decay, nesterov=nesterov)
                    if nesterov and (momentum <= 0 or dampening != 0):
                        raise ValueError("Nesterov momentum requires a momentum and zero dampening")
                    super(SGD, self).__init__(params, defaults)

                def __setstate__(self, state):
                    super(SGD, self).__setstate__(state)
                    for group in self.param_groups:
                        group.setdefault('nesterov', False)

                def step(self, closure=None):
                    loss = None
                    if closure is not None:
                        loss = closure()

                    for group in self.param_groups:
                        weight_decay = group['weight_decay']
                        momentum = group['momentum']
                        dampening = group['dampening']
                        nesterov = group['nesterov']

                        for p in group['params']:
                            if p.grad is None:
                                continue
                            d_p = p.grad.data
                            if weight_decay != 0:
                                d_p.add_(weight_decay, p.data)
                            if momentum != 0:
                                param_state = self.state[p]
                                if 'momentum_buffer' not in param_state:
                                    buf = param_state['momentum_buffer'] = torch.clone(d_p).detach()
                                else:
                                    buf = param_state['momentum_buffer']
                                    buf.mul_(momentum).add_(1 - dampening, d_p)
                                if nesterov:
                                    d_p = d_p.add(momentum, buf)
                                else:
                                    d_p = buf

                            p.data.add_(-group['lr'], d_p)

                    return loss
        """),
        ("warns and keeps state in named dicts", """
            import warnings


            class SGD(torch.optim.Optimizer):
                def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                             nesterov=False):
                    super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                              "weight_decay": weight_decay, "nesterov": nesterov})
                    warnings.warn("this SGD is for teaching", UserWarning)

                @torch.no_grad()
                def step(self, closure=None):
                    loss = None
                    if closure is not None:
                        with torch.enable_grad():
                            loss = closure()
                    for group in self.param_groups:
                        for p in (q for q in group["params"] if q.grad is not None):
                            d = p.grad.add(p, alpha=group["weight_decay"])
                            if group["momentum"]:
                                st = self.state[p]
                                if "buf" in st:
                                    st["buf"].mul_(group["momentum"]).add_(d, alpha=1 - group["dampening"])
                                else:
                                    st["buf"] = d.clone()
                                d = d.add(st["buf"], alpha=group["momentum"]) if group["nesterov"] else st["buf"]
                            p.sub_(group["lr"] * d)
                    return loss
        """),
    ],
    "Adam": [
        # torch 1.x's Adam, as torch wrote it: bias corrections folded into step_size and denom.
        ("torch 1.x step", """
            import math
            import torch
            from torch.optim.optimizer import Optimizer


            class Adam(Optimizer):
                def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                             weight_decay=0, amsgrad=False):
                    if not 0.0 <= lr:
                        raise ValueError("Invalid learning rate: {}".format(lr))
                    if not 0.0 <= eps:
                        raise ValueError("Invalid epsilon value: {}".format(eps))
                    if not 0.0 <= betas[0] < 1.0:
                        raise ValueError("Invalid beta parameter at index 0: {}".format(betas[0]))
                    if not 0.0 <= betas[1] < 1.0:
                        raise ValueError("Invalid beta parameter at index 1: {}".format(betas[1]))
                    defaults = dict(lr=lr, betas=betas, eps=eps,
                                    weight_decay=weight_decay, amsgrad=amsgrad)
                    super(Adam, self).__init__(params, defaults)

                def __setstate__(self, state):
                    super(Adam, self).__setstate__(state)
                    for group in self.param_groups:
                        group.setdefault('amsgrad', False)

                @torch.no_grad()
                def step(self, closure=None):
                    loss = None
                    if closure is not None:
                        with torch.enable_grad():
                            loss = closure()

                    for group in self.param_groups:
                        for p in group['params']:
                            if p.grad is None:
                                continue
                            grad = p.grad
                            amsgrad = group['amsgrad']
                            state = self.state[p]
                            if len(state) == 0:
                                state['step'] = 0
                                state['exp_avg'] = torch.zeros_like(p, memory_format=torch.preserve_format)
                                state['exp_avg_sq'] = torch.zeros_like(p, memory_format=torch.preserve_format)
                                if amsgrad:
                                    state['max_exp_avg_sq'] = torch.zeros_like(p, memory_format=torch.preserve_format)

                            exp_avg, exp_avg_sq = state['exp_avg'], state['exp_avg_sq']
                            if amsgrad:
                                max_exp_avg_sq = state['max_exp_avg_sq']
                            beta1, beta2 = group['betas']

                            state['step'] += 1
                            bias_correction1 = 1 - beta1 ** state['step']
                            bias_correction2 = 1 - beta2 ** state['step']

                            if group['weight_decay'] != 0:
                                grad = grad.add(p, alpha=group['weight_decay'])

                            exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                            if amsgrad:
                                torch.max(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
                                denom = (max_exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(group['eps'])
                            else:
                                denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(group['eps'])

                            step_size = group['lr'] / bias_correction1
                            p.addcdiv_(exp_avg, denom, value=-step_size)

                    return loss
        """),
    ],
}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests(
    "08_optimizers", MUTANTS, CORRECT)
