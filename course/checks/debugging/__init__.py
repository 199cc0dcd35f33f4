"""Checks for 13_debugging: seven training scripts that run but learn badly, and their fixes.

Each check runs the student's fix in a small, seeded pipeline (scenario) and compares what it did
with a correct pipeline and with the known buggy ones (verdict), so the feedback can name the
symptom and its cause.
"""

from __future__ import annotations

from .checkpoint import reload_trained
from .evaluation import evaluate_fixed
from .inputs import normalization_stats
from .loops import fixed_train_step, train_epochs
from .outputs import build_classifier, loss_and_probs

__all__ = ["build_classifier", "evaluate_fixed", "fixed_train_step", "loss_and_probs",
           "normalization_stats", "reload_trained", "train_epochs"]
