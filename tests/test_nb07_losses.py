"""07_losses: the checks accept the solution and reject known-wrong answers, naming the concept."""

import pytest
from mutantkit import make_tests

pytestmark = pytest.mark.nb07

_REDUCE = """
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(reduction)
"""


def _bce(body: str) -> str:
    return ("def binary_cross_entropy_with_logits(logits, target, reduction='mean'):\n"
            + body + _REDUCE)


def _ce(body: str, reduce: str | None = None) -> str:
    """A cross-entropy mutant: the solution with one step replaced."""
    steps = {
        "logp": """
    shifted = logits - logits.amax(dim=1, keepdim=True)
    log_p = shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))
""",
        "reduce": """
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / target_weight.sum()
""",
    }
    head = ("def cross_entropy(logits, target, weight=None, reduction='mean', ignore_index=-100,\n"
            "                  label_smoothing=0.0):\n"
            "    if reduction not in ('none', 'mean', 'sum'):\n"
            "        raise ValueError(reduction)\n"
            "    C = logits.shape[1]\n")
    return head + body.replace("{logp}", steps["logp"]) + (reduce or steps["reduce"])


_CE_MIDDLE = """{logp}
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    if weight is None:
        weight = torch.ones(C, dtype=logits.dtype, device=logits.device)
    target_weight = weight[safe] * valid
    loss = -log_p.gather(1, safe.unsqueeze(1)).squeeze(1) * target_weight
    if label_smoothing > 0:
        cw = weight.view([1, C] + [1] * (logits.dim() - 2))
        smooth = -(log_p * cw).sum(dim=1) * valid
        loss = (1 - label_smoothing) * loss + (label_smoothing / C) * smooth
"""

CORRECT = {
    "mse_loss": [
        ("square and sum / numel", """
            def mse_loss(pred, target, reduction="mean"):
                diff = pred - target
                loss = torch.square(diff)
                if reduction == "mean":
                    return loss.sum() / loss.numel()
                elif reduction == "sum":
                    return loss.sum()
                elif reduction == "none":
                    return loss
                else:
                    raise ValueError(reduction + " is not a valid value for reduction")
        """),
    ],
    "binary_cross_entropy_with_logits": [
        ("logaddexp", _bce("""
    loss = (1 - target) * logits + torch.logaddexp(torch.zeros_like(logits), -logits)
""")),
        ("torch.maximum for the shift (its tie gradient cancels)", _bce("""
    m = torch.maximum(-logits, torch.zeros_like(logits))
    loss = (1 - target) * logits + m + torch.log(torch.exp(-m) + torch.exp(-logits - m))
""")),
    ],
    "cross_entropy": [
        ("soft-target form with one_hot by comparison and torch.logsumexp", """
            def cross_entropy(logits, target, weight=None, reduction="mean", ignore_index=-100,
                              label_smoothing=0.0):
                if reduction not in ("none", "mean", "sum"):
                    raise ValueError(reduction)
                C = logits.shape[1]
                shape = [1, C] + [1] * (logits.dim() - 2)
                log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
                valid = target != ignore_index
                classes = torch.arange(C, device=logits.device).view(shape)
                one_hot = (target.unsqueeze(1) == classes).to(logits.dtype)
                q = (1 - label_smoothing) * one_hot + label_smoothing / C
                w = torch.ones(C, dtype=logits.dtype, device=logits.device) if weight is None else weight
                loss = -(q * w.view(shape) * log_p).sum(dim=1)
                loss = torch.where(valid, loss, torch.zeros_like(loss))
                if reduction == "none":
                    return loss
                if reduction == "sum":
                    return loss.sum()
                return loss.sum() / (one_hot * w.view(shape)).sum(dim=1)[valid].sum()
        """),
        ("gather on a hand-made log-softmax, masked_fill for ignored targets", """
            def cross_entropy(logits, target, weight=None, reduction="mean", ignore_index=-100,
                              label_smoothing=0.0):
                if reduction not in ("none", "mean", "sum"):
                    raise ValueError(f"{reduction} is not a valid value for reduction")
                C = logits.shape[1]
                m = logits.amax(dim=1, keepdim=True)
                log_p = logits - m - torch.log(torch.exp(logits - m).sum(dim=1, keepdim=True))
                ignored = target == ignore_index
                idx = target.masked_fill(ignored, 0)
                if weight is None:
                    weight = logits.new_ones(C)
                w = weight[idx].masked_fill(ignored, 0)
                nll = -log_p.gather(1, idx.unsqueeze(1)).squeeze(1)
                smooth = -(log_p * weight.view(1, C, *([1] * (logits.dim() - 2)))).sum(dim=1)
                loss = ((1 - label_smoothing) * nll * w
                        + label_smoothing / C * smooth.masked_fill(ignored, 0))
                if reduction == "none":
                    return loss
                return loss.sum() if reduction == "sum" else loss.sum() / w.sum()
        """),
    ],
}

