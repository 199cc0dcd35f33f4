"""13_debugging: the checks accept the fixes and reject the bugs of the zoo (and near misses),
naming the symptom and its cause."""

import pytest
from mutantkit import make_tests

pytestmark = pytest.mark.nb13

MUTANTS = {
    "reload_trained": [
        ("loads the old file", """
            def reload_trained(model, path, build_model):
                fresh = build_model()
                fresh.load_state_dict(torch.load(path, weights_only=True))
                return fresh.to(next(model.parameters()).device).eval()
        """, "stale checkpoint"),
        ("saves only when no file exists", """
            import os
            def reload_trained(model, path, build_model):
                if not os.path.exists(path):
                    torch.save(model.state_dict(), path)
                fresh = build_model()
                fresh.load_state_dict(torch.load(path, weights_only=True))
                return fresh.to(next(model.parameters()).device).eval()
        """, "stale checkpoint"),
        ("never loads", """
            def reload_trained(model, path, build_model):
                torch.save(model.state_dict(), path)
                return build_model().to(next(model.parameters()).device).eval()
        """, "never loaded"),
        ("returns the same object", """
            def reload_trained(model, path, build_model):
                torch.save(model.state_dict(), path)
                return model.eval()
        """, "fresh model"),
        ("training mode", """
            def reload_trained(model, path, build_model):
                torch.save(model.state_dict(), path)
                fresh = build_model()
                fresh.load_state_dict(torch.load(path, weights_only=True))
                return fresh.to(next(model.parameters()).device)
        """, "eval mode"),
        ("pickles the whole model", """
            def reload_trained(model, path, build_model):
                torch.save(model, path)
                fresh = build_model()
                fresh.load_state_dict(torch.load(path, weights_only=False).state_dict())
                return fresh.to(next(model.parameters()).device).eval()
        """, "weights_only"),
        ("returns what load_state_dict returns", """
            def reload_trained(model, path, build_model):
                torch.save(model.state_dict(), path)
                return build_model().load_state_dict(torch.load(path, weights_only=True))
        """, "returns a report"),
        ("parameters only, no buffers", """
            def reload_trained(model, path, build_model):
                torch.save({k: v.detach() for k, v in model.named_parameters()}, path)
                fresh = build_model()
                fresh.load_state_dict(torch.load(path, weights_only=True), strict=False)
                return fresh.to(next(model.parameters()).device).eval()
        """, "buffers"),
    ],
    "loss_and_probs": [
        ("softmax twice", """
            def loss_and_probs(logits, targets):
                probs = logits.softmax(dim=1)
                return F.cross_entropy(probs, targets), probs
        """, "softmax twice"),
        ("nll_loss on probabilities", """
            def loss_and_probs(logits, targets):
                probs = logits.softmax(dim=1)
                return F.nll_loss(probs, targets), probs
        """, "nll_loss expects log-probabilities"),
        ("log of softmax underflows", """
            def loss_and_probs(logits, targets):
                probs = logits.softmax(dim=1)
                return F.nll_loss(torch.log(probs), targets), probs
        """, "underflows"),
        ("sum instead of mean", """
            def loss_and_probs(logits, targets):
                return F.cross_entropy(logits, targets, reduction="sum"), logits.softmax(dim=1)
        """, "mean over the samples"),
        ("probabilities are the logits", """
            def loss_and_probs(logits, targets):
                return F.cross_entropy(logits, targets), logits
        """, "probs are the raw logits"),
        ("softmax over the batch", """
            def loss_and_probs(logits, targets):
                return F.cross_entropy(logits, targets), logits.softmax(dim=0)
        """, "wrong dimension"),
        ("detached loss", """
            def loss_and_probs(logits, targets):
                return torch.tensor(F.cross_entropy(logits, targets).item()), logits.softmax(dim=1)
        """, "connected to the logits' graph"),
    ],
    "evaluate_fixed": [
        ("no model.eval()", """
            def evaluate_fixed(model, loader):
                device = next(model.parameters()).device
                correct, count = 0, 0
                with torch.no_grad():
                    for x, y in loader:
                        x, y = x.to(device), y.to(device)
                        correct += (model(x).argmax(1) == y).sum().item()
                        count += len(y)
                return correct / count
        """, "training mode"),
        ("no no_grad", """
            def evaluate_fixed(model, loader):
                device = next(model.parameters()).device
                model.eval()
                correct, count = 0, 0
                for x, y in loader:
                    x, y = x.to(device), y.to(device)
                    correct += (model(x).argmax(1) == y).sum().item()
                    count += len(y)
                return correct / count
        """, "no_grad"),
        ("mean of batch accuracies", """
            def evaluate_fixed(model, loader):
                device = next(model.parameters()).device
                model.eval()
                accs = []
                with torch.no_grad():
                    for x, y in loader:
                        x, y = x.to(device), y.to(device)
                        accs.append((model(x).argmax(1) == y).float().mean().item())
                return sum(accs) / len(accs)
        """, "samples, not batches"),
        ("percentage", """
            def evaluate_fixed(model, loader):
                device = next(model.parameters()).device
                model.eval()
                correct, count = 0, 0
                with torch.no_grad():
                    for x, y in loader:
                        x, y = x.to(device), y.to(device)
                        correct += (model(x).argmax(1) == y).sum().item()
                        count += len(y)
                return 100 * correct / count
        """, "percentage"),
        ("returns a tensor", """
            def evaluate_fixed(model, loader):
                device = next(model.parameters()).device
                model.eval()
                correct, count = 0, 0
                with torch.no_grad():
                    for x, y in loader:
                        x, y = x.to(device), y.to(device)
                        correct = correct + (model(x).argmax(1) == y).sum()
                        count += len(y)
                return correct / count
        """, "python float"),
    ],
    "fixed_train_step": [
        ("never zeroes", """
            def fixed_train_step(model, batch, optimizer, loss_fn):
                x, y = batch
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
                return loss.item()
        """, "gradients accumulate"),
        ("zero_grad after step", """
            def fixed_train_step(model, batch, optimizer, loss_fn):
                x, y = batch
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                return loss.item()
        """, "leak"),
        ("zero_grad between backward and step", """
            def fixed_train_step(model, batch, optimizer, loss_fn):
                x, y = batch
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.zero_grad()
                optimizer.step()
                return loss.item()
        """, "zero_grad() ran between backward() and step()"),
        ("no step", """
            def fixed_train_step(model, batch, optimizer, loss_fn):
                x, y = batch
                optimizer.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                return loss.item()
        """, "optimizer.step() never ran"),
        ("returns the tensor", """
            def fixed_train_step(model, batch, optimizer, loss_fn):
                x, y = batch
                optimizer.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
                return loss
        """, "python float"),
        ("loss after the step", """
            def fixed_train_step(model, batch, optimizer, loss_fn):
                x, y = batch
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
                with torch.no_grad():
                    return loss_fn(model(x), y).item()
        """, "before the step"),
    ],
    "normalization_stats": [
        ("0..255 scale", """
            def normalization_stats(images):
                x = images.float()
                return x.mean().item(), x.std().item()
        """, "0..255 scale"),
        ("mean of per-image stds", """
            def normalization_stats(images):
                x = images.float().reshape(len(images), -1) / 255
                return x.mean().item(), x.std(dim=1).mean().item()
        """, "all pixels of all images at once"),
        ("std and mean swapped", """
            def normalization_stats(images):
                x = images.float() / 255
                return x.std().item(), x.mean().item()
        """, "in that order"),
        ("variance", """
            def normalization_stats(images):
                x = images.float() / 255
                return x.mean().item(), x.var().item()
        """, "not the variance"),
        ("tensors", """
            def normalization_stats(images):
                x = images.float() / 255
                return x.mean(), x.std()
        """, "python floats"),
        ("the published MNIST numbers", """
            def normalization_stats(images):
                return 0.1307, 0.3081
        """, "every pixel of every image"),
    ],
    "build_classifier": [
        ("ReLU on the logits", """
            def build_classifier(in_features, hidden, num_classes):
                return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                                     nn.Linear(hidden, num_classes), nn.ReLU())
        """, "relu after the last linear"),
        ("Softmax at the end", """
            def build_classifier(in_features, hidden, num_classes):
                return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                                     nn.Linear(hidden, num_classes), nn.Softmax(dim=1))
        """, "softmax twice"),
        ("Sigmoid at the end", """
            def build_classifier(in_features, hidden, num_classes):
                return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                                     nn.Linear(hidden, num_classes), nn.Sigmoid())
        """, "sigmoid"),
        ("no hidden nonlinearity", """
            def build_classifier(in_features, hidden, num_classes):
                return nn.Sequential(nn.Linear(in_features, hidden), nn.Linear(hidden, num_classes))
        """, "no nonlinearity"),
        ("three Linear layers", """
            def build_classifier(in_features, hidden, num_classes):
                return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                                     nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, num_classes))
        """, "exactly two nn.linear"),
        ("Tanh instead of ReLU", """
            def build_classifier(in_features, hidden, num_classes):
                return nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(),
                                     nn.Linear(hidden, num_classes))
        """, "linear → relu → linear"),
    ],
    "train_epochs": [
        ("scheduler stepped per batch", """
            def train_epochs(model, loader, optimizer, scheduler, loss_fn, epochs):
                history = []
                for _ in range(epochs):
                    losses = []
                    for batch in loader:
                        losses.append(fixed_train_step(model, batch, optimizer, loss_fn))
                        scheduler.step()
                    history.append(sum(losses) / len(losses))
                return history
        """, "stepped once per batch"),
        ("scheduler never stepped", """
            def train_epochs(model, loader, optimizer, scheduler, loss_fn, epochs):
                history = []
                for _ in range(epochs):
                    losses = [fixed_train_step(model, b, optimizer, loss_fn) for b in loader]
                    history.append(sum(losses) / len(losses))
                return history
        """, "never changed"),
        ("scheduler stepped before the epoch", """
            def train_epochs(model, loader, optimizer, scheduler, loss_fn, epochs):
                history = []
                for _ in range(epochs):
                    scheduler.step()
                    losses = [fixed_train_step(model, b, optimizer, loss_fn) for b in loader]
                    history.append(sum(losses) / len(losses))
                return history
        """, "first epoch already used"),
        ("scheduler stepped twice per epoch", """
            def train_epochs(model, loader, optimizer, scheduler, loss_fn, epochs):
                history = []
                for _ in range(epochs):
                    losses = [fixed_train_step(model, b, optimizer, loss_fn) for b in loader]
                    scheduler.step()
                    scheduler.step()
                    history.append(sum(losses) / len(losses))
                return history
        """, "per-epoch sequence"),
        ("last batch loss instead of the mean", """
            def train_epochs(model, loader, optimizer, scheduler, loss_fn, epochs):
                history = []
                for _ in range(epochs):
                    losses = [fixed_train_step(model, b, optimizer, loss_fn) for b in loader]
                    scheduler.step()
                    history.append(losses[-1])
                return history
        """, "average of that epoch's batch losses"),
        ("own loop without zero_grad", """
            def train_epochs(model, loader, optimizer, scheduler, loss_fn, epochs):
                history = []
                for _ in range(epochs):
                    losses = []
                    for x, y in loader:
                        loss = loss_fn(model(x), y)
                        loss.backward()
                        optimizer.step()
                        losses.append(loss.item())
                    scheduler.step()
                    history.append(sum(losses) / len(losses))
                return history
        """, "parameters differ from the reference loop"),
    ],
}

