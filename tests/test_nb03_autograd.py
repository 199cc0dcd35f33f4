"""03_autograd: the checks accept the solution and reject known-wrong answers, naming the concept."""

import pytest
from mutantkit import make_tests

pytestmark = pytest.mark.nb03

MUTANTS = {
    "linear_mse_grads": [
        ("missing factor 2", """
            def linear_mse_grads(w, b, x, y):
                g = (x @ w.T + b - y) / y.numel()
                return g.T @ x, g.sum(dim=0)
        """, "factor 2 is missing"),
        ("divides by the batch size only", """
            def linear_mse_grads(w, b, x, y):
                g = 2 * (x @ w.T + b - y) / x.shape[0]
                return g.T @ x, g.sum(dim=0)
        """, "N * out_features, not only by the batch size"),
        ("transposed dw", """
            def linear_mse_grads(w, b, x, y):
                g = 2 * (x @ w.T + b - y) / y.numel()
                return x.T @ g, g.sum(dim=0)
        """, "dw is transposed"),
        ("db not summed over the batch", """
            def linear_mse_grads(w, b, x, y):
                g = 2 * (x @ w.T + b - y) / y.numel()
                return g.T @ x, g
        """, "not summed over the batch"),
        ("db averaged over the batch", """
            def linear_mse_grads(w, b, x, y):
                g = 2 * (x @ w.T + b - y) / y.numel()
                return g.T @ x, g.mean(dim=0)
        """, "averaged over the batch"),
        ("sign flipped", """
            def linear_mse_grads(w, b, x, y):
                g = 2 * (y - x @ w.T - b) / y.numel()
                return g.T @ x, g.sum(dim=0)
        """, "sign is flipped"),
        ("uses backward", """
            def linear_mse_grads(w, b, x, y):
                w = w.detach().clone().requires_grad_()
                b = b.detach().clone().requires_grad_()
                ((x @ w.T + b - y) ** 2).mean().backward()
                return w.grad, b.grad
        """, "delegates"),
        ("autograd hidden in a helper", """
            import torch as _t
            def _helper(w, b, x, y):
                w, b = w.clone().requires_grad_(), b.clone().requires_grad_()
                return _t.autograd.grad(((x @ w.T + b - y) ** 2).mean(), (w, b))
            def linear_mse_grads(w, b, x, y):
                return tuple(_helper(w, b, x, y))
        """, "delegates"),
        ("backward through a helper, then .grad", """
            def _loss(w, b, x, y):
                return ((x @ w.T + b - y) ** 2).mean()
            def linear_mse_grads(w, b, x, y):
                w, b = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
                _loss(w, b, x, y).backward()
                return w.grad.detach(), b.grad.detach()
        """, "delegates"),
        ("modifies y in place", """
            def linear_mse_grads(w, b, x, y):
                r = y
                r -= x @ w.T + b  # r is y itself: this changes the caller's y
                g = -2 * r / r.numel()
                return g.T @ x, g.sum(dim=0)
        """, "must not modify its inputs"),
        ("accumulates into torch.zeros(shape)", """
            def linear_mse_grads(w, b, x, y):
                dw, db = torch.zeros(w.shape), torch.zeros(b.shape)
                g = 2 * (x @ w.T + b - y) / y.numel()
                for n in range(x.shape[0]):
                    dw += torch.outer(g[n], x[n])
                    db += g[n]
                return dw, db
        """, "inputs' dtype"),
    ],
}

CORRECT = {
    "linear_mse_grads": [
        ("einsum", """
            def linear_mse_grads(w, b, x, y):
                g = 2 * (torch.einsum("ni,oi->no", x, w) + b - y) / y.numel()
                return torch.einsum("no,ni->oi", g, x), torch.einsum("no->o", g)
        """),
        ("means instead of one division", """
            def linear_mse_grads(w, b, x, y):
                n, out = y.shape
                err = torch.addmm(b, x, w.t()) - y  # b + x @ w.T
                dw = 2 * err.t().mm(x) / n / out
                db = 2 * err.mean(dim=0) / out
                return dw, db
        """),
        ("per-sample loop into zeros_like", """
            def linear_mse_grads(w, b, x, y):
                dw, db = torch.zeros_like(w), torch.zeros_like(b)
                scale = 2.0 / (x.shape[0] * w.shape[0])
                for xn, yn in zip(x, y):
                    err = w @ xn + b - yn
                    dw += scale * torch.outer(err, xn)
                    db += scale * err
                return dw, db
        """),
        ("named residual, sum then divide", """
            def linear_mse_grads(w, b, x, y):
                residual = x @ w.T + b - y
                count = residual.shape[0] * residual.shape[1]
                return 2 * residual.T @ x / count, 2 * residual.sum(0) / count
        """),
    ],
}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests(
    "03_autograd", MUTANTS, CORRECT)
