"""12_fashion_mnist: the checks accept the solution and reject known-wrong answers, naming the concept."""

import pytest
from mutantkit import make_tests

pytestmark = pytest.mark.nb12

_SAVE = '''
def save_checkpoint(path, model, optimizer, scheduler, epoch):
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "epoch": epoch,
                "rng": torch.get_rng_state()}, path)
'''
_LOAD = '''
def load_checkpoint(path, model, optimizer, scheduler):
    state = torch.load(path, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    return state["epoch"]
'''


def _cnn(features: str, head: str) -> str:
    return f'''
class FashionCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential({features})
        self.classifier = nn.Sequential({head})

    def forward(self, x):
        return self.classifier(self.features(x))
'''


# --- train_model: the answer cell written out (helpers included), and edits of it ---------------
_LOOP = '''from torch.utils.tensorboard import SummaryWriter


def train_one_epoch(model, loader, optimizer, scheduler=None):
    """One pass over `loader` in train mode (scheduler stepped after every batch); return the mean
    training loss over the samples."""
    model.train()
    total, seen = 0.0, 0
    for inputs, targets in loader:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.item() * len(targets)
        seen += len(targets)
    return total / seen


def evaluate(model, loader):
    """(mean loss, accuracy as a fraction) over every sample of `loader`, in eval mode, without
    gradients."""
    model.eval()
    total, correct, seen = 0.0, 0, 0
    with torch.no_grad():
        for inputs, targets in loader:
            logits = model(inputs)
            total += nn.functional.cross_entropy(logits, targets, reduction="sum").item()
            correct += (logits.argmax(dim=1) == targets).sum().item()
            seen += len(targets)
    return total / seen, correct / seen


def train_model(model, train_loader, val_loader, optimizer, epochs, log_dir, checkpoint_path,
                best_path, scheduler=None):
    """Train up to `epochs` epochs, resuming from `checkpoint_path` if it exists; log to TensorBoard
    at the global step, keep the best weights in `best_path`; return the history dict."""
    def rng_states():
        states = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            states["cuda"] = torch.cuda.get_rng_state_all()
        if torch.backends.mps.is_available():
            states["mps"] = torch.mps.get_rng_state()
        return states

    history = {"train_loss": [], "val_loss": [], "val_accuracy": [], "best_epoch": 0}
    best_accuracy, start = -1.0, 0
    if Path(checkpoint_path).exists():
        state = torch.load(checkpoint_path, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        start, best_accuracy, history = state["epoch"], state["best_accuracy"], state["history"]
        torch.set_rng_state(state["rng"]["cpu"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        if "mps" in state["rng"] and torch.backends.mps.is_available():
            torch.mps.set_rng_state(state["rng"]["mps"])
    writer = SummaryWriter(log_dir=str(log_dir))
    for epoch in range(start, epochs):
        train_loss = train_one_epoch(model, train_loader, optimizer, scheduler)
        val_loss, val_accuracy = evaluate(model, val_loader)
        step = (epoch + 1) * len(train_loader)  # the global step: batches trained so far
        writer.add_scalar("loss/train", train_loss, step)
        writer.add_scalar("loss/val", val_loss, step)
        writer.add_scalar("accuracy/val", val_accuracy, step)
        history["train_loss"].append(train_loss)
        history["val_loss"].append(val_loss)
        history["val_accuracy"].append(val_accuracy)
        if val_accuracy > best_accuracy:
            best_accuracy, history["best_epoch"] = val_accuracy, epoch + 1
            torch.save(model.state_dict(), best_path)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "epoch": epoch + 1, "best_accuracy": best_accuracy, "history": history,
                    "rng": rng_states()}, checkpoint_path)
    writer.close()
    return history
'''


def _edit(old: str, new: str, source: str = _LOOP) -> str:
    assert old in source, old
    return source.replace(old, new)


