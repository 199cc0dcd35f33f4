"""06_activations: the checks accept the solution and reject known-wrong answers, naming the concept."""

import pytest
from mutantkit import make_tests
from nbharness import run_exercise

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
        """, "it called torch.relu"),
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
        ("maps NaN to 0", """
            def relu(x):
                return torch.where(x > 0, x, torch.zeros_like(x))
        """, "relu(nan) = nan"),
        ("mask product: NaN at -inf", """
            def relu(x):
                return x * (x > 0)
        """, "relu(-inf) = 0"),
        ("float32 zeros promote float16", """
            def relu(x):
                return torch.where(x <= 0, torch.zeros(x.shape, device=x.device), x)
        """, "(torch.float16 in, torch.float16 out)"),
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
        ("two halves: NaN becomes 0", """
            def leaky_relu(x, negative_slope=0.01):
                return torch.where(x > 0, x, 0.0) + negative_slope * torch.where(x <= 0, x, 0.0)
        """, "nan stays nan"),
        ("slope tensor in float32", """
            def leaky_relu(x, negative_slope=0.01):
                return x * torch.where(x > 0, 1.0, negative_slope)
        """, "(torch.float16 in, torch.float16 out)"),
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
                neg = torch.where(x > 0, torch.zeros_like(x), x)
                return torch.exp(neg) / (torch.exp(neg) + torch.exp(-pos))
        """, "keep the input's dtype"),
        ("delegates", """
            def sigmoid(x):
                return x.sigmoid()
        """, "delegates"),
        ("negative part as x minus positive: NaN at -inf", """
            def sigmoid(x):
                neg = torch.clamp(x, max=0)
                pos = x - neg
                return torch.exp(neg) / (torch.exp(neg) + torch.exp(-pos))
        """, "sigmoid(-inf) = 0"),
        ("positive part as x minus negative: NaN at +inf", """
            def sigmoid(x):
                pos = torch.where(x > 0, x, torch.zeros_like(x))
                neg = x - pos
                return torch.exp(neg) / (torch.exp(neg) + torch.exp(-pos))
        """, "inf - inf = nan"),
        ("float16 upcast", """
            def sigmoid(x):
                if x.dtype in (torch.float16, torch.bfloat16):
                    x = x.float()
                zero = torch.zeros_like(x)
                pos, neg = torch.where(x > 0, x, zero), torch.where(x > 0, zero, x)
                return torch.exp(neg) / (torch.exp(neg) + torch.exp(-pos))
        """, "do not convert with .float()"),
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
        ("float32 ones promote float16", """
            def tanh(x):
                return 2 * sigmoid(2 * x) - torch.ones(x.shape, device=x.device)
        """, "(torch.float16 in, torch.float16 out)"),
        ("sign times |x| formula: NaN at inf", """
            def tanh(x):
                e = torch.exp(-2 * torch.where(x >= 0, x, -x))
                return torch.where(x >= 0, 1.0, -1.0).to(x.dtype) * (1 - e) / (1 + e) + 0 * x
        """, "tanh(±inf) = ±1"),
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
        ("upcasts float16 to float32", """
            def softmax(x, dim):
                if x.dtype == torch.float16:
                    x = x.float()  # 'safer' in float32, but the result must stay float16
                e = torch.exp(x - x.amax(dim=dim, keepdim=True))
                return e / e.sum(dim=dim, keepdim=True)
        """, "(torch.float16 in, torch.float16 out)"),
        ("NaN and inf replaced first", """
            def softmax(x, dim):
                x = torch.nan_to_num(x)
                e = torch.exp(x - x.amax(dim=dim, keepdim=True))
                return e / e.sum(dim=dim, keepdim=True)
        """, "a slice holding nan is nan throughout"),
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
        ("computes half precision in float32", """
            def log_softmax(x, dim):
                if x.dtype in (torch.float16, torch.bfloat16):
                    x = x.float()
                shifted = x - x.amax(dim=dim, keepdim=True)
                return shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))
        """, "keep the input's dtype"),
        ("NaN and inf replaced first", """
            def log_softmax(x, dim):
                x = torch.nan_to_num(x)  # no inf or NaN, please
                shifted = x - x.amax(dim=dim, keepdim=True)
                return shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))
        """, "a -inf logit (a masked position)"),
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
        ("backward returns None", """
            class ReLUFunction(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    return torch.where(x > 0, x, torch.zeros_like(x))
                @staticmethod
                def backward(ctx, grad_output):
                    return None
        """, "returned none"),
        ("forward differentiated by autograd, not by backward", """
            class ReLUFunction(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    return x
                @staticmethod
                def backward(ctx, grad_output):
                    return grad_output
        """, "x where x > 0 and 0 elsewhere"),
    ],
}

