"""``python train.py``: LightningCLI that fits, then tests, with errors reported in one line.

Two tasks, chosen by the network: the seed's networks, the CNN and the ViT classify Fashion-MNIST
(``LitClassifier``, ``FashionMNISTDataModule``); ``--model.network gpt`` (``configs/gpt.yaml``) predicts
Tiny Shakespeare's characters (``LitLanguageModel``, ``ShakespeareDataModule``).

Every option is checked before anything is trained or written (by jsonargparse's types, by the
classes' own checks and by the Trainer's); a bad one ends the program with one line
``error: ...`` on stderr and exit status 2. Every run writes into its own
``<default_root_dir>/version_<N>/``: ``checkpoints/`` (``last.ckpt`` and the best by val_acc, or by
val_loss for text), ``metrics.csv`` (and TensorBoard events when tensorboard is installed),
``config.yaml``, ``results.json`` and ``learning_curve.png``; ``per_class_accuracy.md`` for images,
``sample.txt`` (text the GPT wrote) for text. ``--ckpt_path last`` resumes from the newest
``last.ckpt`` under ``default_root_dir``.
"""

import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Optional

import torch
import yaml
from jsonargparse import ArgumentError
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning_utilities.core.imports import RequirementCache

from handgrad._machine import default_threads
from handgrad.training.callbacks import AtomicCheckpointIO, LastCheckpoint, RunReport, per_class_table
from handgrad.training.data import DatasetError, FashionMNISTDataModule
from handgrad.training.language import LitLanguageModel
from handgrad.training.lit import FIT_METRICS, LitClassifier
from handgrad.training.text import ShakespeareDataModule

DEFAULT_ROOT_DIR = "runs"
DEFAULT_MAX_EPOCHS = 8
DEFAULT_SEED = 0
_TENSORBOARD = RequirementCache("tensorboard")


class RunError(RuntimeError):
    """A problem with the run's files (log directory, checkpoint) that the user must fix."""


class HandgradCLI(LightningCLI):
    """The classifier's CLI; ``TextCLI`` the GPT's."""

    monitor = ("val_acc", "max", "best-epoch{epoch}-val_acc{val_acc:.4f}")

    def add_arguments_to_parser(self, parser):
        parser.add_argument(
            "--ckpt_path",
            type=Optional[str],
            default=None,
            help="Resume training from this checkpoint; 'last' takes the newest last.ckpt under "
            "trainer.default_root_dir.",
        )
        parser.add_argument(
            "--threads",
            type=Optional[int],
            default=None,
            help="CPU threads for torch's kernels; default: the cores other work leaves free now (watched for "
            "a quarter of a second), at least 1: threads waiting for busy cores make every kernel many times slower",
        )
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "trainer.max_epochs": DEFAULT_MAX_EPOCHS,
                # A progress bar redraws itself: on a terminal only, not into a log file.
                "trainer.enable_progress_bar": sys.stdout.isatty() and sys.stderr.isatty(),
                "trainer.default_root_dir": DEFAULT_ROOT_DIR,
                "checkpoint.monitor": self.monitor[0],
                "checkpoint.mode": self.monitor[1],
                "checkpoint.filename": self.monitor[2],
                "checkpoint.auto_insert_metric_name": False,
            }
        )

    def before_instantiate_classes(self):
        config = self.config
        if "val_size" in config.data and config.data.val_size == 0:
            # No validation set (the seed's setting): no validation loop (rather than an empty one,
            # which Lightning warns about), and the best checkpoint is simply the latest.
            config.trainer.limit_val_batches = 0
            if config.checkpoint.monitor == "val_acc":
                config.checkpoint.monitor = None
                config.checkpoint.filename = "epoch{epoch}"
        if config.threads is not None and config.threads < 1:
            raise RunError(f"--threads: at least 1, got {config.threads}")
        if config.checkpoint.save_last:
            raise RunError(
                "checkpoint.save_last: last.ckpt is written at the end of every epoch anyway; leave it false"
            )
        # ModelCheckpoint would only find out at the end of the first epoch.
        monitorable = [m for m in self.fit_metrics if config.data.get("val_size", 1) or not m.startswith("val_")]
        if config.checkpoint.monitor not in (None, *monitorable):
            raise RunError(
                f"checkpoint.monitor must be one of {monitorable} (or null), got {config.checkpoint.monitor!r}"
            )

    fit_metrics = FIT_METRICS

    def instantiate_trainer(self, **kwargs):
        if not self.config.trainer.get("plugins"):
            kwargs["plugins"] = [AtomicCheckpointIO()]
        if self.config.trainer.get("logger") in (None, True):
            root = self.config.trainer.default_root_dir
            csv = CSVLogger(root, name="")
            loggers = [csv]
            if _TENSORBOARD:
                loggers.append(TensorBoardLogger(root, name="", version=csv.version, default_hp_metric=False))
            kwargs["logger"] = loggers
        return super().instantiate_trainer(**kwargs)


