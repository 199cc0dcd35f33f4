"""Benchmarks of the course's data loading and training recipe on MNIST; prints figures only.

Run from the repository root (MNIST must be in data/, see data/README.md):

    .venv/bin/python benchmarks/bench.py                    # everything, ~15 min on a CPU
    .venv/bin/python benchmarks/bench.py --quick            # fewer batches; classic recipe 1 epoch
    .venv/bin/python benchmarks/bench.py --section data     # only the loader throughput
    .venv/bin/python benchmarks/bench.py --quick --max-samples 4000   # a smoke test of the script

Sections:
  data   samples/second of torchvision's per-sample pipeline (ToTensor + Normalize, DataLoader,
         batch 64, num_workers=0) vs course.loaders.InMemoryImageLoader (batch 64 and 256),
         measured in the same run; target: in-memory >= 100x faster.
  grading  seconds per notebook and per student to grade a whole-course submission with
         `course autograde`, against the floor of starting a kernel and importing torch
         (benchmarks/grading.py).
  train  training seconds (evaluation excluded) to reach 99.0% test accuracy: the course recipe
         (small Conv-BN-ReLU CNN in channels-last layout, in-memory loader, batch 256, AdamW +
         a 1.2-epoch OneCycleLR) vs the classic PyTorch MNIST example (its Net, Adadelta lr 1.0,
         StepLR(1, 0.7), batch 64, per-sample torchvision pipeline), both evaluated at the same
         points, every tenth of an epoch, the clock stopped while evaluating; the classic one
         for a bounded number of epochs; target: course <= 1/10 of classic.

It asserts nothing; the data section runs on one thread. --max-samples caps the samples per epoch and per test pass (the figures are
then not representative). torch uses as many threads as the machine has cores.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from course.data import load_split, torchvision_dataset  # noqa: E402
from course.loaders import InMemoryImageLoader  # noqa: E402

MEAN, STD, TARGET = 0.1307, 0.3081, 0.99


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def per_sample_dataset(train: bool, limit: int | None):
    from torchvision import transforms as T

    pipeline = T.Compose([T.ToTensor(), T.Normalize((MEAN,), (STD,))])
    ds = torchvision_dataset("MNIST", train=train, transform=pipeline)
    return Subset(ds, range(min(limit, len(ds)))) if limit else ds


def in_memory_split(train: bool, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_split("MNIST", train=train)
    return (x[:limit], y[:limit]) if limit else (x, y)


def samples_per_second(loader, batches: int) -> float:
    """Time ``batches`` batches after one warm-up batch, restarting epochs as needed."""
    stream = itertools.chain.from_iterable(iter(loader) for _ in itertools.count())
    next(stream)
    seen, start = 0, time.perf_counter()
    for _x, y in itertools.islice(stream, batches):
        seen += len(y)
    return seen / (time.perf_counter() - start)


def bench_data(quick: bool, limit: int | None) -> None:
    print("\n== data: samples per second (MNIST train, normalised float batches, 1 thread) ==")
    # One thread for both: num_workers=0 runs the per-sample pipeline in one thread anyway, and
    # the in-memory loader's batch-sized ops gain nothing from more (on a busy machine they lose).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    slow_batches = 60 if quick else 400
    fast_batches = 300 if quick else 3000
    if limit:
        slow_batches, fast_batches = max(2, limit // 64), max(2, limit // 64)
    x, y = in_memory_split(True, None)
    g = torch.Generator().manual_seed(0)
    rates = {
        "torchvision + DataLoader, batch 64": samples_per_second(DataLoader(
            per_sample_dataset(True, None), batch_size=64, shuffle=True, num_workers=0,
            generator=g), slow_batches),
        "InMemoryImageLoader, batch 64": samples_per_second(InMemoryImageLoader(
            x, y, 64, shuffle=True, mean=MEAN, std=STD, generator=g), fast_batches),
        "InMemoryImageLoader, batch 256": samples_per_second(InMemoryImageLoader(
            x, y, 256, shuffle=True, mean=MEAN, std=STD, generator=g), fast_batches // 4 + 1),
    }
    torch.set_num_threads(threads)
    base = rates["torchvision + DataLoader, batch 64"]
    for name, rate in rates.items():
        print(f"  {name:36s} {rate:14,.0f} samples/s   {rate / base:8.1f}x")
    print(f"  ratio in-memory (batch 64) / per-sample: "
          f"{rates['InMemoryImageLoader, batch 64'] / base:.0f}x (target >= 100x)")


class ClassicNet(nn.Module):
    """The network of the classic PyTorch MNIST example (pytorch/examples, mnist/main.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3, 1), nn.Conv2d(32, 64, 3, 1)
        self.dropout1, self.dropout2 = nn.Dropout(0.25), nn.Dropout(0.5)
        self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = self.dropout2(F.relu(self.fc1(torch.flatten(self.dropout1(x), 1))))
        return F.log_softmax(self.fc2(x), dim=1)


