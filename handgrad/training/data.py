"""Fashion-MNIST as a LightningDataModule that keeps the whole set as tensors on the training device.

torchvision reads (and, where the files are missing, downloads and MD5-checks) the original IDX
files once; the images are then converted to one float tensor, moved to the device the Trainer
trains on, and every batch is a single indexing operation, instead of converting 60,000 PIL images
one by one each epoch as ``DataLoader(FashionMNIST(transform=ToTensor()))`` does.
"""

import math
from pathlib import Path

import lightning as L
import torch
import torchvision
from torchvision.datasets.utils import check_integrity

CLASSES = tuple(torchvision.datasets.FashionMNIST.classes)


class DatasetError(RuntimeError):
    """The dataset is missing, cannot be fetched, or cannot be read."""


class TensorBatches:
    """Batches of ``(x[idx], y[idx])`` drawn from tensors by indexing, one rank's share of them.

    With ``shuffle`` the order is a fresh permutation each epoch, seeded by ``seed + epoch`` (so a
    run resumed at epoch k sees the batches an uninterrupted run would). Under data parallelism each
    of ``world_size`` ranks takes every ``world_size``-th index of the permutation; for training
    (``pad=True``) the permutation is first padded by wrapping around so that every rank runs the
    same number of steps, as ``DistributedSampler`` does.
    """

    def __init__(self, x, y, batch_size, shuffle=False, seed=0, epoch=lambda: 0, rank=0, world_size=1, pad=False):
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle, self.seed, self.epoch = shuffle, seed, epoch
        self.rank, self.world_size, self.pad = rank, world_size, pad

    def _indices(self):
        n = len(self.y)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + self.epoch()))
        else:
            order = torch.arange(n)
        if self.pad and n % self.world_size:
            order = torch.cat([order, order[: self.world_size - n % self.world_size]])
        return order[self.rank :: self.world_size].to(self.y.device)

    def __len__(self):
        n = len(self.y)
        per_rank = math.ceil(n / self.world_size) if self.pad else len(range(self.rank, n, self.world_size))
        return math.ceil(per_rank / self.batch_size)

    def __iter__(self):
        for idx in self._indices().split(self.batch_size):
            yield self.x[idx], self.y[idx]


