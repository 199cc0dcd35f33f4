"""04_nn_module: the checks accept the solution and reject known-wrong answers, naming the concept."""

import pytest
from mutantkit import make_tests

pytestmark = pytest.mark.nb04

# A correct Linear, written out so that each mutant below changes one thing.
_INIT_OK = """
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features))
        else:
            self.register_parameter("bias", None)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            b = 1 / math.sqrt(in_features)
            nn.init.uniform_(self.bias, -b, b)
"""
_FORWARD_OK = """
    def forward(self, x):
        out = x @ self.weight.T
        return out if self.bias is None else out + self.bias
"""
_HEAD = """
import math
import torch
from torch import nn

class Linear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
"""

LINEAR = [
    ("transposed weight", _HEAD + """
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if bias:
            nn.init.uniform_(self.bias, -1 / math.sqrt(in_features), 1 / math.sqrt(in_features))

    def forward(self, x):
        out = x @ self.weight
        return out if self.bias is None else out + self.bias
    """, "transposed"),
    ("no bias parameter", _HEAD + """
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
    """ + _FORWARD_OK, "needs a bias parameter"),
    ("bias not added in forward", _HEAD + _INIT_OK + """
    def forward(self, x):
        return x @ self.weight.T
    """, "bias was not added"),
    ("bias created even when bias=False", _HEAD + """
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.uniform_(self.bias, -1 / math.sqrt(in_features), 1 / math.sqrt(in_features))
    """ + _FORWARD_OK, "bias=false there must be no bias parameter"),
    ("randn initialisation", _HEAD + """
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.randn(out_features)) if bias else None
    """ + _FORWARD_OK, "initialise weight like nn.linear"),
    ("bias drawn with the wrong bound", _HEAD + """
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if bias:
            nn.init.uniform_(self.bias, -1.0, 1.0)
    """ + _FORWARD_OK, "initialise bias like nn.linear"),
    ("weight as a plain tensor", _HEAD + """
        w = torch.empty(out_features, in_features)
        nn.init.kaiming_uniform_(w, a=math.sqrt(5))
        self.weight = w.requires_grad_()
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features))
            nn.init.uniform_(self.bias, -1 / math.sqrt(in_features), 1 / math.sqrt(in_features))
        else:
            self.register_parameter("bias", None)
    """ + _FORWARD_OK, "plain tensor attribute"),
    ("subclasses nn.Linear", """
import torch
from torch import nn

class Linear(nn.Linear):
    pass
    """, "delegates"),
    ("is nn.Linear", """
from torch import nn
Linear = nn.Linear
    """, "delegates"),
    ("wraps an nn.Linear", _HEAD + """
        self.inner = nn.Linear(in_features, out_features, bias)
        self.weight, self.bias = self.inner.weight, self.inner.bias

    def forward(self, x):
        return self.inner(x)
    """, "delegates"),
    ("calls F.linear through an alias", """
import math
import torch
from torch import nn
import torch.nn.functional as F
_affine = getattr(F, "lin" + "ear")

class Linear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
""" + _INIT_OK + """
    def forward(self, x):
        return _affine(x, self.weight, self.bias)
    """, "pytorch reference"),
    ("calls F.linear through a captured reference", """
import math
import torch
from torch import nn
import torch.nn.functional as F
_OPS = {"affine": F.linear}

class Linear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
""" + _INIT_OK + """
    def forward(self, x):
        return _OPS["affine"](x, self.weight, self.bias)
    """, "delegates to the pytorch reference"),
    ("2-d inputs only (addmm)", _HEAD + _INIT_OK + """
    def forward(self, x):
        if self.bias is None:
            return x @ self.weight.T
        return torch.addmm(self.bias, x, self.weight.T)
    """, "(n, *, in_features)"),
    ("forward under no_grad", _HEAD + _INIT_OK + """
    def forward(self, x):
        with torch.no_grad():
            out = x @ self.weight.T
            return out if self.bias is None else out + self.bias
    """, "differentiable"),
    # issue 11: a crash on the bias=False path must say where and which concept it probes
    ("bias=False crashes in __init__", _HEAD + """
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        b = 1 / math.sqrt(in_features)
        nn.init.uniform_(self.bias, -b, b)
    """ + _FORWARD_OK, "while calling `Linear(3, 4, bias=False)`"),
    ("bias=False crashes in forward", _HEAD + _INIT_OK + """
    def forward(self, x):
        return x @ self.weight.T + self.bias
    """, "on a case that checks bias=False: a layer without a bias"),
    ("positional names other than nn.Linear's", """
import math
import torch
from torch import nn

class Linear(nn.Module):
    def __init__(self, n_in, n_out, bias=True):
        super().__init__()
        self.in_features, self.out_features = n_in, n_out
        self.weight = nn.Parameter(torch.empty(n_out, n_in))
        if bias:
            self.bias = nn.Parameter(torch.empty(n_out))
        else:
            self.register_parameter("bias", None)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            nn.init.uniform_(self.bias, -1 / math.sqrt(n_in), 1 / math.sqrt(n_in))
    """ + _FORWARD_OK, "nn.linear's keyword names"),
    ("bias drawn before the weight", _HEAD + """
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features))
            nn.init.uniform_(self.bias, -1 / math.sqrt(in_features), 1 / math.sqrt(in_features))
        else:
            self.register_parameter("bias", None)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
    """ + _FORWARD_OK, "before drawing the bias"),
    ("overrides state_dict with other names", _HEAD + _INIT_OK + """
    def state_dict(self, *args, **kwargs):
        return {"w": self.weight.detach(), "b": self.bias}
    """ + _FORWARD_OK, "state_dict keys must be exactly nn.linear's"),
]

