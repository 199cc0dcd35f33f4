"""00_setup: the warm-up check accepts the solution and rejects known-wrong answers."""

import pytest
from mutantkit import make_tests

pytestmark = pytest.mark.nb00

MUTANTS = {
    "mean_square": [
        ("sum", "def mean_square(x):\n    return (x * x).sum()\n", "mean"),
        ("rms", "def mean_square(x):\n    return (x * x).mean().sqrt()\n", "mean of the squared"),
        ("python float", "def mean_square(x):\n    return (x * x).mean().item()\n", "torch.tensor"),
        ("mean over dim 0", "def mean_square(x):\n    return (x * x).mean(dim=0)\n", "0-d"),
        ("float32 always", "def mean_square(x):\n    return (x * x).float().mean()\n", "dtype"),
        ("delegates", """
            import torch.nn.functional as F
            def mean_square(x):
                return F.mse_loss(x, torch.zeros_like(x))
        """, "delegates"),
    ],
}

CORRECT = {
    "mean_square": [
        ("pow and sum over numel", """
            def mean_square(x):
                return x.pow(2).sum() / x.numel()
        """),
        ("square method", """
            import torch
            def mean_square(x):
                return torch.square(x).mean()
        """),
    ],
}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests("00_setup", MUTANTS, CORRECT)