_TRAIN_MODEL_MUTANTS = [
    ("logs at the epoch number", _edit(
        "step = (epoch + 1) * len(train_loader)", "step = epoch"), "global step"),
    ("logs at the batch index of the last batch", _edit(
        "step = (epoch + 1) * len(train_loader)", "step = len(train_loader) - 1"), "global step"),
    ("saves the last epoch, not the best", _edit(
        "        if val_accuracy > best_accuracy:\n"
        "            best_accuracy, history[\"best_epoch\"] = val_accuracy, epoch + 1\n"
        "            torch.save(model.state_dict(), best_path)\n",
        "        if val_accuracy > best_accuracy:\n"
        "            best_accuracy, history[\"best_epoch\"] = val_accuracy, epoch + 1\n"
        "        torch.save(model.state_dict(), best_path)\n"), "not those of the last epoch"),
    ("resume restarts from epoch 0", _edit(
        "for epoch in range(start, epochs):", "for epoch in range(epochs):"), "not from epoch 0"),
    ("forgets the optimizer state in the checkpoint", _edit(
        '        optimizer.load_state_dict(state["optimizer"])\n', "", _edit(
            '"optimizer": optimizer.state_dict(),', "")), "optimizer.state_dict()"),
    ("no RNG state: the resumed run shuffles differently", _edit(
        '        torch.set_rng_state(state["rng"]["cpu"])\n', ""), "exactly the same weights"),
    ("evaluates in train mode", _edit(
        "    model.eval()\n    total, correct, seen", "    total, correct, seen"), "eval mode"),
    ("best accuracy not kept across a resume", _edit(
        'start, best_accuracy, history = state["epoch"], state["best_accuracy"], state["history"]',
        'start, history = state["epoch"], state["history"]'), "best validation accuracy so far"),
    ("scheduler stepped once per epoch", _edit(
        "        if scheduler is not None:\n            scheduler.step()\n", "").replace(
        "        val_loss, val_accuracy = evaluate(model, val_loader)\n",
        "        if scheduler is not None:\n            scheduler.step()\n"
        "        val_loss, val_accuracy = evaluate(model, val_loader)\n"), "after every batch"),
    ("accuracy in percent", _edit(
        "return total / seen, correct / seen", "return total / seen, 100 * correct / seen"),
     "fraction"),
]


