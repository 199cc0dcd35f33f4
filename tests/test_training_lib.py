"""course.training and course.viz (training pictures) on tiny synthetic data: fit, evaluate, exact resume."""

import matplotlib
import pytest
import torch
from torch import nn

from course import training
from course.loaders import InMemoryImageLoader
from course.viz import fashion_mnist as viz_training

pytestmark = pytest.mark.nb11

matplotlib.use("Agg")


def _loader(n=50, batch_size=16, shuffle=True, seed=0):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    return InMemoryImageLoader(images, labels, batch_size, shuffle=shuffle, mean=0.5, std=0.25,
                               generator=gen)


def _model():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(16, 10))


def _run(tmp_path, epochs, resume_after=None):
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, epochs=epochs, steps_per_epoch=4)
    loader = _loader()
    ckpt = tmp_path / "run.pt"
    if resume_after is None:
        return model, training.fit(model, loader, nn.CrossEntropyLoss(), opt, epochs,
                                   val_loader=_loader(shuffle=False), scheduler=sched,
                                   progress=False)
    training.fit(model, loader, nn.CrossEntropyLoss(), opt, resume_after, scheduler=sched,
                 val_loader=_loader(shuffle=False), checkpoint=ckpt, progress=False)
    torch.manual_seed(99)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, epochs=epochs, steps_per_epoch=4)
    loader = _loader(seed=5)  # the generator's state comes back from the checkpoint
    history = training.fit(model, loader, nn.CrossEntropyLoss(), opt, epochs, scheduler=sched,
                           val_loader=_loader(shuffle=False), checkpoint=ckpt, resume=True,
                           progress=False)
    return model, history


def test_resume_is_exact(tmp_path):
    full, h_full = _run(tmp_path / "a", 3)
    resumed, h_resumed = _run(tmp_path / "b", 3, resume_after=1)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert h_full == h_resumed


def test_evaluate_averages_over_samples():
    torch.manual_seed(0)
    model = _model().eval()
    loader = _loader(n=37, batch_size=16, shuffle=False)
    result = training.evaluate(model, loader, nn.CrossEntropyLoss())
    logits, targets = training.predict(model, loader)
    assert result["accuracy"] == pytest.approx((logits.argmax(1) == targets).float().mean().item())
    assert result["loss"] == pytest.approx(nn.functional.cross_entropy(logits, targets).item(), rel=1e-5)


def test_seed_everything_repeats():
    training.seed_everything(3)
    a = torch.rand(3)
    training.seed_everything(3)
    assert torch.equal(a, torch.rand(3))


def test_plots_return_figures():
    import matplotlib.pyplot as plt

    history = {"epoch": [1, 2], "train_loss": [1.0, 0.5], "train_accuracy": [0.5, 0.8],
               "val_loss": [1.1, 0.7], "val_accuracy": [0.4, 0.7]}
    figs = [viz_training.plot_history(history),
            viz_training.plot_confusion_matrix(torch.randint(0, 9, (10, 10))),
            viz_training.plot_class_bars(torch.rand(10), compare=torch.rand(10).tolist(),
                                         labels=("a", "b")),
            viz_training.show_misclassified(torch.rand(20, 28, 28), torch.randint(0, 3, (20,)),
                                            torch.randint(0, 3, (20,)))]
    assert all(f is not None for f in figs)
    plt.close("all")
