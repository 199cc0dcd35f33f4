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
        """, "raised AttributeError"),
    ],
}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests(
    "10_data", MUTANTS)
