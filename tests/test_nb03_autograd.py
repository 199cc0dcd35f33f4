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
        """, "calls the pytorch reference"),
    ],
}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests(
    "03_autograd", MUTANTS)
