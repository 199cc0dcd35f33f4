"""10_data: the checks accept the solution and reject known-wrong answers, naming the concept."""

import pytest
from mutantkit import make_tests

pytestmark = pytest.mark.nb10

_CSV_INIT = """
            def __init__(self, path, label_column, transform=None):
                frame = pd.read_csv(path)
                self.x = torch.tensor(frame.drop(columns=[label_column]).to_numpy(dtype="float32"))
                self.y = torch.tensor(frame[label_column].to_numpy(), dtype=torch.int64)
                self.transform = transform
"""

_LOADER_INIT = """
            def __init__(self, *tensors, batch_size=1, shuffle=False, drop_last=False,
                         generator=None):
                self.tensors, self.n = tensors, tensors[0].shape[0]
                self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
                self.generator = generator

            def __len__(self):
                if self.drop_last:
                    return self.n // self.batch_size
                return -(-self.n // self.batch_size)
"""

MUTANTS = {
    "CSVDataset": [
        ("label as float", """
        class CSVDataset(Dataset):""" + _CSV_INIT + """
            def __len__(self):
                return len(self.y)

            def __getitem__(self, i):
                x = self.x[i] if self.transform is None else self.transform(self.x[i])
                return x, self.y[i].float()
        """, "int64"),
        ("label among the features", """
        class CSVDataset(Dataset):
            def __init__(self, path, label_column, transform=None):
                frame = pd.read_csv(path)
                self.x = torch.tensor(frame.to_numpy(dtype="float32"))
                self.y = torch.tensor(frame[label_column].to_numpy(), dtype=torch.int64)
                self.transform = transform

            def __len__(self):
                return len(self.y)

            def __getitem__(self, i):
                x = self.x[i] if self.transform is None else self.transform(self.x[i])
                return x, self.y[i]
        """, "except the label column"),
        ("label assumed last", """
        class CSVDataset(Dataset):
            def __init__(self, path, label_column, transform=None):
                frame = pd.read_csv(path)
                self.x = torch.tensor(frame.iloc[:, :-1].to_numpy(dtype="float32"))
                self.y = torch.tensor(frame[label_column].to_numpy(), dtype=torch.int64)
                self.transform = transform

            def __len__(self):
                return len(self.y)

            def __getitem__(self, i):
                x = self.x[i] if self.transform is None else self.transform(self.x[i])
                return x, self.y[i]
        """, "need not be the last"),
        ("ignores transform", """
        class CSVDataset(Dataset):""" + _CSV_INIT + """
            def __len__(self):
                return len(self.y)

            def __getitem__(self, i):
                return self.x[i], self.y[i]
        """, "transform must be applied"),
        ("__get__item typo", """
        class CSVDataset(Dataset):""" + _CSV_INIT + """
            def __len__(self):
                return len(self.y)

            def __get__item(self, i):
                x = self.x[i] if self.transform is None else self.transform(self.x[i])
                return x, self.y[i]
        """, "__get__item"),
        ("len counts columns", """
        class CSVDataset(Dataset):""" + _CSV_INIT + """
            def __len__(self):
                return self.x.shape[1] + 1

            def __getitem__(self, i):
                x = self.x[i] if self.transform is None else self.transform(self.x[i])
                return x, self.y[i]
        """, "number of data rows"),
        ("reads the file per item", """
        class CSVDataset(Dataset):
            def __init__(self, path, label_column, transform=None):
                self.path, self.label, self.transform = path, label_column, transform
                self.n = len(pd.read_csv(path))

            def __len__(self):
                return self.n

            def __getitem__(self, i):
                frame = pd.read_csv(self.path)
                x = torch.tensor(frame.drop(columns=[self.label]).iloc[i].to_numpy(dtype="float32"))
                x = x if self.transform is None else self.transform(x)
                return x, torch.tensor(int(frame[self.label].iloc[i]))
        """, "read the csv once"),
        ("transform on the whole row", """
        class CSVDataset(Dataset):""" + _CSV_INIT + """
            def __len__(self):
                return len(self.y)

            def __getitem__(self, i):
                if self.transform is not None:
                    row = self.transform(torch.cat([self.x[i], self.y[i:i + 1].float()]))
                    return row[:-1], self.y[i]
                return self.x[i], self.y[i]
        """, "features only"),
        ("delegates to TensorDataset", """
        class CSVDataset(TensorDataset):
            def __init__(self, path, label_column, transform=None):
                frame = pd.read_csv(path)
                super().__init__(
                    torch.tensor(frame.drop(columns=[label_column]).to_numpy(dtype="float32")),
                    torch.tensor(frame[label_column].to_numpy(), dtype=torch.int64))
        """, "delegates"),
        ("wraps a TensorDataset", """
        class CSVDataset(Dataset):
            def __init__(self, path, label_column, transform=None):
                frame = pd.read_csv(path)
                self.inner = TensorDataset(
                    torch.tensor(frame.drop(columns=[label_column]).to_numpy(dtype="float32")),
                    torch.tensor(frame[label_column].to_numpy(), dtype=torch.int64))
                self.transform = transform

            def __len__(self):
                return len(self.inner)

            def __getitem__(self, i):
                x, y = self.inner[i]
                return (x if self.transform is None else self.transform(x)), y
        """, "delegates"),
        ("header read as data", """
        class CSVDataset(Dataset):
            def __init__(self, path, label_column, transform=None):
                with open(path) as fh:
                    rows = [line.strip().split(",") for line in fh]
                col = rows[0].index(label_column)
                values = pd.DataFrame(rows).apply(pd.to_numeric, errors="coerce").fillna(0)
                self.y = torch.tensor(values[col].to_numpy(), dtype=torch.int64)
                self.x = torch.tensor(values.drop(columns=[col]).to_numpy(dtype="float32"))
                self.transform = transform

            def __len__(self):
                return len(self.y)

            def __getitem__(self, i):
                x = self.x[i] if self.transform is None else self.transform(self.x[i])
                return x, self.y[i]
        """, "header"),
    ],
    "InMemoryLoader": [
        ("randperm twice per epoch", """
        class InMemoryLoader:""" + _LOADER_INIT + """
            def __iter__(self):
                order = torch.arange(self.n)
                if self.shuffle:
                    torch.randperm(self.n, generator=self.generator)
                    order = torch.randperm(self.n, generator=self.generator)
                for b in range(len(self)):
                    idx = order[b * self.batch_size:(b + 1) * self.batch_size]
                    yield tuple(t[idx] for t in self.tensors)
        """, "nothing else"),
        ("randperm without the generator", """
        class InMemoryLoader:""" + _LOADER_INIT + """
            def __iter__(self):
                order = torch.randperm(self.n) if self.shuffle else torch.arange(self.n)
                for b in range(len(self)):
                    idx = order[b * self.batch_size:(b + 1) * self.batch_size]
                    yield tuple(t[idx] for t in self.tensors)
        """, "generator was not used"),
        ("off-by-one len with drop_last", """
        class InMemoryLoader:
            def __init__(self, *tensors, batch_size=1, shuffle=False, drop_last=False,
                         generator=None):
                self.tensors, self.n = tensors, tensors[0].shape[0]
                self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
                self.generator = generator

            def __len__(self):
                full = -(-self.n // self.batch_size)
                return full - 1 if self.drop_last else full

            def __iter__(self):
                order = (torch.randperm(self.n, generator=self.generator) if self.shuffle
                         else torch.arange(self.n))
                stop = self.n - self.n % self.batch_size if self.drop_last else self.n
                for start in range(0, stop, self.batch_size):
                    idx = order[start:start + self.batch_size]
                    yield tuple(t[idx] for t in self.tensors)
        """, "counts batches"),
        ("drops the partial batch without drop_last", """
        class InMemoryLoader:""" + _LOADER_INIT + """
            def __iter__(self):
                order = (torch.randperm(self.n, generator=self.generator) if self.shuffle
                         else torch.arange(self.n))
                for b in range(self.n // self.batch_size):
                    idx = order[b * self.batch_size:(b + 1) * self.batch_size]
                    yield tuple(t[idx] for t in self.tensors)
        """, "smaller batch must be kept"),
        ("lists instead of tuples", """
        class InMemoryLoader:""" + _LOADER_INIT + """
            def __iter__(self):
                order = (torch.randperm(self.n, generator=self.generator) if self.shuffle
                         else torch.arange(self.n))
                for b in range(len(self)):
                    idx = order[b * self.batch_size:(b + 1) * self.batch_size]
                    yield [t[idx] for t in self.tensors]
        """, "tuples"),
        ("one permutation for all epochs", """
        class InMemoryLoader:
            def __init__(self, *tensors, batch_size=1, shuffle=False, drop_last=False,
                         generator=None):
                self.tensors, self.n = tensors, tensors[0].shape[0]
                self.batch_size, self.drop_last = batch_size, drop_last
                self.order = (torch.randperm(self.n, generator=generator) if shuffle
                              else torch.arange(self.n))

            def __len__(self):
                return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

            def __iter__(self):
                for b in range(len(self)):
                    idx = self.order[b * self.batch_size:(b + 1) * self.batch_size]
                    yield tuple(t[idx] for t in self.tensors)
        """, "every epoch"),
        ("x and y shuffled separately", """
        class InMemoryLoader:""" + _LOADER_INIT + """
            def __iter__(self):
                orders = [torch.randperm(self.n, generator=self.generator) if self.shuffle
                          else torch.arange(self.n) for _ in self.tensors]
                for b in range(len(self)):
                    s = slice(b * self.batch_size, (b + 1) * self.batch_size)
                    yield tuple(t[o[s]] for t, o in zip(self.tensors, orders))
        """, "nothing else"),
        ("delegates to DataLoader", """
        class InMemoryLoader:""" + _LOADER_INIT + """
            def __iter__(self):
                loader = DataLoader(TensorDataset(*self.tensors), batch_size=self.batch_size,
                                    shuffle=self.shuffle, drop_last=self.drop_last,
                                    generator=self.generator)
                for batch in loader:
                    yield tuple(batch)
        """, "earns no credit"),
        ("delegates to DataLoader at run time", """
        import torch.utils.data as tud
        def _make(*a, **k):
            return getattr(tud, "Data" + "Loader")(*a, **k)

        class InMemoryLoader:""" + _LOADER_INIT + """
            def __iter__(self):
                ds = TensorDataset(*self.tensors)
                order = (torch.randperm(self.n, generator=self.generator) if self.shuffle
                         else torch.arange(self.n))
                for batch in _make(ds, batch_size=self.batch_size, drop_last=self.drop_last,
                                   sampler=order.tolist()):
                    yield tuple(batch)
        """, "earns no credit"),
        ("an iterator used up after one epoch", """
        class InMemoryLoader:""" + _LOADER_INIT + """
            def __iter__(self):
                self.position = getattr(self, "position", 0)
                return self

            def __next__(self):
                if self.position >= len(self):
                    raise StopIteration
                if self.position == 0:
                    self.order = (torch.randperm(self.n, generator=self.generator) if self.shuffle
                                  else torch.arange(self.n))
                idx = self.order[self.position * self.batch_size:
                                 (self.position + 1) * self.batch_size]
                self.position += 1
                return tuple(t[idx] for t in self.tensors)
        """, "new epoch"),
        ("shuffles the tensors in place", """
        class InMemoryLoader:""" + _LOADER_INIT + """
            def __iter__(self):
                if self.shuffle:
                    order = torch.randperm(self.n, generator=self.generator)
                    for t in self.tensors:
                        t.copy_(t[order])
                for b in range(len(self)):
                    s = slice(b * self.batch_size, (b + 1) * self.batch_size)
                    yield tuple(t[s].clone() for t in self.tensors)
        """, "must not modify the tensors"),
        ("an unseeded Generator when generator is None", """
        class InMemoryLoader:""" + _LOADER_INIT + """
            def __iter__(self):
                gen = self.generator if self.generator is not None else torch.Generator()
                order = torch.randperm(self.n, generator=gen) if self.shuffle else torch.arange(self.n)
                for b in range(len(self)):
                    idx = order[b * self.batch_size:(b + 1) * self.batch_size]
                    yield tuple(t[idx] for t in self.tensors)
        """, "global random state"),
    ],
    "channel_mean_std": [
        ("Bessel correction", """
        def channel_mean_std(dataset):
            x = torch.stack([dataset[i][0] for i in range(len(dataset))])
            return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
        """, "bessel"),
        ("std of per-image means", """
        def channel_mean_std(dataset):
            x = torch.stack([dataset[i][0] for i in range(len(dataset))])
            means = x.mean(dim=(2, 3))
            return means.mean(dim=0), means.std(dim=0, correction=0)
        """, "per-image means"),
        ("mean of per-image stds", """
        def channel_mean_std(dataset):
            x = torch.stack([dataset[i][0] for i in range(len(dataset))])
            return x.mean(dim=(0, 2, 3)), x.std(dim=(2, 3), correction=0).mean(dim=0)
        """, "average of per-image stds"),
        ("per row instead of per channel", """
        def channel_mean_std(dataset):
            x = torch.stack([dataset[i][0] for i in range(len(dataset))])
            return x.mean(dim=(0, 1, 3)), x.std(dim=(0, 1, 3), correction=0)
        """, "per channel"),
        ("variance instead of std", """
        def channel_mean_std(dataset):
            x = torch.stack([dataset[i][0] for i in range(len(dataset))])
            return x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), correction=0)
        """, "not the variance"),
        ("needs .tensors", """
        def channel_mean_std(dataset):
            x = dataset.tensors[0]
            return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3), correction=0)
        """, "only len(dataset) and dataset[i]"),
        ("unweighted average of batch means", """
        def channel_mean_std(dataset):
            means, sq_means = [], []
            for images, _ in DataLoader(dataset, batch_size=4):
                means.append(images.double().mean(dim=(0, 2, 3)))
                sq_means.append((images.double() ** 2).mean(dim=(0, 2, 3)))
            mean = torch.stack(means).mean(dim=0)
            var = torch.stack(sq_means).mean(dim=0) - mean ** 2
            return mean.float(), var.sqrt().float()
        """, "weight each batch"),
    ],
}

