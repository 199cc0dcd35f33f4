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


MUTANTS = {
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
    ],
}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests(
    "12_fashion_mnist", MUTANTS)
