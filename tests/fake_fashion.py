"""A small, learnable stand-in for Fashion-MNIST, written in torchvision's raw IDX format so the real
loading code (torchvision.datasets.FashionMNIST and handgrad.training.data) runs without the 30 MB files."""

import gzip
import struct
from pathlib import Path

import numpy as np

FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _images_and_labels(n, rng):
    """Class c lights up the c-th 7×7 cell of a 4×4 grid over a noisy background."""
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        r, k = divmod(int(c), 4)
        images[i, 7 * r : 7 * r + 7, 7 * k : 7 * k + 7] = rng.integers(180, 256, (7, 7))
    return images, labels


def write(root, n_train=600, n_test=200, seed=0, gz=False):
    """Write the four IDX files under ``root/FashionMNIST/raw/``; returns ``root``."""
    raw = Path(root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for train, n in ((True, n_train), (False, n_test)):
        images, labels = _images_and_labels(n, rng)
        image_file, label_file = FILES[train]
        image_bytes = struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes()
        label_bytes = struct.pack(">II", 2049, n) + labels.tobytes()
        for name, data in ((image_file, image_bytes), (label_file, label_bytes)):
            if gz:
                (raw / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (raw / name).write_bytes(data)
    return Path(root)
