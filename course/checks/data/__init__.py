"""Checks for 10_data: a CSV ``Dataset``, an in-memory batch loader, and Normalize's statistics.

Each check is a scenario (runs the answer on inputs built from a seed and records what came back)
and a verdict (rebuilds the inputs, computes the reference with pandas, ``TensorDataset``,
``DataLoader``, ``torch.randperm`` and ``torch.std_mean``, and names the concept that was missed).
"""

from __future__ import annotations

from .csv_dataset import csv_dataset
from .loader import in_memory_loader
from .stats import channel_mean_std, channel_mean_std_mnist

__all__ = ["channel_mean_std", "channel_mean_std_mnist", "csv_dataset", "in_memory_loader"]