MUTANTS = {
    "mse_loss": [
        ("mean over the batch only", """
            def mse_loss(pred, target, reduction="mean"):
                loss = (pred - target) ** 2
                if reduction == "none":
                    return loss
                if reduction == "sum":
                    return loss.sum()
                return loss.sum() / pred.shape[0]
        """, "not over the batch dimension only"),
        ("reduction ignored", """
            def mse_loss(pred, target, reduction="mean"):
                return ((pred - target) ** 2).mean()
        """, "was not applied"),
        ("absolute error", """
            def mse_loss(pred, target, reduction="mean"):
                loss = (pred - target).abs()
                if reduction == "none":
                    return loss
                return loss.mean() if reduction == "mean" else loss.sum()
        """, "mean of (pred - target) ** 2"),
        ("no ValueError", """
            def mse_loss(pred, target, reduction="mean"):
                loss = (pred - target) ** 2
                if reduction == "none":
                    return loss
                if reduction == "sum":
                    return loss.sum()
                return loss.mean()
        """, "must raise valueerror"),
        ("delegates", """
            def mse_loss(pred, target, reduction="mean"):
                return F.mse_loss(pred, target, reduction=reduction)
        """, "delegates"),
        ("delegates through a module", """
            def mse_loss(pred, target, reduction="mean"):
                return getattr(nn, "MSE" + "Loss")(reduction=reduction)(pred, target)
        """, "it called"),
        ("detached", """
            def mse_loss(pred, target, reduction="mean"):
                loss = (pred.detach() - target) ** 2
                if reduction == "none":
                    return loss
                return loss.mean() if reduction == "mean" else loss.sum()
        """, "cut off from autograd"),
    ],
    "binary_cross_entropy_with_logits": [
        ("sigmoid then log", _bce("""
    p = torch.sigmoid(logits)
    loss = -(target * torch.log(p) + (1 - target) * torch.log(1 - p))
"""), "takes log(0)"),
        ("naive log1p(exp(-x))", _bce("""
    loss = (1 - target) * logits + torch.log1p(torch.exp(-logits))
"""), "inf or nan on large logits"),
        ("abs formula: wrong gradient at 0", _bce("""
    loss = torch.clamp(logits, min=0) - logits * target + torch.log1p(torch.exp(-logits.abs()))
"""), "also at logit exactly 0"),
        ("reduction ignored", """
            def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
                m = torch.clamp(-logits, min=0)
                loss = (1 - target) * logits + m + torch.log(torch.exp(-m) + torch.exp(-logits - m))
                return loss.mean()
        """, "reduction='none' was not applied"),
        ("targets swapped", _bce("""
    m = torch.clamp(-logits, min=0)
    loss = target * logits + m + torch.log(torch.exp(-m) + torch.exp(-logits - m))
"""), "(1 - t)·x + log(1 + exp(-x))"),
        ("delegates to BCE", _bce("""
    loss = F.binary_cross_entropy(torch.sigmoid(logits), target, reduction="none")
"""), "delegates"),
        ("delegates to logsigmoid", _bce("""
    loss = -(target * F.logsigmoid(logits) + (1 - target) * F.logsigmoid(-logits))
"""), "delegates"),
    ],
    "cross_entropy": [
        ("ignore_index hard-coded to -100", _ce(_CE_MIDDLE.replace("target != ignore_index",
                                                                    "target != -100"))
         , "any other value, negative ones such as -1 included"),
        ("ignored positions dropped from 'none'", _ce(_CE_MIDDLE, """
    if reduction == "none":
        return loss[valid]
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / target_weight.sum()
"""), "'none' keeps a 0 there"),
        ("all-ignored mean guarded to 0", _ce(_CE_MIDDLE, """
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / target_weight.sum().clamp(min=1e-12)
"""), "0/0 = nan, as in torch"),
        ("weighted mean divides by N", _ce(_CE_MIDDLE, """
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum()
"""), "sum of the weights"),
        ("ignored targets in the denominator", _ce(_CE_MIDDLE, """
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / weight[safe].sum()
"""), "left out of the mean's denominator"),
        ("ignore_index crashes on -100", _ce("""{logp}
    if weight is None:
        weight = torch.ones(C, dtype=logits.dtype, device=logits.device)
    target_weight = weight[target]
    loss = -log_p.gather(1, target.unsqueeze(1)).squeeze(1) * target_weight
"""), "mask it out before indexing"),
        ("label smoothing over C-1 classes", _ce("""{logp}
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    if weight is None:
        weight = torch.ones(C, dtype=logits.dtype, device=logits.device)
    target_weight = weight[safe] * valid
    picked = -log_p.gather(1, safe.unsqueeze(1)).squeeze(1)
    loss = picked * target_weight
    if label_smoothing > 0:
        cw = weight.view([1, C] + [1] * (logits.dim() - 2))
        others = -(log_p * cw).sum(dim=1) - picked * target_weight
        loss = (1 - label_smoothing) * loss + (label_smoothing / (C - 1)) * others * valid
"""), "on every one of the c classes"),
        ("label smoothing ignores weight", _ce("""{logp}
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    if weight is None:
        weight = torch.ones(C, dtype=logits.dtype, device=logits.device)
    target_weight = weight[safe] * valid
    loss = -log_p.gather(1, safe.unsqueeze(1)).squeeze(1) * target_weight
    if label_smoothing > 0:
        smooth = -log_p.sum(dim=1) * valid
        loss = (1 - label_smoothing) * loss + (label_smoothing / C) * smooth
"""), "multiplied by weight[c]"),
        ("softmax without log-sum-exp", _ce(_CE_MIDDLE.replace("{logp}", """
    log_p = torch.log(torch.exp(logits) / torch.exp(logits).sum(dim=1, keepdim=True))
""")), "log-sum-exp trick"),
        ("classes on the last dim", _ce(_CE_MIDDLE.replace("{logp}", """
    shifted = logits - logits.amax(dim=-1, keepdim=True)
    log_p = shifted - torch.log(torch.exp(shifted).sum(dim=-1, keepdim=True))
""")), "classes are along dim 1"),
        ("reduction ignored", _ce(_CE_MIDDLE, """
    return loss.sum() / target_weight.sum()
"""), "was not applied"),
        ("delegates to nll_loss", _ce("""{logp}
    loss = F.nll_loss(log_p, target, weight=weight, reduction="none", ignore_index=ignore_index)
    target_weight = torch.ones_like(loss)
"""), "delegates"),
        ("delegates", """
            def cross_entropy(logits, target, weight=None, reduction="mean", ignore_index=-100,
                              label_smoothing=0.0):
                return F.cross_entropy(logits, target, weight, reduction=reduction,
                                       ignore_index=ignore_index, label_smoothing=label_smoothing)
        """, "delegates"),
        ("module under another name", """
            Loss = nn.CrossEntropyLoss
            def cross_entropy(logits, target, weight=None, reduction="mean", ignore_index=-100,
                              label_smoothing=0.0):
                return Loss(weight=weight, reduction=reduction, ignore_index=ignore_index,
                            label_smoothing=label_smoothing)(logits, target)
        """, "delegates"),
        ("module reached by a computed name", """
            def cross_entropy(logits, target, weight=None, reduction="mean", ignore_index=-100,
                              label_smoothing=0.0):
                loss = getattr(nn, "CrossEntropy" + "Loss")
                return loss(weight=weight, reduction=reduction, ignore_index=ignore_index,
                            label_smoothing=label_smoothing)(logits, target)
        """, "it called"),
    ],
}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests(
    "07_losses", MUTANTS, CORRECT)


def test_scenarios_run_on_the_course_device(monkeypatch) -> None:
    """COURSE_DEVICE decides where the answer runs."""
    from course.checks import losses

    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    record = losses.mse_loss.record([lambda p, t, reduction="mean": ((p - t) ** 2).mean()],
                                    {"seed": 0})["data"]
    assert record["cases"] and all(r["device"] == "cpu" for r in record["cases"])