class TextCLI(HandgradCLI):
    """The GPT's CLI: its model and data, block_size and the vocabulary passed from the data to the
    model, the best checkpoint by val_loss."""

    monitor = ("val_loss", "min", "best-epoch{epoch}-val_loss{val_loss:.4f}")
    fit_metrics = ("train_loss", "val_loss")

    def add_arguments_to_parser(self, parser):
        super().add_arguments_to_parser(parser)
        parser.link_arguments("data.block_size", "model.block_size")
        parser.link_arguments("data.vocab_size", "model.vocab_size", apply_on="instantiate")


TASKS = {"images": (HandgradCLI, LitClassifier, FashionMNISTDataModule),
         "text": (TextCLI, LitLanguageModel, ShakespeareDataModule)}


def task_of(args):
    """"text" where the arguments (or a config file they name) choose the network ``gpt``, else
    "images". A config file that cannot be read decides nothing here: the CLI reports it."""
    args = sys.argv[1:] if args is None else list(args)
    networks = []
    for i, arg in enumerate(args):
        key, _, value = arg.partition("=")
        if not value and i + 1 < len(args):
            value = args[i + 1]
        if key == "--model.network":
            networks.append(value)
        elif key == "--config":
            try:
                config = yaml.safe_load(Path(value).read_text())
                networks.append(config["model"]["network"])
            except Exception:
                continue
    return "text" if networks and networks[-1] == "gpt" else "images"


def _check_writable(directory):
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise RunError(f"cannot write to the log directory {directory}: {error.strerror or error}") from None


