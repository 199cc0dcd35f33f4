"""11_mnist: the checks accept the solution and reject known-wrong answers, naming the concept."""

import pytest
from mutantkit import make_tests

pytestmark = pytest.mark.nb11

MUTANTS = {
    "train_one_epoch": [
        ("no zero_grad", """
            def train_one_epoch(model, loader, loss_fn, optimizer, device):
                model.train()
                total, count = 0.0, 0
                for x, y in loader:
                    x, y = x.to(device), y.to(device)
                    loss = loss_fn(model(x), y)
                    loss.backward()
                    optimizer.step()
                    total += loss.item() * len(y)
                    count += len(y)
                return total / count
        """, "zero_grad"),
        ("no model.train()", """
            def train_one_epoch(model, loader, loss_fn, optimizer, device):
                total, count = 0.0, 0
                for x, y in loader:
                    x, y = x.to(device), y.to(device)
                    optimizer.zero_grad()
                    loss = loss_fn(model(x), y)
                    loss.backward()
                    optimizer.step()
                    total += loss.item() * len(y)
                    count += len(y)
                return total / count
        """, "model.train()"),
        ("loss averaged over batches", """
            def train_one_epoch(model, loader, loss_fn, optimizer, device):
                model.train()
                losses = []
                for x, y in loader:
                    x, y = x.to(device), y.to(device)
                    optimizer.zero_grad()
                    loss = loss_fn(model(x), y)
                    loss.backward()
                    optimizer.step()
                    losses.append(loss.item())
                return sum(losses) / len(losses)
        """, "over samples, not batches"),
        ("returns a tensor", """
            def train_one_epoch(model, loader, loss_fn, optimizer, device):
                model.train()
                total, count = 0.0, 0
                for x, y in loader:
                    x, y = x.to(device), y.to(device)
                    optimizer.zero_grad()
                    loss = loss_fn(model(x), y)
                    loss.backward()
                    optimizer.step()
                    total = total + loss.detach() * len(y)
                    count += len(y)
                return total / count
        """, "python float"),
        ("no optimizer.step()", """
            def train_one_epoch(model, loader, loss_fn, optimizer, device):
                model.train()
                total, count = 0.0, 0
                for x, y in loader:
                    optimizer.zero_grad()
                    loss = loss_fn(model(x.to(device)), y.to(device))
                    loss.backward()
                    total += loss.item() * len(y)
                    count += len(y)
                return total / count
        """, "optimizer.step()"),
        ("zero_grad after step", """
            def train_one_epoch(model, loader, loss_fn, optimizer, device):
                model.train()
                total, count = 0.0, 0
                for x, y in loader:
                    loss = loss_fn(model(x.to(device)), y.to(device))
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad()
                    total += loss.item() * len(y)
                    count += len(y)
                return total / count
        """, "left over"),
        ("counts samples with len(loader.dataset)", """
            def train_one_epoch(model, loader, loss_fn, optimizer, device):
                model.train()
                total = 0.0
                for x, y in loader:
                    x, y = x.to(device), y.to(device)
                    optimizer.zero_grad()
                    loss = loss_fn(model(x), y)
                    loss.backward()
                    optimizer.step()
                    total += loss.item() * len(y)
                return total / len(loader.dataset)
        """, "any iterable of batches"),
        ("reads the optimizer's learning rate", """
            def train_one_epoch(model, loader, loss_fn, optimizer, device):
                model.train()
                total, count = 0.0, 0
                for x, y in loader:
                    x, y = x.to(device), y.to(device)
                    optimizer.zero_grad()
                    loss = loss_fn(model(x), y) * optimizer.param_groups[0]["lr"] / 0.1
                    loss.backward()
                    optimizer.step()
                    total += loss.item() * len(y)
                    count += len(y)
                return total / count
        """, "zero_grad() and optimizer.step()"),
        ("delegates to the course's loop", """
            from course import training as _t
            def train_one_epoch(model, loader, loss_fn, optimizer, device):
                return _t.train_epoch(model, loader, loss_fn, optimizer, device)["loss"]
        """, "earns no credit"),
    ],
    "evaluate": [
        ("no model.eval()", """
            def evaluate(model, loader, loss_fn, device):
                total, correct, count = 0.0, 0, 0
                with torch.no_grad():
                    for x, y in loader:
                        x, y = x.to(device), y.to(device)
                        out = model(x)
                        total += loss_fn(out, y).item() * len(y)
                        correct += (out.argmax(1) == y).sum().item()
                        count += len(y)
                return {"loss": total / count, "accuracy": correct / count}
        """, "model.eval()"),
        ("no torch.no_grad()", """
            def evaluate(model, loader, loss_fn, device):
                model.eval()
                total, correct, count = 0.0, 0, 0
                for x, y in loader:
                    x, y = x.to(device), y.to(device)
                    out = model(x)
                    total += loss_fn(out, y).item() * len(y)
                    correct += (out.argmax(1) == y).sum().item()
                    count += len(y)
                return {"loss": total / count, "accuracy": correct / count}
        """, "no_grad"),
        ("accuracy averaged over batches", """
            def evaluate(model, loader, loss_fn, device):
                model.eval()
                total, count, accs = 0.0, 0, []
                with torch.no_grad():
                    for x, y in loader:
                        x, y = x.to(device), y.to(device)
                        out = model(x)
                        total += loss_fn(out, y).item() * len(y)
                        accs.append((out.argmax(1) == y).float().mean().item())
                        count += len(y)
                return {"loss": total / count, "accuracy": sum(accs) / len(accs)}
        """, "not over batches"),
        ("loss averaged over batches", """
            def evaluate(model, loader, loss_fn, device):
                model.eval()
                losses, correct, count = [], 0, 0
                with torch.no_grad():
                    for x, y in loader:
                        x, y = x.to(device), y.to(device)
                        out = model(x)
                        losses.append(loss_fn(out, y).item())
                        correct += (out.argmax(1) == y).sum().item()
                        count += len(y)
                return {"loss": sum(losses) / len(losses), "accuracy": correct / count}
        """, "over samples, not batches"),
        ("percentage", """
            def evaluate(model, loader, loss_fn, device):
                model.eval()
                total, correct, count = 0.0, 0, 0
                with torch.no_grad():
                    for x, y in loader:
                        x, y = x.to(device), y.to(device)
                        out = model(x)
                        total += loss_fn(out, y).item() * len(y)
                        correct += (out.argmax(1) == y).sum().item()
                        count += len(y)
                return {"loss": total / count, "accuracy": 100 * correct / count}
        """, "not a percentage"),
        ("evaluates a global train_loader", """
            _g = torch.Generator().manual_seed(0)
            train_loader = [(torch.randn(16, 6, generator=_g), torch.randint(0, 4, (16,), generator=_g))
                            for _ in range(3)]
            def evaluate(model, loader, loss_fn, device):
                model.eval()
                total, correct, count = 0.0, 0, 0
                with torch.no_grad():
                    for x, y in train_loader:
                        x, y = x.to(device), y.to(device)
                        out = model(x)
                        total += loss_fn(out, y).item() * len(y)
                        correct += (out.argmax(1) == y).sum().item()
                        count += len(y)
                return {"loss": total / count, "accuracy": correct / count}
        """, "loader it is given"),
        ("counts samples with len(loader.dataset)", """
            def evaluate(model, loader, loss_fn, device):
                model.eval()
                total, correct = 0.0, 0
                with torch.no_grad():
                    for x, y in loader:
                        x, y = x.to(device), y.to(device)
                        out = model(x)
                        total += loss_fn(out, y).item() * len(y)
                        correct += (out.argmax(1) == y).sum().item()
                n = len(loader.dataset)
                return {"loss": total / n, "accuracy": correct / n}
        """, "any iterable of batches"),
        ("delegates to the course's evaluate", """
            from course import training as _t
            def evaluate(model, loader, loss_fn, device):
                return _t.evaluate(model, loader, loss_fn, device, num_classes=4)
        """, "earns no credit"),
        ("argmax over the batch dimension", """
            def evaluate(model, loader, loss_fn, device):
                model.eval()
                total, correct, count = 0.0, 0, 0
                with torch.no_grad():
                    for x, y in loader:
                        x, y = x.to(device), y.to(device)
                        out = model(x)
                        total += loss_fn(out, y).item() * len(y)
                        correct += (out.argmax(0)[:1] == y[:1]).sum().item()
                        count += len(y)
                return {"loss": total / count, "accuracy": correct / count}
        """, "dim=1"),
    ],
    "build_mnist_mlp": [
        ("too small", """
            def build_mnist_mlp():
                return nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))
        """, "97.0%"),
        ("no nonlinearity", """
            def build_mnist_mlp():
                return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.Linear(256, 10))
        """, "nonlinearity"),
        ("contains a Conv layer", """
            def build_mnist_mlp():
                return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                                     nn.Linear(4 * 28 * 28, 10))
        """, "without conv layers"),
        ("softmax output", """
            def build_mnist_mlp():
                return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10),
                                     nn.Softmax(dim=1))
        """, "not probabilities"),
        ("no Flatten", """
            def build_mnist_mlp():
                return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
        """, "(n, 10) logits"),
    ],
}

