"""Checks for 10_data's ``channel_mean_std(dataset)``: the numbers ``Normalize`` needs.

The scenario hands the answer map-style data sets built from the seed (and MNIST's training
split); the verdict rebuilds the images and computes ``torch.std_mean`` over them itself.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

from .._core import Check, CheckFailure, Raised, attempt, expect, require, type_name

__all__ = ["channel_mean_std", "channel_mean_std_mnist"]

_EX = "channel_mean_std"
# torch.std_mean(correction=0) in float64 over MNIST's 60,000 training images after ToTensor
# (pixels / 255), from the md5-verified files that course.data serves; tests/test_nb10_data.py
# recomputes them whenever the data is present.
MNIST_MEAN, MNIST_STD = 0.13066047627379915, 0.30810780385650216
_MNIST_ROUNDED = (0.1307, 0.3081)


class _ListDataset(Dataset):
    """A map-style dataset with no ``.tensors``: answers must use len() and indexing."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        return f"<a map-style dataset of {len(self)} (image, label) items>"

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.images[i], int(self.labels[i])


def _images(thorough: bool, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    shapes = [(5, 1, 4, 3), (6, 3, 5, 4)]
    if thorough:
        shapes += [(1, 2, 3, 5), (17, 3, 6, 7), (4, 4, 2, 9)]
    out = []
    for k, (n, c, h, w) in enumerate(shapes):
        # each image gets its own brightness so per-image statistics differ from global ones
        scale = torch.rand(1, c, 1, 1, generator=gen) * 3 + 0.5
        offset = torch.randn(n, c, 1, 1, generator=gen) * 2 + torch.arange(c).view(1, c, 1, 1)
        x = torch.randn(n, c, h, w, generator=gen) * scale + offset
        if thorough and k == 3:
            x = x + 10.0  # a larger mean than std
        out.append((x, torch.randint(0, 10, (n,), generator=gen)))
    return out


def _where(x: torch.Tensor) -> str:
    n, c, h, w = x.shape
    return f"{n} images of shape ({c}, {h}, {w})"


def _scenario(fn: Any, *, thorough: bool = False, seed: int = 0) -> list[dict[str, Any]]:
    record = []
    for k, (x, labels) in enumerate(_images(thorough, seed)):
        # a TensorDataset, then a plain map-style data set without .tensors
        ds = TensorDataset(x, labels) if k % 2 == 0 else _ListDataset(x, labels)
        before = x.clone()
        got = attempt(fn, ds, call=f"channel_mean_std(<a data set of {_where(x)}>)")
        record.append({"result": got, "unchanged": torch.equal(x, before)})
    return record


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double().cpu(), b.double().cpu(),
                                                      rtol=rtol, atol=1e-6))



def _pair(got: Any, c: int, where: str, hidden: bool) -> tuple[torch.Tensor, torch.Tensor]:
    require(isinstance(got, tuple | list) and len(got) == 2,
            "channel_mean_std must return a pair (mean, std)",
            f"{where}: it returned {type_name(got)}", hidden)
    for name, t in zip(("mean", "std"), got, strict=True):
        require(isinstance(t, torch.Tensor), f"the {name} must be a torch.Tensor",
                f"{where}: got {type_name(t)}", hidden)
        require(tuple(t.shape) == (c,), f"the {name} has one value per CHANNEL (dimension 0 of "
                "each (C, H, W) image), averaged over every pixel of every image: reduce over "
                "images, rows and columns",
                f"{where}: expected shape ({c},), got {tuple(t.shape)}", hidden)
        require(t.is_floating_point(), f"the {name} must be a floating-point tensor",
                f"{where}: got {t.dtype}", hidden)
    return got[0], got[1]


def _unweighted_batches(mean: torch.Tensor, x: torch.Tensor) -> bool:
    """Does ``mean`` equal the plain average of per-batch means for some batch size?"""
    n = x.shape[0]
    for bs in range(1, n):
        if n % bs:
            batch_means = torch.stack([b.mean(dim=(0, 2, 3)) for b in x.split(bs)])
            if _close(mean, batch_means.mean(dim=0), rtol=1e-5):
                return True
    return False