MUTANTS = {
    "train_model": _TRAIN_MODEL_MUTANTS,
    "FashionCNN": [
        ("no BatchNorm", _cnn(
            "nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), "
            "nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)",
            "nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 49, 10)"), "batchnorm2d"),
        ("no Dropout", _cnn(
            "nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2)",
            "nn.Flatten(), nn.Linear(16 * 196, 10)"), "dropout"),
        ("too much computation", _cnn(
            "nn.Conv2d(1, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), "
            "nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2)",
            "nn.Dropout(0.25), nn.Flatten(), nn.Linear(64 * 196, 10)"), "multiply-adds"),
        ("wrong output shape", _cnn(
            "nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2)",
            "nn.Dropout(0.25), nn.Flatten(), nn.Linear(16 * 196, 1)"), "(n, 10) logits"),
        ("too weak", _cnn(
            "nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(4)",
            "nn.Flatten(), nn.Dropout(0.5), nn.Linear(2 * 49, 10)"), "86.0% test accuracy"),
        ("an MLP", _cnn(
            "nn.Flatten(), nn.Linear(784, 256), nn.ReLU()",
            "nn.Dropout(0.25), nn.Linear(256, 10)"), "nn.conv2d"),
    ],
    "per_class_accuracy": [
        ("precision", """
            def per_class_accuracy(preds, targets, num_classes):
                if preds.dim() == 2:
                    preds = preds.argmax(1)
                predicted = torch.bincount(preds, minlength=num_classes).float()
                correct = torch.bincount(preds[preds == targets], minlength=num_classes).float()
                return torch.where(predicted > 0, correct / predicted.clamp(min=1), 0.0)
        """, "precision"),
        ("NaN for absent classes", """
            def per_class_accuracy(preds, targets, num_classes):
                if preds.dim() == 2:
                    preds = preds.argmax(1)
                support = torch.bincount(targets, minlength=num_classes).float()
                correct = torch.bincount(targets[preds == targets], minlength=num_classes).float()
                return correct / support
        """, "not nan"),
        ("overall accuracy", """
            def per_class_accuracy(preds, targets, num_classes):
                if preds.dim() == 2:
                    preds = preds.argmax(1)
                return (preds == targets).float().mean().repeat(num_classes)
        """, "overall accuracy"),
        ("scores not argmaxed", """
            def per_class_accuracy(preds, targets, num_classes):
                if preds.dim() == 2:
                    preds = preds.argmax(0)[:len(targets)].clamp(max=num_classes - 1)
                    preds = torch.cat([preds, preds.new_zeros(len(targets) - len(preds))])
                support = torch.bincount(targets, minlength=num_classes).float()
                correct = torch.bincount(targets[preds == targets], minlength=num_classes).float()
                return torch.where(support > 0, correct / support.clamp(min=1), 0.0)
        """, "argmax over dim 1"),
        ("delegates to torchmetrics", """
            import torchmetrics
            def per_class_accuracy(preds, targets, num_classes):
                return torchmetrics.functional.accuracy(preds, targets, task="multiclass",
                                                        num_classes=num_classes, average=None)
        """, "earns no credit"),
    ],
    "checkpoint": [
        ("no RNG state", """
            def save_checkpoint(path, model, optimizer, scheduler, epoch):
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(), "epoch": epoch}, path)

            def load_checkpoint(path, model, optimizer, scheduler):
                state = torch.load(path, weights_only=True)
                model.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
                return state["epoch"]
        """, "rng state"),
        ("no optimizer state", _SAVE + """
def load_checkpoint(path, model, optimizer, scheduler):
    state = torch.load(path, weights_only=True)
    model.load_state_dict(state["model"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    return state["epoch"]
""", "optimizer.state_dict()"),
        ("no scheduler state", _SAVE + """
def load_checkpoint(path, model, optimizer, scheduler):
    state = torch.load(path, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    return state["epoch"]
""", "scheduler.state_dict()"),
        ("returns epoch + 1", _SAVE + _LOAD.replace('return state["epoch"]', 'return state["epoch"] + 1'),
         "not the next one"),
        ("pickles whole objects", """
            def save_checkpoint(path, model, optimizer, scheduler, epoch):
                torch.save({"model": model, "optimizer": optimizer, "scheduler": scheduler,
                            "epoch": epoch, "rng": torch.get_rng_state()}, path)

            def load_checkpoint(path, model, optimizer, scheduler):
                state = torch.load(path, weights_only=False)
                model.load_state_dict(state["model"].state_dict())
                optimizer.load_state_dict(state["optimizer"].state_dict())
                scheduler.load_state_dict(state["scheduler"].state_dict())
                torch.set_rng_state(state["rng"])
                return state["epoch"]
        """, "weights_only=true"),
        ("weights not restored", _SAVE + _LOAD.replace('    model.load_state_dict(state["model"])\n', ''),
         "saved weights"),
        ("parameters without buffers", """
            def save_checkpoint(path, model, optimizer, scheduler, epoch):
                torch.save({"model": {k: p.detach() for k, p in model.named_parameters()},
                            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                            "epoch": epoch, "rng": torch.get_rng_state()}, path)

            def load_checkpoint(path, model, optimizer, scheduler):
                state = torch.load(path, weights_only=True)
                model.load_state_dict(state["model"], strict=False)
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
                torch.set_rng_state(state["rng"])
                return state["epoch"]
        """, "buffers"),
    ],
}

