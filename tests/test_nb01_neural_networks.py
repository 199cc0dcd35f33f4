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
        ("hard-coded sigmoid instead of the given activation", """
            def neuron(x, w, b, activation):
                return torch.sigmoid(x @ w + b)
        """, "activation` argument you were given"),
        ("assumes b is a tensor", """
            def neuron(x, w, b, activation):
                return activation(x @ w + b.item())
        """, "b as a Python float"),
        ("b wrapped in a one-element tensor", """
            def neuron(x, w, b, activation):
                return activation(x @ w + torch.tensor([b], dtype=x.dtype, device=x.device))
        """, "0-d tensor (shape ())"),
        ("converts to float32", """
            def neuron(x, w, b, activation):
                return activation(x.float() @ w.float() + float(b))
        """, "keep x's dtype"),
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
        # two hidden units solve XOR from some starting weights only (seed 0 yes, seed 1 no)
        ("works only for lucky seeds", _xor("nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1))"),
         "any seed"),
        ("ignores its seed", _xor(_MLP, seed="torch.manual_seed(0)"), "ignores its seed"),
        ("returns the state_dict", _xor(_MLP, ret="model.state_dict()"), "the model itself"),
    ],
}

CORRECT = {
    "neuron": [
        ("torch.matmul", """
            def neuron(x, w, b, activation):
                return activation(torch.matmul(x, w) + b)
        """),
        ("einsum", """
            def neuron(x, w, b, activation):
                return activation(torch.einsum("...i,i->...", x, w) + b)
        """),
        ("elementwise product summed over the last dimension", """
            def neuron(x, w, b, activation):
                z = (x * w).sum(dim=-1)
                return activation(z + b)
        """),
        ("tensordot, bias first", """
            def neuron(x, w, b, activation):
                return activation(b + torch.tensordot(x, w, dims=1))
        """),
    ],
    "train_xor_mlp": [
        ("ReLU, SGD with momentum, a model class", """
            class XorNet(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.hidden = nn.Linear(2, 16)
                    self.out = nn.Linear(16, 1)

                def forward(self, x):
                    return self.out(torch.relu(self.hidden(x)))

            def train_xor_mlp(seed=0):
                torch.manual_seed(seed)
                x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
                y = torch.tensor([[0.0], [1.0], [1.0], [0.0]])
                model = XorNet()
                optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
                for _ in range(500):
                    loss = nn.functional.binary_cross_entropy_with_logits(model(x), y)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                return model.eval()
        """),
        ("a local generator seeds the initial weights", """
            def train_xor_mlp(seed=0):
                torch.manual_seed(seed)
                g = torch.Generator().manual_seed(seed)
                model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
                with torch.no_grad():
                    for p in model.parameters():
                        p.copy_(torch.randn(p.shape, generator=g))
                x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
                y = torch.tensor([[0.0], [1.0], [1.0], [0.0]])
                optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
                for _ in range(300):
                    optimizer.zero_grad()
                    nn.BCEWithLogitsLoss()(model(x), y).backward()
                    optimizer.step()
                return model
        """),
    ],
}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests(
    "01_neural_networks", MUTANTS, CORRECT)