def _diagnose_std(std: torch.Tensor, x: torch.Tensor) -> str:
    dims = (0, 2, 3)
    per_image_mean = x.mean(dim=(2, 3))
    spread = ("this is the spread of the per-image means; the std must be over every pixel of "
              "every image")
    average = ("the average of per-image stds is not the std of all pixels (each image has its "
               "own mean); compute the std over every pixel of every image around the global mean")
    candidates = [
        (x.std(dim=dims, correction=1), "use no Bessel correction: the std is over the whole "
         "population of pixels, sqrt(mean((x - mean)²)) (unbiased=False / correction=0)"),
        (per_image_mean.std(dim=0, correction=0), spread),
        (per_image_mean.std(dim=0, correction=1), spread),
        (x.std(dim=(2, 3), correction=0).mean(dim=0), average),
        (x.std(dim=(2, 3), correction=1).mean(dim=0), average),
        (x.var(dim=dims, correction=0), "return the standard deviation (the square root of the "
         "variance), not the variance"),
    ]
    for value, concept in candidates:
        if _close(std, value, rtol=1e-5):
            return concept
    return "the std must be sqrt(mean((x - mean)²)) per channel over every pixel of every image"


def _verdict(record: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """``fn(dataset)`` must equal the per-channel mean and population std of the stacked images."""
    images = _images(thorough, seed)
    require(isinstance(record, list) and len(record) == len(images),
            "the check could not read what channel_mean_std returned", None, hidden)
    for k, ((x, _), entry) in enumerate(zip(images, record, strict=True)):
        where = _where(x)
        probe = ("the per-channel mean and std of a TensorDataset" if k % 2 == 0 else
                 "any map-style data set of (image, label) items: use only len(dataset) and "
                 "dataset[i] (or a DataLoader over it), not attributes such as .tensors")
        got = expect(entry["result"], _EX, probe, hidden=hidden)
        mean, std = _pair(got, x.shape[1], where, hidden)
        require(entry["unchanged"] is True, "channel_mean_std must only read the images, never "
                "modify them", where, hidden)
        exp_std, exp_mean = torch.std_mean(x.double(), dim=(0, 2, 3), correction=0)
        if not _close(mean, exp_mean):
            concept = "the mean is per channel over every pixel of every image"
            if _unweighted_batches(mean, x.double()):
                concept = ("weight each batch by its number of pixels: the last batch is smaller, "
                           "so the plain average of per-batch means is not the mean over all "
                           "pixels (accumulate sums and counts, divide once at the end)")
            raise CheckFailure(concept, f"{where}: expected {exp_mean.tolist()}, got "
                               f"{mean.tolist()}", hidden)
        if not _close(std, exp_std):
            raise CheckFailure(_diagnose_std(std, x.double()),
                               f"{where}: expected {exp_std.tolist()}, got {std.tolist()}", hidden)


channel_mean_std = Check("data.channel_mean_std", _EX, _scenario, _verdict)
channel_mean_std.__doc__ = _verdict.__doc__


def _mnist_scenario(fn: Any) -> dict[str, Any]:
    from ...data import load_split

    data = attempt(load_split, "MNIST", train=True, call="course.data.load_split('MNIST')")
    if isinstance(data, Raised):
        return {"data": data}
    images, labels = data
    x = images.unsqueeze(1).float().div_(255.0)  # what ToTensor() gives, image by image
    return {"data": None, "result": attempt(
        fn, TensorDataset(x, labels),
        call="channel_mean_std(<MNIST's 60,000 training images, ToTensor scale>)")}


def _mnist_verdict(record: Any, *, hidden: bool = False) -> None:
    """On the real MNIST training images (ToTensor scale) the result is 0.1307 and 0.3081."""
    require(isinstance(record, dict), "the check could not read what channel_mean_std returned",
            None, hidden)
    if isinstance(record.get("data"), Raised):
        raise CheckFailure("the MNIST data was missing where the check ran: run `course data` "
                           "(this is not a mistake in channel_mean_std)",
                           record["data"].describe(), hidden)
    got = expect(record.get("result"), _EX, "the statistics of MNIST's training images",
                 hidden=hidden)
    mean, std = _pair(got, 1, "MNIST's training images", hidden)
    rounded = (round(float(mean[0]), 4), round(float(std[0]), 4))
    require(_close(mean, torch.tensor([MNIST_MEAN])) and _close(std, torch.tensor([MNIST_STD]))
            and rounded == _MNIST_ROUNDED,
            "on MNIST's training images (pixels scaled to [0, 1]) the statistics must be the "
            "well-known mean 0.1307 and std 0.3081 (when the small cases pass, accumulate the sums "
            "in float64: float32 loses digits over 47 million pixels)",
            f"got mean {float(mean[0]):.6f}, std {float(std[0]):.6f}", hidden)


channel_mean_std_mnist = Check("data.channel_mean_std_mnist", _EX, _mnist_scenario,
                               _mnist_verdict, options=("hidden",))
channel_mean_std_mnist.__doc__ = _mnist_verdict.__doc__