CORRECT = {
    "train_model": [
        ("a global-step counter, inference_mode, nested checkpoint keys, atomic save", """
            import os
            import random

            from torch.utils.tensorboard import SummaryWriter


            def train_one_epoch(model, loader, optimizer, scheduler=None):
                model.train()
                losses, sizes = [], []
                for x, y in loader:
                    optimizer.zero_grad(set_to_none=True)
                    loss = nn.CrossEntropyLoss()(model(x), y)
                    loss.backward()
                    optimizer.step()
                    if scheduler:
                        scheduler.step()
                    losses.append(loss.detach() * y.numel())
                    sizes.append(y.numel())
                return float(torch.stack(losses).sum() / sum(sizes))


            @torch.inference_mode()
            def evaluate(model, loader):
                model.eval()
                logits, labels = zip(*[(model(x), y) for x, y in loader])
                logits, labels = torch.cat(logits), torch.cat(labels)
                loss = nn.functional.cross_entropy(logits, labels)
                return loss.item(), (logits.argmax(1) == labels).float().mean().item()


            def train_model(model, train_loader, val_loader, optimizer, epochs, log_dir,
                            checkpoint_path, best_path, scheduler=None):
                ckpt = {"epoch": 0, "best": None, "history": {"train_loss": [], "val_loss": [],
                                                               "val_accuracy": [], "best_epoch": 0}}
                if os.path.isfile(checkpoint_path):
                    ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
                    model.load_state_dict(ckpt["states"]["model"])
                    optimizer.load_state_dict(ckpt["states"]["optimizer"])
                    if scheduler is not None:
                        scheduler.load_state_dict(ckpt["states"]["scheduler"])
                    torch.random.set_rng_state(ckpt["rng"]["torch"])
                    random.setstate(ckpt["rng"]["python"])
                    if torch.cuda.is_available():
                        torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
                history, best = ckpt["history"], ckpt["best"]
                global_step = ckpt["epoch"] * len(train_loader)
                with SummaryWriter(str(log_dir)) as writer:
                    epoch = ckpt["epoch"]
                    while epoch < epochs:
                        train_loss = train_one_epoch(model, train_loader, optimizer, scheduler)
                        global_step += len(train_loader)
                        val_loss, val_acc = evaluate(model, val_loader)
                        for tag, value in (("loss/train", train_loss), ("loss/val", val_loss),
                                           ("accuracy/val", val_acc)):
                            writer.add_scalar(tag, value, global_step=global_step)
                        history["train_loss"].append(train_loss)
                        history["val_loss"].append(val_loss)
                        history["val_accuracy"].append(val_acc)
                        epoch += 1
                        if best is None or val_acc > best:
                            best = val_acc
                            history["best_epoch"] = epoch
                            torch.save(model.state_dict(), best_path)
                        tmp = str(checkpoint_path) + ".tmp"
                        torch.save({"epoch": epoch, "best": best, "history": history,
                                    "states": {"model": model.state_dict(),
                                               "optimizer": optimizer.state_dict(),
                                               "scheduler": scheduler.state_dict() if scheduler else {}},
                                    "rng": {"torch": torch.random.get_rng_state(),
                                            "python": random.getstate(),
                                            "cuda": torch.cuda.get_rng_state_all()
                                            if torch.cuda.is_available() else []}}, tmp)
                        os.replace(tmp, checkpoint_path)
                return history
        """),
    ],
    "FashionCNN": [
        ("torch-style: named layers, F.relu / F.max_pool2d, view(n, -1)", """
            import torch.nn.functional as F

            class FashionCNN(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)
                    self.bn1 = nn.BatchNorm2d(32)
                    self.conv2 = nn.Conv2d(32, 32, kernel_size=3, padding=1)
                    self.bn2 = nn.BatchNorm2d(32)
                    self.dropout = nn.Dropout(0.3)
                    self.fc = nn.Linear(32 * 7 * 7, 10)

                def forward(self, x):
                    x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
                    x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
                    x = x.view(x.size(0), -1)
                    return self.fc(self.dropout(x))
        """),
    ],
    "per_class_accuracy": [
        ("a loop over classes", """
            def per_class_accuracy(preds, targets, num_classes):
                if preds.ndim == 2:
                    preds = preds.argmax(dim=1)
                out = torch.zeros(num_classes, device=targets.device)
                for c in range(num_classes):
                    mask = targets == c
                    if mask.any():
                        out[c] = (preds[mask] == c).float().mean()
                return out
        """),
        ("the diagonal of a confusion matrix", """
            def per_class_accuracy(preds, targets, num_classes):
                if preds.dim() == 2:
                    preds = preds.argmax(1)
                cm = torch.bincount(targets * num_classes + preds, minlength=num_classes ** 2)
                cm = cm.reshape(num_classes, num_classes).float()
                return (cm.diagonal() / cm.sum(dim=1)).nan_to_num(0.0)
        """),
    ],
    "checkpoint": [
        ("atomic write, torch.random, CUDA states, map_location", """
            import os

            def save_checkpoint(path, model, optimizer, scheduler, epoch):
                tmp = str(path) + ".tmp"
                torch.save({
                    "epoch": epoch,
                    "model_state_dict": model.state_dict(),
                    "optimizer_state_dict": optimizer.state_dict(),
                    "scheduler_state_dict": scheduler.state_dict(),
                    "torch_rng_state": torch.random.get_rng_state(),
                    "cuda_rng_state": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                }, tmp)
                os.replace(tmp, path)

            def load_checkpoint(path, model, optimizer, scheduler):
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
                model.load_state_dict(ckpt["model_state_dict"])
                optimizer.load_state_dict(ckpt["optimizer_state_dict"])
                scheduler.load_state_dict(ckpt["scheduler_state_dict"])
                torch.random.set_rng_state(ckpt["torch_rng_state"])
                if ckpt["cuda_rng_state"] and torch.cuda.is_available():
                    torch.cuda.set_rng_state_all(ckpt["cuda_rng_state"])
                return int(ckpt["epoch"])
        """),
    ],
}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests(
    "12_fashion_mnist", MUTANTS, CORRECT)