_RM_HEAD = """
import torch
from torch import nn

class RunningMean(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
"""
_RM_FORWARD = """
    def forward(self, x):
        if self.training:
            batch_mean = x.mean(dim=0)
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * batch_mean)
            return x - batch_mean
        return x - self.running_mean
"""

RUNNING_MEAN = [
    ("running_mean as a Parameter", _RM_HEAD + """
        self.running_mean = nn.Parameter(torch.zeros(num_features), requires_grad=False)
    """ + _RM_FORWARD, "not an nn.parameter"),
    ("running_mean as a plain attribute", _RM_HEAD + """
        self.running_mean = torch.zeros(num_features)
    """ + _RM_FORWARD, "register_buffer"),
    ("non-persistent buffer", _RM_HEAD + """
        self.register_buffer("running_mean", torch.zeros(num_features), persistent=False)
    """ + _RM_FORWARD, "persistent"),
    ("updates in eval too", _RM_HEAD + """
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        batch_mean = x.mean(dim=0)
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * batch_mean)
        return x - batch_mean if self.training else x - self.running_mean
    """, "eval mode running_mean must not change"),
    ("momentum the wrong way round", _RM_HEAD + """
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        if self.training:
            batch_mean = x.mean(dim=0)
            with torch.no_grad():
                self.running_mean.mul_(self.momentum).add_((1 - self.momentum) * batch_mean)
            return x - batch_mean
        return x - self.running_mean
    """, "wrong way round"),
    ("gradients flow into the buffer", _RM_HEAD + """
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        if self.training:
            batch_mean = x.mean(dim=0)
            self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * batch_mean
            return x - batch_mean
        return x - self.running_mean
    """, "without tracking gradients"),
    ("batch mean in eval", _RM_HEAD + """
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        batch_mean = x.mean(dim=0)
        if self.training:
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * batch_mean)
        return x - batch_mean
    """, "x − running_mean"),
    ("returns x - running_mean in training", _RM_HEAD + """
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * x.mean(dim=0))
        return x - self.running_mean
    """, "x − batch_mean"),
    ("detached batch mean in the output", _RM_HEAD + """
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        if self.training:
            batch_mean = x.mean(dim=0).detach()
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * batch_mean)
            return x - batch_mean
        return x - self.running_mean
    """, "flow through batch_mean"),
    ("batch mean computed under no_grad", _RM_HEAD + """
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                batch_mean = x.mean(dim=0)
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * batch_mean)
            return x - batch_mean
        return x - self.running_mean
    """, "flow through batch_mean"),
    ("whole forward under no_grad", _RM_HEAD + """
        self.register_buffer("running_mean", torch.zeros(num_features))

    @torch.no_grad()
    def forward(self, x):
        if self.training:
            batch_mean = x.mean(dim=0)
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * batch_mean)
            return x - batch_mean
        return x - self.running_mean
    """, "must stay differentiable"),
    ("crashes in eval mode", _RM_HEAD + """
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        if self.training:
            batch_mean = x.mean(dim=0)
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * batch_mean)
            return x - batch_mean
        return x - self.running_mean.unsqueeze(1)
    """, "in eval mode, x of shape"),
    ("mean over the features instead of the batch", _RM_HEAD + """
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        if self.training:
            batch_mean = x.mean(dim=1, keepdim=True)
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * x.mean(dim=0))
            return x - batch_mean
        return x - self.running_mean
    """, "mean of this batch over its rows"),
    ("delegates to BatchNorm1d", _RM_HEAD + """
        self.bn = nn.BatchNorm1d(num_features, momentum=momentum, affine=False)
        self.register_buffer("running_mean", self.bn.running_mean)

    def forward(self, x):
        return x - (x.mean(0) if self.training else self.running_mean)
    """, "delegates"),
]

