"""01_neural_networks: the checks accept the solution and reject known-wrong answers, naming the
concept."""

import pytest
from mutantkit import make_tests

pytestmark = pytest.mark.nb01


def _xor(model: str, *, seed: str = "torch.manual_seed(seed)", signature: str = "seed=0",
         ret: str = "model") -> str:
    """A train_xor_mlp that trains ``model`` on XOR like the solution does, with one thing changed."""
    return f"""
        def train_xor_mlp({signature}):
            {seed}
            x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
            y = torch.tensor([[0.0], [1.0], [1.0], [0.0]])
            model = {model}
            optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
            loss_fn = nn.BCEWithLogitsLoss()
            for _ in range(200):
                optimizer.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
            return {ret}
    """


_MLP = "nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))"

MUTANTS = {
    "neuron": [
        ("missing bias", """
            def neuron(x, w, b, activation):
                return activation(x @ w)
        """, "bias is missing"),
        ("activation not applied", """
            def neuron(x, w, b, activation):
                return x @ w + b
        """, "activation was not applied"),
        ("activation before bias", """
            def neuron(x, w, b, activation):
                return activation(x @ w) + b
        """, "BEFORE the activation"),
        ("sums over the whole batch", """
            def neuron(x, w, b, activation):
                return activation((x * w).sum() + b)
        """, "one number per sample"),
        ("delegates to F.linear", """
            import torch.nn.functional as F
            def neuron(x, w, b, activation):
                return activation(F.linear(x, w.unsqueeze(0)).squeeze(-1) + b)
        """, "delegates"),
    ],
    "train_xor_mlp": [
        ("single-layer perceptron", _xor("nn.Linear(2, 1)"), "not linearly separable"),
        ("two layers, no activation",
         _xor("nn.Sequential(nn.Linear(2, 8), nn.Linear(8, 1))"), "linear in its inputs"),
        ("returns sigmoid probabilities", _xor(
            "nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))",
            ret="nn.Sequential(model, nn.Sigmoid())"), "probabilities"),
        ("output shape (N,)", _xor(_MLP, ret="nn.Sequential(model, nn.Flatten(0))"), "(N, 1)"),
        ("not seeded", _xor(_MLP, seed="pass"), "not deterministic"),
        ("no seed argument", _xor(_MLP, seed="pass", signature=""), "seed"),
        ("untrained", """
            def train_xor_mlp(seed=0):
                torch.manual_seed(seed)
                return nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
        """, "does not classify all four"),
    ],
}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests(
    "01_neural_networks", MUTANTS)