# --- the trained model crosses to the judge as an exported program, never as code ---------------

_NET = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(8 * 14 * 14, 10))

    def forward(self, x):
        return self.head(nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2))
'''

_JUDGE = '''
import json, pickle, sys
import torch
import torch.serialization

unpickled = []


def refuse(*args, **kwargs):
    unpickled.append(1)
    raise AssertionError("the judge must not unpickle anything")


torch.load = torch.serialization.load = pickle.load = pickle.loads = refuse
sys.addaudithook(lambda event, args: unpickled.append(event) if event == "pickle.find_class" else None)
from course.checks import _transcript as tr
from course.checks._core import CheckFailure
from course.checks._training.models import Recipe, judge_trained
from course.checks._training.program import Program

folder = sys.argv[1]
data = tr.decode(tr.loads(open(folder + "/doc.json").read()), open(folder + "/blob.bin", "rb").read())
recipe = Recipe(**json.loads(open(folder + "/recipe.json").read()))
program = Program(data["program"])
try:
    judge_trained(data, "Net", recipe, "", hidden=False, seed=0)
    verdict = "passed"
except CheckFailure as failure:
    verdict = str(failure)
print(json.dumps({"verdict": verdict, "cost": program.cost()[0], "params": program.params,
                  "student_module_loaded": "student_net" in sys.modules,
                  "unpickled": len(unpickled)}))