CORRECT = {
    "CSVDataset": [
        ("a DataFrame kept in memory, converted per item", """
        import numpy as np

        class CSVDataset(Dataset):
            def __init__(self, path, label_column, transform=None):
                self.frame = pd.read_csv(path)
                self.label_column = label_column
                self.feature_columns = [c for c in self.frame.columns if c != label_column]
                self.transform = transform

            def __len__(self):
                return len(self.frame)

            def __getitem__(self, idx):
                row = self.frame.iloc[idx]
                x = torch.tensor(row[self.feature_columns].to_numpy(dtype=np.float32))
                if self.transform:
                    x = self.transform(x)
                return x, torch.tensor(int(row[self.label_column]))
        """),
        ("frame.pop and torch.from_numpy", """
        import numpy as np

        class CSVDataset(Dataset):
            def __init__(self, path, label_column, transform=None):
                frame = pd.read_csv(path)
                labels = frame.pop(label_column)
                self.x = torch.from_numpy(frame.to_numpy(dtype=np.float32, copy=True))
                self.y = torch.from_numpy(labels.to_numpy(dtype=np.int64, copy=True))
                self.transform = transform

            def __len__(self):
                return self.x.shape[0]

            def __getitem__(self, i):
                x = self.x[i]
                return (self.transform(x) if self.transform is not None else x), self.y[i]
        """),
        ("a list of samples built once (torchvision style)", """
        class CSVDataset(Dataset):
            def __init__(self, path, label_column, transform=None):
                frame = pd.read_csv(path)
                features = frame.drop(columns=label_column).to_numpy()
                labels = frame[label_column].to_numpy()
                super().__init__()
                self.samples = [(torch.as_tensor(f, dtype=torch.float32),
                                 torch.as_tensor(l, dtype=torch.int64))
                                for f, l in zip(features, labels)]
                self.transform = transform

            def __len__(self):
                return len(self.samples)

            def __getitem__(self, index):
                features, label = self.samples[index]
                if self.transform is not None:
                    features = self.transform(features)
                return features, label
        """),
    ],
    "InMemoryLoader": [
        ("torch.split over a permuted index", """
        import math

        class InMemoryLoader:
            def __init__(self, *tensors, batch_size=1, shuffle=False, drop_last=False,
                         generator=None):
                self.tensors = tensors
                self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
                self.generator = generator

            def __len__(self):
                n = self.tensors[0].size(0)
                return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

            def __iter__(self):
                n = self.tensors[0].size(0)
                order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
                for idx in torch.split(order, self.batch_size):
                    if self.drop_last and len(idx) < self.batch_size:
                        break
                    yield tuple(t[idx.to(t.device)] for t in self.tensors)
        """),
        ("a separate iterator object with index_select", """
        class _Epoch:
            def __init__(self, tensors, order, batch_size, count):
                self.tensors, self.order = tensors, order
                self.batch_size, self.count, self.done = batch_size, count, 0

            def __iter__(self):
                return self

            def __next__(self):
                if self.done == self.count:
                    raise StopIteration
                start = self.done * self.batch_size
                idx = self.order[start:start + self.batch_size]
                self.done += 1
                return tuple(t.index_select(0, idx.to(t.device)) for t in self.tensors)


        class InMemoryLoader:
            def __init__(self, *tensors, batch_size=1, shuffle=False, drop_last=False,
                         generator=None):
                assert all(t.shape[0] == tensors[0].shape[0] for t in tensors)
                self.tensors, self.batch_size = tensors, batch_size
                self.shuffle, self.drop_last, self.generator = shuffle, drop_last, generator

            def __len__(self):
                full, rest = divmod(self.tensors[0].shape[0], self.batch_size)
                return full + (1 if rest and not self.drop_last else 0)

            def __iter__(self):
                n = self.tensors[0].shape[0]
                if self.shuffle:
                    order = torch.randperm(n, generator=self.generator)
                else:
                    order = torch.arange(n)
                return _Epoch(self.tensors, order, self.batch_size, len(self))
        """),
        ("views when not shuffling", """
        class InMemoryLoader:
            def __init__(self, *tensors, batch_size=1, shuffle=False, drop_last=False,
                         generator=None):
                self.tensors, self.batch_size = tensors, batch_size
                self.shuffle, self.drop_last, self.generator = shuffle, drop_last, generator

            def __len__(self):
                n = len(self.tensors[0])
                return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

            def __iter__(self):
                tensors = self.tensors
                if self.shuffle:
                    perm = torch.randperm(len(tensors[0]), generator=self.generator)
                    tensors = [t[perm.to(t.device)] for t in tensors]
                for b in range(len(self)):
                    yield tuple(t[b * self.batch_size:(b + 1) * self.batch_size] for t in tensors)
        """),
    ],
    "channel_mean_std": [
        ("two passes: the mean, then squared deviations", """
        def channel_mean_std(dataset):
            loader = DataLoader(dataset, batch_size=256)
            total, count = 0, 0
            for images, _ in loader:
                total = total + images.double().sum(dim=(0, 2, 3))
                count += images.numel() // images.shape[1]
            mean = total / count
            squares = 0
            for images, _ in loader:
                squares = squares + ((images.double() - mean.view(1, -1, 1, 1)) ** 2).sum(dim=(0, 2, 3))
            return mean.float(), (squares / count).sqrt().float()
        """),
        ("Welford / Chan: merge per-batch statistics", """
        def channel_mean_std(dataset):
            count, mean, m2 = 0, None, None
            for images, _ in DataLoader(dataset, batch_size=3):
                x = images.double().transpose(0, 1).reshape(images.shape[1], -1)
                n_b = x.shape[1]
                mean_b = x.mean(dim=1)
                m2_b = ((x - mean_b[:, None]) ** 2).sum(dim=1)
                if mean is None:
                    count, mean, m2 = n_b, mean_b, m2_b
                    continue
                delta = mean_b - mean
                total = count + n_b
                mean = mean + delta * n_b / total
                m2 = m2 + m2_b + delta ** 2 * count * n_b / total
                count = total
            return mean.float(), (m2 / count).sqrt().float()
        """),
        ("every sample by index, then torch.std_mean", """
        def channel_mean_std(dataset):
            images = torch.stack([dataset[i][0] for i in range(len(dataset))])
            std, mean = torch.std_mean(images, dim=(0, 2, 3), correction=0)
            return mean, std
        """),
    ],
}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests(
    "10_data", MUTANTS, CORRECT)