CORRECT = {
    "relu": [
        ("torch's threshold rule, scalar 0", """
            def relu(x):
                return torch.where(x <= 0, 0.0, x)
        """),
        ("masked_fill", """
            def relu(x):
                return x.masked_fill(x <= 0, 0)
        """),
    ],
    "leaky_relu": [
        ("slope branch first", """
            def leaky_relu(x, negative_slope=0.01):
                return torch.where(x <= 0, x * negative_slope, x)
        """),
    ],
    "sigmoid": [
        ("textbook split on the sign", """
            def sigmoid(x):
                e = torch.exp(torch.where(x > 0, -x, x))  # exp(-|x|), without abs()
                return torch.where(x > 0, 1 / (1 + e), e / (1 + e))
        """),
        ("computed in float32, returned in the input's dtype", """
            def sigmoid(x):
                x32 = x.float()
                e = torch.exp(torch.where(x32 > 0, -x32, x32))
                return torch.where(x32 > 0, 1 / (1 + e), e / (1 + e)).to(x.dtype)
        """),
    ],
    "tanh": [
        ("from exp(-2|x|), without sigmoid", """
            def tanh(x):
                a = torch.where(x >= 0, x, -x)
                e = torch.exp(-2 * a)
                t = (1 - e) / (1 + e)
                return torch.where(x >= 0, t, -t)
        """),
    ],
    "softmax": [
        ("exp(x - logsumexp), log-sum-exp by hand", """
            def softmax(x, dim):
                m = x.amax(dim=dim, keepdim=True)
                lse = m + torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True))
                return torch.exp(x - lse)
        """),
    ],
    "log_softmax": [
        ("x - max - log(sum(exp))", """
            def log_softmax(x, dim):
                m = x.amax(dim=dim, keepdim=True)
                return x - m - torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True))
        """),
        ("JAX style: a detached, finite shift", """
            def log_softmax(x, dim):
                m = x.amax(dim=dim, keepdim=True).detach()
                m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
                shifted = x - m
                return shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))
        """),
    ],
    "ReLUFunction": [
        ("mask kept on ctx, clamp in forward", """
            class ReLUFunction(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    ctx.mask = x > 0
                    return x.clamp(min=0)
                @staticmethod
                def backward(ctx, grad_output):
                    return grad_output.masked_fill(~ctx.mask, 0)
        """),
    ],
}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests(
    "06_activations", MUTANTS, CORRECT)

_WRONG_SIGMOID = """
def sigmoid(x):
    return 1 / (1 + torch.exp(-x))  # its gradient is NaN at x = -1e4
"""


@pytest.mark.parametrize("mode", ["split", "inline"])
def test_a_wrong_sigmoid_is_charged_to_sigmoid_only(mode: str) -> None:
    """tanh written with the student's sigmoid keeps its points when only sigmoid is wrong."""
    wrong = run_exercise("06_activations", "sigmoid", _WRONG_SIGMOID, mode=mode)
    assert wrong.points < wrong.max_points
    tanh = _WRONG_SIGMOID + "\ndef tanh(x):\n    return 2 * sigmoid(2 * x) - 1\n"
    outcome = run_exercise("06_activations", "tanh", tanh, mode=mode)
    assert outcome.points == outcome.max_points > 0, outcome.messages


def test_scenarios_run_on_the_course_device(monkeypatch) -> None:
    """COURSE_DEVICE decides where the answer runs; a dtype the device lacks stays on the CPU."""
    import torch

    from course.checks import activations
    from course.checks._compare import place

    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    records = activations.relu.record([lambda x: x.clamp(min=0)], {"seed": 0})["data"]
    assert records and all(r["device"] == "cpu" for r in records)
    f64, f32 = torch.zeros(2, dtype=torch.float64), torch.zeros(2)
    assert all(t.device.type == "cpu" for t in place([f32, f64], torch.device("mps")))


def test_answers_that_only_work_through_each_other_fail_both(tmp_path):
    """softmax via log_softmax and log_softmax via softmax: each passes with the other swapped for
    the reference, and recurses forever in the student's kernel. The judge fails both."""
    from submissions import grade, scores, submission

    loop = {"softmax": "import torch\ndef softmax(x, dim=-1):\n    return torch.exp(log_softmax(x, dim))\n",
            "log_softmax": ("import torch\ndef log_softmax(x, dim=-1):\n"
                            "    idx = x.argmax(dim=dim, keepdim=True)\n"
                            "    m = x.gather(dim, idx)\n"
                            "    return x - m + torch.log(softmax(x, dim).gather(dim, idx))\n")}
    report, _ = grade(submission(tmp_path, "06_activations", loop))
    got = scores(report)
    assert got["test_softmax"] == 0 and got["test_log_softmax"] == 0
    assert "loop" in next(t.message for t in report.tests if t.grade_id == "test_softmax")
