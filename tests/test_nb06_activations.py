"""06_activations: the checks accept the solution and reject known-wrong answers, naming the concept."""

import pytest
from mutantkit import make_tests

pytestmark = pytest.mark.nb06

MUTANTS = {
    "relu": [
        ("gradient 1 at zero", """
            def relu(x):
                return torch.where(x >= 0, x, torch.zeros_like(x))
        """, "at exactly 0 must be 0"),
        ("maximum splits the tie", """
            def relu(x):
                return torch.maximum(x, torch.zeros_like(x))
        """, "at exactly 0 must be 0"),
        ("delegates", """
            def relu(x):
                return F.relu(x)
        """, "delegates"),
        ("delegates at run time", """
            def relu(x):
                return getattr(torch, "re" + "lu")(x)
        """, "calls the pytorch reference"),
        ("in place", """
            def relu(x):
                x[x < 0] = 0
                return x
        """, "must not modify its input"),
        ("abs", """
            def relu(x):
                return x.abs()
        """, "x where x > 0 and 0 everywhere else"),
        ("detached", """
            def relu(x):
                return torch.where(x.detach() > 0, x.detach(), 0.0)
        """, "cut off from autograd"),
    ],
    "leaky_relu": [
        ("slope on positives", """
            def leaky_relu(x, negative_slope=0.01):
                return torch.where(x > 0, negative_slope * x, x)
        """, "negative_slope * x elsewhere"),
        ("gradient 1 at zero", """
            def leaky_relu(x, negative_slope=0.01):
                return torch.where(x >= 0, x, negative_slope * x)
        """, "at exactly 0 must be negative_slope"),
        ("max formula", """
            def leaky_relu(x, negative_slope=0.01):
                return torch.maximum(x, negative_slope * x)
        """, "max(x, slope*x)"),
        ("hard-coded slope", """
            def leaky_relu(x, negative_slope=0.01):
                return torch.where(x > 0, x, 0.01 * x)
        """, "any negative_slope"),
        ("wrong default", """
            def leaky_relu(x, negative_slope=0.1):
                return torch.where(x > 0, x, negative_slope * x)
        """, "default is 0.01"),
        ("delegates", """
            def leaky_relu(x, negative_slope=0.01):
                return torch.nn.functional.leaky_relu(x, negative_slope)
        """, "delegates"),
    ],
    "sigmoid": [
        ("exp over one plus exp", """
            def sigmoid(x):
                return torch.exp(x) / (1 + torch.exp(x))
        """, "exp of a large argument overflows"),
        ("naive: gradient NaN at -1e4", """
            def sigmoid(x):
                return 1 / (1 + torch.exp(-x))
        """, "gradient of sigmoid is nan"),
        ("abs-based, gradient 0 at 0", """
            def sigmoid(x):
                e = torch.exp(-x.abs())
                return torch.where(x >= 0, 1 / (1 + e), e / (1 + e))
        """, "at exactly 0 must be 0.25"),
        ("unsafe where", """
            def sigmoid(x):
                return torch.where(x >= 0, 1 / (1 + torch.exp(-x)), torch.exp(x) / (1 + torch.exp(x)))
        """, "both branches"),
        ("float32 result", """
            def sigmoid(x):
                x = x.float()
                pos = torch.where(x > 0, x, torch.zeros_like(x))
                neg = x - pos
                return torch.exp(neg) / (torch.exp(neg) + torch.exp(-pos))
        """, "keep the input's dtype"),
        ("delegates", """
            def sigmoid(x):
                return x.sigmoid()
        """, "delegates"),
    ],
    "tanh": [
        ("exp ratio", """
            def tanh(x):
                return (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x))
        """, "overflows"),
        ("sinh over cosh", """
            def tanh(x):
                return torch.sinh(x) / torch.cosh(x)
        """, "overflows"),
        ("forgot the factor 2", """
            def tanh(x):
                return 2 * sigmoid(x) - 1
        """, "2 * sigmoid(2x) - 1"),
        ("delegates", """
            def tanh(x):
                return torch.tanh(x)
        """, "delegates"),
        ("delegates to torch.sigmoid", """
            def tanh(x):
                return 2 * torch.sigmoid(2 * x) - 1
        """, "delegates"),
    ],
    "softmax": [
        ("no max subtraction", """
            def softmax(x, dim):
                e = torch.exp(x)
                return e / e.sum(dim=dim, keepdim=True)
        """, "subtract the maximum"),
        ("wrong dim", """
            def softmax(x, dim):
                e = torch.exp(x - x.amax(dim=-1, keepdim=True))
                return e / e.sum(dim=-1, keepdim=True)
        """, "along the given dim"),
        ("over all elements", """
            def softmax(x, dim):
                e = torch.exp(x - x.max())
                return e / e.sum()
        """, "along the given dim"),
        ("max over everything (underflow)", """
            def softmax(x, dim):
                e = torch.exp(x - x.max())
                return e / e.sum(dim=dim, keepdim=True)
        """, "subtract the maximum along dim"),
        ("delegates", """
            def softmax(x, dim):
                return x.softmax(dim)
        """, "delegates"),
        ("uses logsumexp", """
            def softmax(x, dim):
                return torch.exp(x - torch.logsumexp(x, dim, keepdim=True))
        """, "delegates"),
    ],
    "log_softmax": [
        ("log of softmax", """
            def log_softmax(x, dim):
                return torch.log(softmax(x, dim))
        """, "log-sum-exp trick"),
        ("forgets the shift", """
            def log_softmax(x, dim):
                shifted = x - x.amax(dim=dim, keepdim=True)
                return x - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))
        """, "off by a constant in each slice"),
        ("wrong dim", """
            def log_softmax(x, dim):
                shifted = x - x.amax(dim=-1, keepdim=True)
                return shifted - torch.log(torch.exp(shifted).sum(dim=-1, keepdim=True))
        """, "along the given dim"),
        ("uses logsumexp", """
            def log_softmax(x, dim):
                return x - torch.logsumexp(x, dim=dim, keepdim=True)
        """, "delegates"),
        ("delegates", """
            def log_softmax(x, dim):
                return F.log_softmax(x, dim)
        """, "delegates"),
    ],
    "ReLUFunction": [
        ("backward unmasked", """
            class ReLUFunction(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    ctx.save_for_backward(x)
                    return torch.where(x > 0, x, torch.zeros_like(x))
                @staticmethod
                def backward(ctx, grad_output):
                    return grad_output
        """, "unmasked"),
        ("backward mask >= 0", """
            class ReLUFunction(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    ctx.save_for_backward(x)
                    return torch.where(x > 0, x, torch.zeros_like(x))
                @staticmethod
                def backward(ctx, grad_output):
                    (x,) = ctx.saved_tensors
                    return grad_output * (x >= 0)
        """, "not x >= 0"),
        ("backward ignores grad_output", """
            class ReLUFunction(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    ctx.save_for_backward(x)
                    return torch.where(x > 0, x, torch.zeros_like(x))
                @staticmethod
                def backward(ctx, grad_output):
                    (x,) = ctx.saved_tensors
                    return (x > 0).to(grad_output.dtype)
        """, "multiply grad_output"),
        ("forward in place", """
            class ReLUFunction(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    x = x.detach()
                    x[x < 0] = 0
                    ctx.save_for_backward(x)
                    return x.clone()
                @staticmethod
                def backward(ctx, grad_output):
                    (x,) = ctx.saved_tensors
                    return grad_output * (x > 0)
        """, "must not modify its input"),
        ("not a Function", """
            class ReLUFunction:
                @staticmethod
                def apply(x):
                    return torch.where(x > 0, x, torch.zeros_like(x))
        """, "subclasses torch.autograd.Function"),
        ("forward delegates", """
            class ReLUFunction(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    ctx.save_for_backward(x)
                    return torch.relu(x)
                @staticmethod
                def backward(ctx, grad_output):
                    (x,) = ctx.saved_tensors
                    return grad_output * (x > 0)
        """, "delegates"),
        ("backward of the wrong sign", """
            class ReLUFunction(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    ctx.save_for_backward(x)
                    return torch.where(x > 0, x, torch.zeros_like(x))
                @staticmethod
                def backward(ctx, grad_output):
                    (x,) = ctx.saved_tensors
                    return grad_output * (x < 0)
        """, "grad_output * (x > 0)"),
    ],
}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests(
    "06_activations", MUTANTS)