CORRECT = {
    "train_one_epoch": [
        ("progress bar, tensor accumulation, set_to_none", """
            from tqdm.auto import tqdm

            def train_one_epoch(model, loader, loss_fn, optimizer, device):
                model.train(True)
                running = torch.zeros((), device=device)
                seen = 0
                for batch, (X, y) in enumerate(tqdm(loader, desc="train", leave=False)):
                    X, y = X.to(device), y.to(device)
                    optimizer.zero_grad(set_to_none=True)
                    pred = model(X)
                    loss = loss_fn(pred, y)
                    loss.backward()
                    optimizer.step()
                    running += loss.detach() * y.size(0)
                    seen += y.size(0)
                return (running / seen).item()
        """),
        ("weighted average at the end", """
            def train_one_epoch(model, loader, loss_fn, optimizer, device):
                model.train()
                losses, sizes = [], []
                for inputs, targets in iter(loader):
                    inputs = inputs.to(device, non_blocking=True)
                    targets = targets.to(device, non_blocking=True)
                    optimizer.zero_grad()
                    output = model(inputs)
                    loss = loss_fn(output, targets)
                    loss.backward()
                    optimizer.step()
                    losses.append(loss.item())
                    sizes.append(len(targets))
                return sum(l * n for l, n in zip(losses, sizes)) / sum(sizes)
        """),
    ],
    "evaluate": [
        ("tqdm progress bar", """
            from tqdm.auto import tqdm

            def evaluate(model, loader, loss_fn, device):
                model.eval()
                loss_sum, correct, n = 0.0, 0, 0
                with torch.no_grad():
                    for x, y in tqdm(loader, desc="eval", leave=False):
                        x, y = x.to(device), y.to(device)
                        logits = model(x)
                        loss_sum += loss_fn(logits, y).item() * y.size(0)
                        correct += (logits.argmax(dim=1) == y).sum().item()
                        n += y.size(0)
                return {"loss": loss_sum / n, "accuracy": correct / n}
        """),
        ("inference_mode decorator, tensors summed at the end", """
            @torch.inference_mode()
            def evaluate(model, loader, loss_fn, device):
                model.eval()
                losses, hits, count = [], [], 0
                for x, y in loader:
                    x, y = x.to(device), y.to(device)
                    logits = model(x)
                    losses.append(loss_fn(logits, y) * len(y))
                    hits.append((logits.argmax(1) == y).sum())
                    count += len(y)
                return {"loss": (torch.stack(losses).sum() / count).item(),
                        "accuracy": (torch.stack(hits).sum() / count).item()}
        """),
    ],
    "build_mnist_mlp": [
        ("a class with torch.flatten, F.relu and Dropout", """
            import torch.nn.functional as F

            class _MLP(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(28 * 28, 512)
                    self.drop = nn.Dropout(0.2)
                    self.fc2 = nn.Linear(512, 10)

                def forward(self, x):
                    x = torch.flatten(x, 1)
                    return self.fc2(self.drop(F.relu(self.fc1(x))))

            def build_mnist_mlp():
                return _MLP()
        """),
        ("named layers, view(n, -1), GELU", """
            from collections import OrderedDict

            class _Flat(nn.Module):
                def forward(self, x):
                    return x.view(x.size(0), -1)

            def build_mnist_mlp():
                return nn.Sequential(OrderedDict([
                    ("flat", _Flat()), ("fc1", nn.Linear(784, 300)), ("act1", nn.GELU()),
                    ("fc2", nn.Linear(300, 100)), ("act2", nn.GELU()), ("out", nn.Linear(100, 10)),
                ]))
        """),
    ],
}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests(
    "11_mnist", MUTANTS, CORRECT)