def resolve_checkpoint(ckpt_path, root):
    """The checkpoint file to resume from: ``last`` is the newest last.ckpt of any run under root."""
    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        candidates = sorted(Path(root).glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise RunError(f"--ckpt_path last: no last.ckpt under {root}/*/checkpoints/ to resume from")
        return str(candidates[-1])
    if not Path(ckpt_path).is_file():
        raise RunError(f"--ckpt_path {ckpt_path}: no such checkpoint file")
    return ckpt_path


def check_checkpoint_matches(ckpt_path, model):
    """Refuse, in one line, a checkpoint that cannot be read or that holds another model's weights;
    return the number of epochs it completed."""
    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        saved = checkpoint["state_dict"]
    except Exception as error:
        raise RunError(f"checkpoint {ckpt_path} cannot be read as a Lightning checkpoint ({error})") from None
    expected = model.state_dict()
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    wrong = [k for k in expected if k in saved and saved[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        saved_hp = checkpoint.get("hyper_parameters", {})
        detail = "; ".join(
            part
            for part in (
                f"missing {missing[:3]}" if missing else "",
                f"unexpected {unexpected[:3]}" if unexpected else "",
                f"{wrong[0]} has shape {tuple(saved[wrong[0]].shape)}, the model expects "
                f"{tuple(expected[wrong[0]].shape)}" if wrong else "",
            )
            if part
        )
        trained = {k: saved_hp[k] for k in ("network", "dropout") if k in saved_hp}
        raise RunError(
            f"checkpoint {ckpt_path} does not match the model ({detail})"
            + (f"; it was trained with {trained}" if trained else "")
        )
    return checkpoint.get("epoch", -1) + 1


def main(args=None):
    start = time.perf_counter()
    _quiet()
    task = task_of(args)
    try:
        cli = _cli(args, task)
        trainer, model, data = cli.trainer, cli.model, cli.datamodule
        torch.set_num_threads(cli.config.threads or default_threads())
        _check_writable(Path(cli.config.trainer.default_root_dir))
        ckpt_path = resolve_checkpoint(cli.config.ckpt_path, cli.config.trainer.default_root_dir)
        if ckpt_path is not None:
            epochs = check_checkpoint_matches(ckpt_path, model)
            if trainer.max_epochs not in (None, -1) and epochs >= trainer.max_epochs:
                print(
                    f"The run in {ckpt_path} already finished (epochs done: {epochs}, --trainer.max_epochs "
                    f"{trainer.max_epochs}): nothing to resume; a larger --trainer.max_epochs trains it further"
                )
                return trainer
            if trainer.is_global_zero:
                print(f"Restoring the run from {ckpt_path} ({epochs} epochs done)", flush=True)
        trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
        (metrics,) = trainer.test(model, datamodule=data, verbose=False)
    except (RunError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if trainer.is_global_zero and (model.per_class_accuracy or task == "text"):
        report = next(c for c in trainer.callbacks if isinstance(c, RunReport))
        if task == "text":
            print(f"Validation text, all of it: {metrics['test_loss']:.4f} nats per character")
            if model.sample:
                print(f"Sample ({len(model.sample)} characters):\n{model.sample}")
        else:
            print("Test: " + ", ".join(f"{name} {value:.4f}" for name, value in sorted(metrics.items())))
            print(per_class_table(model.per_class_accuracy), end="")
        if model.gradient_audit is not None:
            print(f"Gradients: {model.gradient_audit['summary']}")
        threads = torch.get_num_threads()
        print(f"Run written to {report.run_dir} in {time.perf_counter() - start:.0f} s "
              f"({threads} CPU thread{'s' if threads != 1 else ''})")
    return trainer


def _cli(args, task="images"):
    """Parse, check and instantiate everything; a bad option or config file raises RunError."""
    cli, model, data = TASKS[task]
    try:
        return cli(
            model,
            data,
            run=False,
            args=args,
            seed_everything_default=DEFAULT_SEED,
            trainer_defaults={"callbacks": [RunReport(), LastCheckpoint()]},
            save_config_kwargs={"overwrite": True},
            # The model builds its own optimiser and schedule (--model.optimizer, --model.scheduler):
            # LightningCLI's --optimizer and --lr_scheduler would replace them behind results.json's back.
            auto_configure_optimizers=False,
            # Raise instead of printing the whole usage before the message; take no abbreviation of
            # an option (--trainer.max_epoch would silently be --trainer.max_epochs).
            parser_kwargs={"exit_on_error": False, "allow_abbrev": False},
        )
    except ArgumentError as error:                           # jsonargparse: a type, a key, a file
        raise RunError(f"{_one_line(error)} (python train.py --help lists every option)") from None
    except (ValueError, TypeError, MisconfigurationException) as error:  # refused by a class or the Trainer
        raise RunError(_one_line(error)) from None


def _one_line(error):
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


class _DropAdvertisements(logging.Filter):
    def filter(self, record):
        return not record.getMessage().startswith(("💡 Tip:", "Loading `train_dataloader` to estimate"))


_DROP_ADVERTISEMENTS = _DropAdvertisements()


def _quiet():
    """Keep Lightning from printing what a user of train.py cannot act on: its tips (advertisements
    for its cloud services), a note on how it counts steps, a deprecation inside Lightning, that
    the model summary estimates sizes in 32 bits under mixed precision, and, on resuming, that the
    best checkpoints of the old run directory are not carried into the new one (by design: a
    resumed run writes a version directory of its own)."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DROP_ADVERTISEMENTS)
    warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)
    warnings.filterwarnings("ignore", r"The dirpath has changed from .* won't be reloaded")
    warnings.filterwarnings("ignore", r"Precision .* is not supported by the model summary")