def course_net() -> nn.Module:
    """Three Conv-BN-ReLU-MaxPool blocks (16, 32, 64 channels) and one linear layer."""
    layers: list[nn.Module] = []
    for cin, cout in ((1, 16), (16, 32), (32, 64)):
        layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                   nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 3 * 3, 10))


@torch.no_grad()
def accuracy(model: nn.Module, loader, device: torch.device) -> float:
    model.eval()
    correct = total = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        correct += int((model(x).argmax(dim=1) == y).sum())
        total += len(y)
    return correct / total


def train(name: str, model: nn.Module, opt, sched, per_batch_sched: bool, train_loader,
          test_loader, epochs: int, evals_per_epoch: int, loss_fn, device,
          stop_after: int | None = None) -> dict:
    """Train until TARGET test accuracy or ``epochs`` (or ``stop_after`` steps in all); the clock
    runs only while training. Both recipes are evaluated at the same points (``evals_per_epoch``
    times per epoch), so neither is rounded up to a coarser granularity than the other."""
    steps = len(train_loader)
    channels_last = next(model.parameters()).is_contiguous(memory_format=torch.channels_last) \
        and next(model.parameters()).dim() == 4
    done = 0
    checkpoints = {max(1, round(steps * (k + 1) / evals_per_epoch)) for k in range(evals_per_epoch)}
    clock, epoch_times, last_acc = 0.0, [], 0.0
    for epoch in range(epochs):
        model.train()
        start, epoch_clock = time.perf_counter(), 0.0
        for step, (x, y) in enumerate(train_loader, 1):
            if stop_after is not None and done >= stop_after:
                break
            done += 1
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()
            if per_batch_sched:
                sched.step()
            if step in checkpoints or (stop_after is not None and done == stop_after):
                lap = time.perf_counter() - start
                clock, epoch_clock = clock + lap, epoch_clock + lap
                last_acc = accuracy(model, test_loader, device)
                print(f"  {name}: epoch {epoch + step / steps:4.2f}  {clock:7.1f} s  "
                      f"test accuracy {last_acc:.4f}", flush=True)
                if last_acc >= TARGET:
                    return {"reached": clock, "epochs": epoch + step / steps, "acc": last_acc}
                model.train()
                start = time.perf_counter()
        if not per_batch_sched:
            sched.step()
        epoch_times.append(epoch_clock)
        if stop_after is not None and done >= stop_after:
            break
    return {"reached": None, "epochs": len(epoch_times), "acc": last_acc, "clock": clock,
            "per_epoch": sum(epoch_times) / len(epoch_times)}