'''


def _tiny_recipe(target: float):
    from course.checks._training.models import Recipe

    return Recipe("FashionMNIST", train_images=2048, epochs=1, batch_size=64, optimizer="SGD",
                  max_lr=0.05, target=target, max_params=1_000_000, max_macs=2_500_000)


def test_judge_runs_the_exported_program_in_a_process_without_student_code(tmp_path, monkeypatch):
    import dataclasses
    import json
    import subprocess
    import sys

    from course.checks import _transcript as tr
    from course.checks._training.models import train_and_export

    (tmp_path / "student_net.py").write_text(_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    from student_net import Net

    recipe = _tiny_recipe(target=0.6)
    doc, blob = tr.encode(train_and_export(Net, "Net", recipe, seed=0))
    out = tmp_path / "transcript"
    out.mkdir()
    (out / "doc.json").write_text(tr.dumps(doc))
    (out / "blob.bin").write_bytes(blob)
    (out / "recipe.json").write_text(json.dumps(dataclasses.asdict(recipe)))
    done = subprocess.run([sys.executable, "-c", _JUDGE, str(out)], capture_output=True, text=True,
                          cwd=str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["verdict"] == "passed", result
    assert result["cost"] == 28 * 28 * 8 * 9 + 8 * 14 * 14 * 10  # conv + linear, per image
    assert result["params"] == sum(p.numel() for p in Net().parameters())
    assert not result["student_module_loaded"] and result["unpickled"] == 0


def _program_record(model):
    import json

    from course.checks._training.program import record_program
    from course.checks._transcript import roundtrip

    record = roundtrip(record_program(model, "model"))
    return record, json.loads(record["graph"])


def test_program_matches_the_model_and_counts_its_cost():
    import torch
    from torch import nn

    from course.checks._training.program import Program

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5),
                          nn.Linear(16 * 196, 10))
    model.train()(torch.randn(64, 1, 28, 28))  # BatchNorm statistics that matter in eval mode
    record, _ = _program_record(model)
    program = Program(record)
    assert program.cost() == (28 * 28 * 16 * 9 + 16 * 196 * 10, (500, 10), torch.float32)
    x = torch.randn(500, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(program(x), model.eval()(x), atol=1e-5)


def json_copy(value):
    import json

    return json.loads(json.dumps(value))


def _edited(record, graph):
    import json

    return {**record, "graph": json.dumps(graph)}


def test_program_refuses_what_it_cannot_vouch_for():
    from torch import nn

    from course.checks._training.program import Program, ProgramError

    class Huge(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(784, 10)

        def forward(self, x):
            return self.fc(x.expand(500, 2000, 28, 28).clone().sum(1).flatten(1))

    record, graph = _program_record(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))
    Program(record).cost()
    for target in ("torch.ops.aten.empty.memory_format", "builtins.eval", ["list"], None):
        bad = json_copy(graph)
        bad["graph"]["nodes"][0]["target"] = target
        with pytest.raises(ProgramError, match="does not evaluate|malformed"):
            Program(_edited(record, bad))
    bad = json_copy(graph)
    bad["graph"]["nodes"][-1]["inputs"][0]["arg"] = {"as_sym_int": {"as_name": "s0"}}
    with pytest.raises(ProgramError, match="not supported"):
        Program(_edited(record, bad)).cost()
    for garbage in (None, {}, {"graph": "{not json"}, {"graph": "[]"},
                    {**record, "state": {}}, {**record, "graph": '{"graph": 1, "signature": 2}'}):
        with pytest.raises(ProgramError):
            Program(garbage).cost()
    huge, _ = _program_record(Huge())
    with pytest.raises(ProgramError, match="too large|too much"):
        Program(huge).cost()


def test_accuracy_verdict_survives_garbage():
    from course.checks import CheckFailure
    from course.checks.fashion_mnist import fashion_cnn_accuracy

    for data in (None, [], {"built": None}, {"built": None, "program": 3, "trained": True},
                 {"built": None, "program": {"graph": "x"}, "trained": True}):
        with pytest.raises(CheckFailure):
            fashion_cnn_accuracy.judge({"data": data, "evidence": []}, {})