COUNT = [
    ("counts shared parameters twice", """
        def count_parameters(model, trainable_only=True):
            return sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False)
                       if p.requires_grad or not trainable_only)
    """, "counted once"),
    ("per-module loop repeats shared parameters", """
        def count_parameters(model, trainable_only=True):
            total = 0
            for module in model.modules():
                for p in module.parameters(recurse=False):
                    if p.requires_grad or not trainable_only:
                        total += p.numel()
            return total
    """, "counted once"),
    ("ignores trainable_only", """
        def count_parameters(model, trainable_only=True):
            return sum(p.numel() for p in model.parameters())
    """, "trainable_only=true"),
    ("always trainable only", """
        def count_parameters(model, trainable_only=True):
            return sum(p.numel() for p in model.parameters() if p.requires_grad)
    """, "frozen ones too"),
    ("counts tensors", """
        def count_parameters(model, trainable_only=True):
            return len([p for p in model.parameters() if p.requires_grad or not trainable_only])
    """, "elements, not tensors"),
    ("counts the state_dict", """
        def count_parameters(model, trainable_only=True):
            return sum(t.numel() for t in model.state_dict(keep_vars=True).values()
                       if t.requires_grad or not trainable_only)
    """, "counted once"),
    ("counts buffers too", """
        def count_parameters(model, trainable_only=True):
            n = sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
            return n + sum(b.numel() for b in model.buffers())
    """, "buffers"),
    ("returns a tensor", """
        import torch
        def count_parameters(model, trainable_only=True):
            return torch.tensor(sum(p.numel() for p in model.parameters()
                                    if p.requires_grad or not trainable_only))
    """, "python int"),
    ("returns a float", """
        def count_parameters(model, trainable_only=True):
            return float(sum(p.numel() for p in model.parameters()
                             if p.requires_grad or not trainable_only))
    """, "python int"),
    ("unfreezes the model to count", """
        def count_parameters(model, trainable_only=True):
            if not trainable_only:
                model.requires_grad_(True)
            return sum(p.numel() for p in model.parameters() if p.requires_grad)
    """, "must not change the model"),
]