class FashionMNISTDataModule(L.LightningDataModule):
    """Fashion-MNIST, 60,000 training and 10,000 test images of 28×28, held on the training device.

    Args:
        data_dir: the root holding ``FashionMNIST/raw/`` (the four original ``.gz`` files)
        batch_size: images per training step, ≥ 1
        eval_batch_size: images per validation and test step, ≥ 1 (it changes no result, only speed)
        val_size: training images held out for validation by a fixed random split, in [0, 60000);
            0 trains on all 60,000 and skips validation (the seed's setting)
        normalize: standardise pixels with the training set's mean and std; ``False`` keeps the
            seed's scaling to [0, 1] (``ToTensor``)
        shuffle: reshuffle the training set every epoch (the seed's quickstart does not)
        augment: during training, flip each image left-right with probability ½ and shift it by up
            to ``shift`` pixels each way (random per image, on the training device; the test and
            validation images are never changed)
        shift: the largest shift of ``augment``, in pixels, in [0, 14)
        download: fetch the files from the internet when they are missing
    """

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_size: int = 5000,
        normalize: bool = True,
        shuffle: bool = True,
        augment: bool = False,
        shift: int = 2,
        download: bool = True,
    ):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be at least 1, got {eval_batch_size}")
        if not 0 <= val_size < 60000:
            raise ValueError(f"val_size must be in [0, 60000), got {val_size}")
        if not 0 <= shift < 14:
            raise ValueError(f"shift must be a whole number of pixels in [0, 14), got {shift}")
        self.save_hyperparameters()
        self.data_dir, self.batch_size, self.eval_batch_size = data_dir, batch_size, eval_batch_size
        self.val_size = val_size
        self.normalize, self.shuffle, self.download = normalize, shuffle, download
        self.augment, self.shift = augment, shift
        self.train_set = self.val_set = self.test_set = None

    def _dataset(self, train, download):
        raw = Path(self.data_dir) / "FashionMNIST" / "raw"
        resources = torchvision.datasets.FashionMNIST.resources
        extracted = all((raw / Path(url).stem).is_file() for url, _ in resources)
        # The four original .gz files here (a fresh clone ships them) are extracted even without
        # download: torchvision's download() fetches only a file that is missing or fails its MD5.
        local = not extracted and all(check_integrity(str(raw / Path(url).name), md5) for url, md5 in resources)
        try:
            return torchvision.datasets.FashionMNIST(self.data_dir, train=train, download=download or local)
        except Exception as error:
            detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if extracted:
                raise DatasetError(
                    f"Fashion-MNIST files in {raw}/ cannot be read ({detail}); delete the extracted "
                    f"(non-.gz) files there so they are extracted again"
                ) from None
            corrupt = [
                Path(url).name
                for url, md5 in torchvision.datasets.FashionMNIST.resources
                if (raw / Path(url).name).is_file() and not check_integrity(str(raw / Path(url).name), md5)
            ]
            if corrupt:
                raise DatasetError(
                    f"Fashion-MNIST file {raw / corrupt[0]} is corrupt (its MD5 is not the original's); "
                    f"replace it with the original file"
                ) from None
            raise DatasetError(
                f"Fashion-MNIST is not available in {raw}/ ({detail}); put the four original .gz "
                f"files there" + ("" if download else " or pass --data.download true")
            ) from None

    def prepare_data(self):
        for train in (True, False):
            self._dataset(train, self.download)

    def setup(self, stage=None):
        if self.test_set is not None:
            return
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        train, test = self._dataset(True, False), self._dataset(False, False)
        x_train, y_train = self._images(train), train.targets
        x_test, y_test = self._images(test), test.targets
        if self.normalize:
            mean, std = x_train.mean(), x_train.std()
            x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
        held_out = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(0))
        val_idx, train_idx = held_out[: self.val_size], held_out[self.val_size :]
        if self.val_size == 0:
            train_idx = torch.arange(len(y_train))                # in file order, as the seed reads it
        self.train_set = (x_train[train_idx].to(device), y_train[train_idx].to(device))
        self.val_set = (x_train[val_idx].to(device), y_train[val_idx].to(device))
        self.test_set = (x_test.to(device), y_test.to(device))

    def _images(self, dataset):
        """uint8 (N, 28, 28) → float32 (N, 1, 28, 28) in [0, 1], exactly what ``ToTensor`` gives."""
        if dataset.data.shape[1:] != (28, 28) or len(dataset.data) != len(dataset.targets):
            raise DatasetError(
                f"Fashion-MNIST files in {self.data_dir}/FashionMNIST/raw/ hold images of shape "
                f"{tuple(dataset.data.shape)} for {len(dataset.targets)} labels; expected (N, 28, 28) for N labels"
            )
        return dataset.data.unsqueeze(1).float().div(255)

    def _batches(self, tensors, train):
        trainer = self.trainer
        return TensorBatches(
            *tensors,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train and self.shuffle,
            seed=torch.initial_seed(),
            epoch=(lambda: trainer.current_epoch) if trainer is not None else (lambda: 0),
            rank=trainer.global_rank if trainer is not None else 0,
            world_size=trainer.world_size if trainer is not None else 1,
            pad=train,
        )

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        # The batches are made on the training device already: nothing to move, and skipping
        # Lightning's generic walk over the batch saves most of a small step's overhead.
        if all(t.device == device for t in batch):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        if self.augment and self.trainer is not None and self.trainer.training:
            x, y = batch
            batch = flip_and_shift(x, self.shift), y
        return batch

    def train_dataloader(self):
        return self._batches(self.train_set, train=True)

    def val_dataloader(self):
        return self._batches(self.val_set, train=False) if self.val_size else []

    def test_dataloader(self):
        return self._batches(self.test_set, train=False)


def flip_and_shift(x, shift):
    """Each image of ``x`` (N, C, H, W) flipped left-right with probability ½ and moved by (dy, dx),
    each uniform in [−shift, shift], the pixels it uncovers filled with the batch's background (its
    minimum). One gather for the whole batch, on x's device, from torch's global generator."""
    n, _, h, w = x.shape
    flip = torch.rand(n, 1, 1, 1, device=x.device) < 0.5
    x = torch.where(flip, x.flip(-1), x)
    if shift == 0:
        return x
    padded = torch.nn.functional.pad(x, (shift,) * 4, value=float(x.min()))
    dy, dx = (torch.randint(0, 2 * shift + 1, (n, 1, 1, 1), device=x.device) for _ in range(2))
    rows = torch.arange(h, device=x.device).view(1, 1, h, 1) + dy
    cols = torch.arange(w, device=x.device).view(1, 1, 1, w) + dx
    images = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    channels = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    return padded[images, channels, rows, cols]
