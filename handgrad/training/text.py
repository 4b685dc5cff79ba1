"""Tiny Shakespeare as a LightningDataModule: characters as tokens, as nanoGPT's ``shakespeare_char``.

The 1,115,394 characters of ``data/tinyshakespeare/input.txt`` (shipped with the repository) become one
tensor of token ids, one per character, the vocabulary being the text's 65 distinct characters in
sorted order. The first 90 % trains, the last 10 % validates. A training step takes ``batch_size``
windows of ``block_size`` characters at random offsets (nanoGPT's ``get_batch``), the target of each
character being the next one; validation reads the held-out text as consecutive windows.
"""

import hashlib
import math
from pathlib import Path

import lightning as L
import torch

from handgrad.training.data import DatasetError

TEXT = Path("tinyshakespeare") / "input.txt"
MD5 = "6fb458f1232090904fb40fe944165e91"        # the char-rnn repository's copy, which nanoGPT reads


class RandomWindows:
    """``steps`` batches of ``batch_size`` windows at random offsets: x = tokens[i : i + T] and
    y = tokens[i + 1 : i + T + 1], as int64 (B, T). Seeded by ``seed`` and the epoch, so a run resumed
    at epoch k draws the windows an uninterrupted run would; each rank of ``world_size`` draws its own."""

    def __init__(self, tokens, block_size, batch_size, steps, seed=0, epoch=lambda: 0, rank=0, world_size=1):
        self.tokens, self.block_size, self.batch_size, self.steps = tokens, block_size, batch_size, steps
        self.seed, self.epoch, self.rank, self.world_size = seed, epoch, rank, world_size

    def __len__(self):
        return self.steps

    def __iter__(self):
        generator = torch.Generator().manual_seed((self.seed + self.epoch() * self.world_size + self.rank) % 2**64)
        offsets = torch.arange(self.block_size + 1)
        for _ in range(self.steps):
            starts = torch.randint(len(self.tokens) - self.block_size, (self.batch_size, 1), generator=generator)
            window = self.tokens[starts + offsets].long().to(self.tokens.device)        # (B, T + 1)
            yield window[:, :-1], window[:, 1:]


class Windows:
    """Consecutive windows of ``block_size`` characters of ``tokens`` (those of ``starts`` only, if given),
    ``batch_size`` a batch, this rank's share of them: every character but the first of each window is
    predicted once, from the ones before it in the window."""

    def __init__(self, tokens, block_size, batch_size, starts=None, rank=0, world_size=1):
        count = (len(tokens) - 1) // block_size
        starts = torch.arange(count) * block_size if starts is None else starts
        self.tokens, self.block_size, self.batch_size = tokens, block_size, batch_size
        self.starts = starts[rank::world_size]

    def __len__(self):
        return math.ceil(len(self.starts) / self.batch_size)

    def __iter__(self):
        offsets = torch.arange(self.block_size + 1)
        for starts in self.starts.split(self.batch_size):
            window = self.tokens[starts.unsqueeze(1) + offsets].long().to(self.tokens.device)
            yield window[:, :-1], window[:, 1:]


class ShakespeareDataModule(L.LightningDataModule):
    """Tiny Shakespeare, one token per character (65 of them), held on the training device.

    Args:
        data_dir: the root holding ``tinyshakespeare/input.txt``
        block_size: characters a window, the context a prediction sees, ≥ 1
        batch_size: windows a training step, ≥ 1
        steps_per_epoch: training steps an epoch; validation runs after each (nanoGPT's eval_interval)
        val_windows: windows of the held-out text that validation reads after each epoch, drawn once at
            random over all of it (nanoGPT's eval_iters × batch_size); 0 reads all of them. Testing
            always reads all of them.
        eval_batch_size: windows a validation and test step, ≥ 1 (it changes no result, only speed)

    There is no third split: as in nanoGPT, the last 10 % of the text is the validation text, and the
    test after training reads all of it.
    """

    def __init__(self, data_dir: str = "data", block_size: int = 64, batch_size: int = 12, steps_per_epoch: int = 250,
                 val_windows: int = 240, eval_batch_size: int = 64):
        super().__init__()
        for name, value in (("block_size", block_size), ("batch_size", batch_size),
                            ("steps_per_epoch", steps_per_epoch), ("eval_batch_size", eval_batch_size)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if val_windows < 0:
            raise ValueError(f"val_windows must be at least 0 (0: all of them), got {val_windows}")
        self.save_hyperparameters()
        self.data_dir, self.block_size, self.batch_size = data_dir, block_size, batch_size
        self.steps_per_epoch, self.val_windows, self.eval_batch_size = steps_per_epoch, val_windows, eval_batch_size
        self.text = read_text(Path(data_dir) / TEXT)
        self.chars = sorted(set(self.text))
        self.train_tokens = self.val_tokens = None

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, text):
        index = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise ValueError(f"characters {unknown[:5]} are not in Tiny Shakespeare's vocabulary")
        return torch.tensor([index[c] for c in text], dtype=torch.long)

    def decode(self, tokens):
        return "".join(self.chars[i] for i in tokens)

    def setup(self, stage=None):
        if self.train_tokens is not None:
            return
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        tokens = torch.frombuffer(bytearray(self.text.encode("latin-1")), dtype=torch.uint8)
        lookup = torch.zeros(256, dtype=torch.uint8)
        lookup[torch.tensor([ord(c) for c in self.chars])] = torch.arange(len(self.chars), dtype=torch.uint8)
        tokens = lookup[tokens.long()]
        split = int(0.9 * len(tokens))                          # nanoGPT's split
        for name, part in (("training", tokens[:split]), ("validation", tokens[split:])):
            if len(part) <= self.block_size + 1:
                raise DatasetError(f"the {name} text has {len(part)} characters, too few for windows of "
                                   f"block_size={self.block_size}")
        self.train_tokens, self.val_tokens = tokens[:split].to(device), tokens[split:].to(device)

    def _rank(self):
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self):
        trainer = self.trainer
        rank, world_size = self._rank()
        return RandomWindows(self.train_tokens, self.block_size, self.batch_size, self.steps_per_epoch,
                             seed=torch.initial_seed(),
                             epoch=(lambda: trainer.current_epoch) if trainer is not None else (lambda: 0),
                             rank=rank, world_size=world_size)

    def val_dataloader(self):
        starts = None
        if self.val_windows:
            count = (len(self.val_tokens) - 1) // self.block_size
            chosen = torch.randperm(count, generator=torch.Generator().manual_seed(0))[: self.val_windows]
            starts = chosen.sort().values * self.block_size
        return Windows(self.val_tokens, self.block_size, self.eval_batch_size, starts, *self._rank())

    def test_dataloader(self):
        return Windows(self.val_tokens, self.block_size, self.eval_batch_size, None, *self._rank())

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        if all(t.device == device for t in batch):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)


def read_text(path):
    """The text of ``path``, checked to be Tiny Shakespeare as nanoGPT reads it."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise DatasetError(f"Tiny Shakespeare is not available at {path} ({error.strerror or error}); the "
                           f"repository ships it there (data/tinyshakespeare/input.txt)") from None
    if hashlib.md5(data).hexdigest() != MD5:
        raise DatasetError(f"{path} is not Tiny Shakespeare as nanoGPT reads it (its MD5 is not {MD5}); put "
                           f"the original file there")
    return data.decode("latin-1")