CORRECT = {
    "reload_trained": [
        ("CPU copies, map_location, train(False)", """
            def reload_trained(model, path, build_model):
                state = {name: t.detach().cpu() for name, t in model.state_dict().items()}
                torch.save(state, path)
                fresh = build_model()
                fresh.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
                fresh.train(False)
                return fresh.to(next(iter(model.parameters())).device)
        """),
        ("through a file object", """
            def reload_trained(model, path, build_model):
                with open(path, "wb") as f:
                    torch.save(model.state_dict(), f)
                with open(path, "rb") as f:
                    state = torch.load(f, weights_only=True)
                device = next(model.parameters()).device
                fresh = build_model().to(device)
                result = fresh.load_state_dict(state, strict=True)
                assert not result.missing_keys
                fresh.eval()
                return fresh
        """),
    ],
    "loss_and_probs": [
        ("log_softmax and gather", """
            def loss_and_probs(logits, targets):
                log_probs = logits.log_softmax(dim=1)
                loss = -log_probs.gather(1, targets[:, None]).mean()
                return loss, log_probs.exp()
        """),
        ("the loss module", """
            def loss_and_probs(logits, targets):
                return nn.CrossEntropyLoss()(logits, targets), F.softmax(logits, dim=-1)
        """),
    ],
    "evaluate_fixed": [
        ("inference_mode, restores the mode", """
            def evaluate_fixed(model, loader):
                was_training = model.training
                model.train(False)
                device = next(model.parameters()).device
                hits = total = 0
                with torch.inference_mode():
                    for x, y in loader:
                        pred = model(x.to(device)).argmax(-1)
                        hits += int((pred == y.to(device)).sum())
                        total += y.numel()
                model.train(was_training)
                return hits / total
        """),
        ("all predictions at once", """
            @torch.no_grad()
            def evaluate_fixed(model, loader):
                model.eval()
                device = next(model.parameters()).device
                preds, targets = [], []
                for x, y in loader:
                    preds.append(model(x.to(device)).argmax(dim=1).cpu())
                    targets.append(y.cpu())
                return (torch.cat(preds) == torch.cat(targets)).float().mean().item()
        """),
    ],
    "fixed_train_step": [
        ("set grads to None by hand", """
            def fixed_train_step(model, batch, optimizer, loss_fn):
                inputs, targets = batch
                for p in model.parameters():
                    p.grad = None
                loss = loss_fn(model(inputs), targets)
                loss.backward()
                optimizer.step()
                return float(loss.detach())
        """),
        ("model.zero_grad", """
            def fixed_train_step(model, batch, optimizer, loss_fn):
                model.zero_grad(set_to_none=False)
                outputs = model(batch[0])
                loss = loss_fn(outputs, batch[1])
                loss.backward()
                optimizer.step()
                return loss.detach().item()
        """),
    ],
    "normalization_stats": [
        ("population std", """
            def normalization_stats(images):
                x = images.to(torch.float32).div(255)
                return float(x.mean()), float(x.std(correction=0))
        """),
        ("std_mean", """
            def normalization_stats(images):
                std, mean = torch.std_mean(images.float() / 255.0)
                return mean.item(), std.item()
        """),
    ],
    "build_classifier": [
        ("a Module class with F.relu", """
            class Classifier(nn.Module):
                def __init__(self, in_features, hidden, num_classes):
                    super().__init__()
                    self.fc1 = nn.Linear(in_features, hidden)
                    self.fc2 = nn.Linear(hidden, num_classes)

                def forward(self, x):
                    return self.fc2(F.relu(self.fc1(x)))

            def build_classifier(in_features, hidden, num_classes):
                return Classifier(in_features, hidden, num_classes)
        """),
        ("named Sequential with Flatten and inplace ReLU", """
            from collections import OrderedDict

            def build_classifier(in_features, hidden, num_classes):
                return nn.Sequential(OrderedDict([
                    ("flatten", nn.Flatten()),
                    ("hidden", nn.Linear(in_features, hidden)),
                    ("act", nn.ReLU(inplace=True)),
                    ("logits", nn.Linear(hidden, num_classes)),
                ]))
        """),
    ],
    "train_epochs": [
        ("own loop, sample-weighted mean", """
            def train_epochs(model, loader, optimizer, scheduler, loss_fn, epochs):
                out = []
                for epoch in range(epochs):
                    model.train()
                    total = n = 0
                    for x, y in loader:
                        optimizer.zero_grad()
                        loss = loss_fn(model(x), y)
                        loss.backward()
                        optimizer.step()
                        total += loss.item() * len(y)
                        n += len(y)
                    scheduler.step()
                    out.append(total / n)
                return out
        """),
    ],
}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests("13_debugging", MUTANTS, CORRECT)
