"""The in-memory loader: same batches as the reference pipeline, in randperm order."""

import pytest
import torch

from course.loaders import InMemoryImageLoader


def _data(n=37):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g), torch.arange(n) % 10


def test_batches_are_normalised_like_torchvision():
    images, labels = _data()
    loader = InMemoryImageLoader(images, labels, batch_size=8, mean=0.1307, std=0.3081)
    xs, ys = zip(*loader, strict=True)
    x, y = torch.cat(xs), torch.cat(ys)
    expected = (images.float().unsqueeze(1) / 255 - 0.1307) / 0.3081
    assert x.shape == (37, 1, 28, 28) and x.dtype == torch.float32
    torch.testing.assert_close(x, expected)
    assert torch.equal(y, labels)


def test_shuffle_follows_randperm_and_drop_last_counts():
    images, labels = _data()
    g = torch.Generator().manual_seed(5)
    loader = InMemoryImageLoader(images, labels, batch_size=8, shuffle=True, drop_last=True,
                                 generator=g)
    assert len(loader) == 4
    order = torch.randperm(37, generator=torch.Generator().manual_seed(5))
    ys = torch.cat([y for _, y in loader])
    assert torch.equal(ys, labels[order[:32]])
    assert len(InMemoryImageLoader(images, labels, batch_size=8)) == 5


def test_bad_input_is_refused():
    images, labels = _data()
    with pytest.raises(TypeError, match="uint8"):
        InMemoryImageLoader(images.float(), labels)
    with pytest.raises(ValueError, match="labels"):
        InMemoryImageLoader(images, labels[:3])