def bench_train(quick: bool, limit: int | None, device: torch.device,
                evals_per_epoch: int = 10) -> None:
    print(f"\n== train: seconds of training to {TARGET:.1%} MNIST test accuracy on {device} ==")
    torch.manual_seed(0)
    x, y = in_memory_split(True, limit)
    xt, yt = in_memory_split(False, limit)
    g = torch.Generator().manual_seed(0)
    train_loader = InMemoryImageLoader(x, y, 256, shuffle=True, device=device, mean=MEAN, std=STD,
                                       generator=g)
    test_loader = InMemoryImageLoader(xt, yt, 1000, device=device, mean=MEAN, std=STD)
    model = course_net().to(device, memory_format=torch.channels_last)
    epochs = 2  # the one-cycle schedule spans 1.2 epochs; the second epoch stops there
    opt = torch.optim.AdamW(model.parameters(), lr=8e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=8e-3, pct_start=0.25,
                                                total_steps=int(1.2 * len(train_loader)) + 1)
    course = train("course ", model, opt, sched, True, train_loader, test_loader, epochs,
                   evals_per_epoch, F.cross_entropy, device, stop_after=int(1.2 * len(train_loader)))

    torch.manual_seed(0)
    classic_epochs = 1 if quick else 4
    train_tv = DataLoader(per_sample_dataset(True, limit), batch_size=64, shuffle=True,
                          generator=torch.Generator().manual_seed(0))
    test_tv = DataLoader(per_sample_dataset(False, limit), batch_size=1000)
    model = ClassicNet().to(device)
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    classic = train("classic", model, opt, sched, False, train_tv, test_tv, classic_epochs,
                    evals_per_epoch, F.nll_loss, device)

    print("\n  summary")
    if course["reached"] is None:
        print(f"  course recipe: did NOT reach {TARGET:.1%} in {epochs} epochs "
              f"({course['clock']:.1f} s, last accuracy {course['acc']:.4f})")
        return
    print(f"  course recipe: {course['reached']:.1f} s ({course['epochs']:.1f} epochs, "
          f"accuracy {course['acc']:.4f})")
    if classic["reached"] is not None:
        ratio = classic["reached"] / course["reached"]
        print(f"  classic recipe: {classic['reached']:.1f} s ({classic['epochs']:.1f} epochs, "
              f"accuracy {classic['acc']:.4f})")
        print(f"  course / classic = 1/{ratio:.1f} (target <= 1/10)")
    else:
        bound = classic["clock"] + classic["per_epoch"] / evals_per_epoch
        print(f"  classic recipe: not at {TARGET:.1%} after {classic['epochs']} epoch(s): "
              f"{classic['per_epoch']:.1f} s per epoch, accuracy {classic['acc']:.4f}; it needs "
              f"at least one more evaluation interval, so its time to {TARGET:.1%} is >= {bound:.1f} s")
        print(f"  course / classic <= 1/{bound / course['reached']:.1f} (target <= 1/10)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer batches; classic 1 epoch")
    parser.add_argument("--section", choices=("data", "train", "grading", "all"), default="all")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks graded at once (grading)")
    parser.add_argument("--max-samples", type=int, default=None,
                        help="cap samples per epoch and per test pass (smoke tests only)")
    parser.add_argument("--device", default="cpu", help="device for training (default cpu)")
    parser.add_argument("--evals-per-epoch", type=int, default=10,
                        help="test-set evaluations per epoch, the same for both recipes (train)")
    args = parser.parse_args(argv)
    torch.set_num_threads(cores())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
          f"{load:.1f} (figures need an otherwise idle machine), "
          f"{'quick' if args.quick else 'full'} run"
          + (f", at most {args.max_samples} samples per pass" if args.max_samples else ""))
    if args.section in ("data", "all"):
        bench_data(args.quick, args.max_samples)
    if args.section in ("train", "all"):
        bench_train(args.quick, args.max_samples, torch.device(args.device), args.evals_per_epoch)
    if args.section in ("grading", "all"):
        from grading import bench_grading

        bench_grading(args.jobs)


if __name__ == "__main__":
    main()
