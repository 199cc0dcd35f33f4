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
    """, "calls the pytorch reference"),
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
]

MUTANTS = {"Linear": LINEAR, "RunningMean": RUNNING_MEAN, "count_parameters": COUNT}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests(
    "04_nn_module", MUTANTS)