class _Garbage:
    """Answers nothing sensible: every call returns an object that is not what was asked for."""

    def __init__(self, *args, **kwargs):
        pass

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return {"row": i}

    def __iter__(self):
        return iter([[1, 2], "batch", None])


def _raises(*args, **kwargs):
    raise ValueError("no")


@pytest.mark.parametrize("name", ["csv_dataset", "in_memory_loader", "channel_mean_std"])
@pytest.mark.parametrize("answer", [_Garbage, _raises, lambda *a, **k: None, int],
                         ids=["garbage", "raises", "none", "int"])
def test_scenarios_survive_any_answer(name, answer):
    """A scenario records whatever happens (never stops), and the verdict turns it into feedback."""
    from course.checks import data as check
    from course.checks._core import CheckFailure
    from course.checks._transcript import roundtrip

    found = getattr(check, name)
    record = found.record([answer], {"thorough": True, "seed": 3})
    assert "failed" not in record, record
    with pytest.raises(CheckFailure) as failure:
        found.judge(roundtrip(record), {"thorough": True, "hidden": False, "seed": 3})
    assert "cannot read" not in str(failure.value), str(failure.value)


def test_mnist_reference_constants():
    """The verdict's MNIST statistics are torch.std_mean over the verified training split."""
    import torch

    import course
    from course.checks.data import stats

    try:
        images, _ = course.data.load_split("MNIST", train=True)
    except course.data.DataMissingError:
        pytest.skip("MNIST is not on this machine (`course data`)")
    std, mean = torch.std_mean(images.double() / 255, correction=0)
    assert abs(mean.item() - stats.MNIST_MEAN) < 1e-10
    assert abs(std.item() - stats.MNIST_STD) < 1e-10