# Correct answers written another way (torch's own source, a textbook): each keeps every point.
LINEAR_OK = [
    ("torch's nn.Linear source: reset_parameters, extra_repr, factory kwargs", """
import math
import torch
from torch import nn
from torch.nn import init
from torch.nn.parameter import Parameter

class Linear(nn.Module):
    __constants__ = ["in_features", "out_features"]
    in_features: int
    out_features: int
    weight: torch.Tensor

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device=None, dtype=None) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(torch.empty((out_features, in_features), **factory_kwargs))
        if bias:
            self.bias = Parameter(torch.empty(out_features, **factory_kwargs))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        output = torch.matmul(input, self.weight.t())
        if self.bias is not None:
            output = output + self.bias
        return output

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")
    """),
    ("textbook: uniform on ±1/sqrt(fan_in), einsum forward", """
import math
import torch
from torch import nn

class Linear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.bias = (nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
                     if bias else None)

    def forward(self, x):
        y = torch.einsum("...i,oi->...o", x, self.weight)
        return y if self.bias is None else y + self.bias
    """),
]

RUNNING_MEAN_OK = [
    ("BatchNorm-source style: reset_running_stats, lerp_, extra_repr", """
import torch
from torch import nn

class RunningMean(nn.Module):
    def __init__(self, num_features: int, momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features = num_features
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.reset_running_stats()

    def reset_running_stats(self) -> None:
        self.running_mean.zero_()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return input - self.running_mean
        mean = input.mean(0)
        self.running_mean.lerp_(mean.detach(), self.momentum)
        return input - mean

    def extra_repr(self) -> str:
        return f"{self.num_features}, momentum={self.momentum}"
    """),
    ("reassigns the buffer from a detached mean", """
import torch
from torch import nn

class RunningMean(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        if self.training:
            mu = x.mean(dim=0)
            m = self.momentum
            self.running_mean = (1 - m) * self.running_mean + m * mu.detach()
            return x - mu
        return x - self.running_mean
    """),
]

COUNT_OK = [
    ("a loop with an early continue", """
        def count_parameters(model, trainable_only=True):
            total = 0
            for p in model.parameters():
                if trainable_only and not p.requires_grad:
                    continue
                total += p.numel()
            return total
    """),
    ("deduplicates by identity across modules", """
        def count_parameters(model, trainable_only=True):
            unique = {id(p): p for m in model.modules() for p in m.parameters(recurse=False)}
            return sum(p.numel() for p in unique.values()
                       if not trainable_only or p.requires_grad)
    """),
]

MUTANTS = {"Linear": LINEAR, "RunningMean": RUNNING_MEAN, "count_parameters": COUNT}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests(
    "04_nn_module", MUTANTS,
    {"Linear": LINEAR_OK, "RunningMean": RUNNING_MEAN_OK, "count_parameters": COUNT_OK})


# --- device rules, judged without an accelerator: the verdict reads where results were recorded ---

def _solution_namespace() -> dict:
    from nbharness import _exec, parts

    ns: dict = {"__name__": "__main__"}
    p = parts("04_nn_module")
    for gid, src in [*p.setup, *p.answers.items()]:
        _exec(src, f"04_nn_module:{gid}", ns)
    return ns


@pytest.mark.parametrize(("check_name", "answer", "phrase"), [
    ("Linear_forward", "Linear", "on the input's device"),
    ("RunningMean", "RunningMean", "module.to(device) must move running_mean"),
])
def test_results_left_on_the_cpu_fail_on_an_accelerator(check_name, answer, phrase):
    """A record made on the CPU but claiming cuda: every result is on the wrong device."""
    from course.checks import CheckFailure, nn_module
    from course.checks import _transcript as tr

    check = getattr(nn_module, check_name)
    record = tr.roundtrip(check.record([_solution_namespace()[answer]], {}))
    check.judge(record, {})  # as recorded (cpu): full marks
    record["data"]["device"] = "cuda"
    with pytest.raises(CheckFailure, match=phrase.replace("(", r"\(").replace(")", r"\)")):
        check.judge(record, {})


def test_no_float64_on_mps():
    from course.checks.nn_module import linear

    runs = linear._forward_runs(True, "mps")
    assert all(dev == "cpu" for *_, dtype, dev, _style in runs if dtype == "float64")
