"""scikit-learn's 8×8 handwritten digits with a fixed train/test split (no download: the data
ships inside scikit-learn).

Pixels are integers 0..16. The float models scale them by ``NetConfig.input_scale`` (1/16); the
integer model feeds the raw 5-bit integers to the stem bit-plane by bit-plane.
"""

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Digits", "load_digits", "SPLIT_SEED", "TEST_FRACTION", "PIXEL_MAX", "PIXEL_BITS"]

#: The split is part of the reported figures: do not change it.
SPLIT_SEED = 0
TEST_FRACTION = 0.25
PIXEL_MAX = 16
PIXEL_BITS = 5


@dataclass(frozen=True)
class Digits:
    """One split: ``images`` (n, 1, 8, 8) int64 pixels 0..16, ``labels`` (n,) int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self):
        return len(self.labels)

    def head(self, n):
        """The first ``n`` samples (all when ``n`` is None or larger)."""
        if n is None or n >= len(self):
            return self
        return Digits(self.images[:n], self.labels[:n])


def load_digits():
    """``(train, test)``: 1347 / 450 samples, stratified, ``random_state = SPLIT_SEED``."""
    from sklearn.datasets import load_digits as sk_load
    from sklearn.model_selection import train_test_split
    data = sk_load()
    images = data.images.astype(np.int64).reshape(-1, 1, 8, 8)
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, data.target.astype(np.int64), test_size=TEST_FRACTION, random_state=SPLIT_SEED,
        stratify=data.target)
    return (Digits(torch.from_numpy(x_tr), torch.from_numpy(y_tr)),
            Digits(torch.from_numpy(x_te), torch.from_numpy(y_te)))
