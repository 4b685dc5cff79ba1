"""The Lightning pieces and ``train.py`` end to end, on a small learnable stand-in for Fashion-MNIST
written in torchvision's raw format (tests/fake_fashion.py), so the real loading code runs."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import handgrad.nn
from handgrad.training import cli, models
from handgrad.training.callbacks import AtomicCheckpointIO, learning_curve
from handgrad.training.data import CLASSES, DatasetError, FashionMNISTDataModule, TensorBatches, flip_and_shift
from handgrad.training.lit import LitClassifier, compiled_loss
from tests import fake_fashion

REPO = Path(__file__).resolve().parents[1]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return fake_fashion.write(tmp_path_factory.mktemp("fashion"), n_train=600, n_test=200)


def _args(data_root, run_dir, *extra, epochs=2, quiet=True):
    return [
        "--data.data_dir", str(data_root),
        "--data.batch_size", "32",
        "--data.val_size", "100",
        "--trainer.max_epochs", str(epochs),
        "--trainer.default_root_dir", str(run_dir),
        "--trainer.log_every_n_steps", "4",               # the stand-in has few steps per epoch
        *(QUIET if quiet else []),
        *extra,
    ]


def _results(run_dir, version=0):
    return json.loads((Path(run_dir) / f"version_{version}" / "results.json").read_text())


def _train_py(*args, timeout=300):
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


# -- the data module ------------------------------------------------------------------------------


def test_datamodule_loads_the_raw_files_as_tensors(data_root):
    dm = FashionMNISTDataModule(str(data_root), batch_size=32, val_size=100, normalize=False)
    dm.prepare_data()
    dm.setup("fit")
    x, y = dm.train_set
    assert x.shape == (500, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (500,) and y.dtype == torch.long
    assert dm.val_set[0].shape == (100, 1, 28, 28)
    assert dm.test_set[0].shape == (200, 1, 28, 28)
    assert 0.0 <= x.min() and x.max() <= 1.0, "without normalize, pixels are ToTensor's [0, 1]"


def test_datamodule_matches_torchvision_totensor(data_root):
    import torchvision
    from torchvision.transforms import ToTensor

    dm = FashionMNISTDataModule(str(data_root), val_size=0, normalize=False)
    dm.setup("fit")
    seed_style = torchvision.datasets.FashionMNIST(str(data_root), train=True, transform=ToTensor())
    for i in (0, 17, 599):
        image, label = seed_style[i]
        assert torch.equal(dm.train_set[0][i], image), f"image {i} differs from ToTensor's"
        assert dm.train_set[1][i].item() == label


def test_datamodule_normalizes_with_training_statistics(data_root):
    dm = FashionMNISTDataModule(str(data_root), val_size=0, normalize=True)
    dm.setup("fit")
    x = dm.train_set[0]
    assert abs(x.mean().item()) < 1e-5 and abs(x.std().item() - 1) < 1e-4


def test_datamodule_split_is_seeded_and_disjoint(data_root):
    def split():
        dm = FashionMNISTDataModule(str(data_root), val_size=100, normalize=False)
        dm.setup("fit")
        return dm.train_set[0].flatten(1), dm.val_set[0].flatten(1)

    (train_a, val_a), (train_b, val_b) = split(), split()
    assert torch.equal(val_a, val_b), "the validation split changes between runs"
    overlap = (val_a[:, None, :] == train_a[None, :, :]).all(-1).any()
    assert not overlap, "a validation image is also in the training set"


def test_tensor_batches_cover_every_sample_once_per_epoch():
    x, y = torch.arange(103).float().unsqueeze(1), torch.arange(103)
    epoch = [0]
    batches = TensorBatches(x, y, batch_size=10, shuffle=True, seed=7, epoch=lambda: epoch[0])
    orders = []
    for e in range(3):
        epoch[0] = e
        seen = torch.cat([b[1] for b in batches])
        assert len(list(batches)) == len(batches) == 11
        assert sorted(seen.tolist()) == list(range(103)), f"epoch {e} does not visit each sample once"
        orders.append(seen)
    assert not torch.equal(orders[0], orders[1]), "the same order in two epochs"
    epoch[0] = 1
    assert torch.equal(torch.cat([b[1] for b in batches]), orders[1]), "epoch 1 is not reproducible on resume"


def test_tensor_batches_shard_across_ranks():
    y = torch.arange(103)
    shards = [list(TensorBatches(y, y, batch_size=8, shuffle=True, rank=r, world_size=2, pad=True)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]), "ranks must run the same number of training steps"
    seen = [torch.cat([b[1] for b in s]) for s in shards]
    assert len(seen[0]) == len(seen[1]) == 52
    assert set(torch.cat(seen).tolist()) == set(range(103))
    evaluation = [torch.cat([b[1] for b in TensorBatches(y, y, 8, rank=r, world_size=2)]) for r in (0, 1)]
    assert sorted(torch.cat(evaluation).tolist()) == list(range(103)), "evaluation shards must not pad"


def test_datamodule_reports_missing_files_in_one_line(tmp_path):
    dm = FashionMNISTDataModule(str(tmp_path), download=False)
    with pytest.raises(DatasetError, match=r"not available in .*FashionMNIST/raw/.*\.gz files") as info:
        dm.prepare_data()
    assert "\n" not in str(info.value)


def test_datamodule_extracts_the_original_gz_files_without_download(tmp_path, monkeypatch):
    # A fresh clone ships the four .gz files only: download=False (the benchmark's) must read them,
    # offline. Found when `python -m handgrad.bench` failed in a fresh copy on a GPU machine.
    import urllib.request

    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in (REPO / "data" / "FashionMNIST" / "raw").glob("*.gz"):
        shutil.copy(gz, raw / gz.name)

    def offline(*args, **kwargs):
        raise AssertionError("tried to fetch a file from the internet")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    dm = FashionMNISTDataModule(str(tmp_path), val_size=0, download=False)
    dm.setup("fit")
    assert len(dm.train_set[1]) == 60000 and len(dm.test_set[1]) == 10000
    assert sorted(p.name for p in raw.iterdir() if p.suffix != ".gz") == sorted(
        p.stem for p in raw.glob("*.gz")), "the four IDX files were not extracted"


def test_datamodule_reports_a_failed_download(tmp_path, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: network unreachable")

    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download", offline)
    with pytest.raises(DatasetError, match="network unreachable"):
        FashionMNISTDataModule(str(tmp_path), download=True).prepare_data()


def test_datamodule_reports_a_corrupt_archive(tmp_path):
    root = fake_fashion.write(tmp_path, n_train=50, n_test=20, gz=True)
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte.gz is corrupt \(its MD5"):
        FashionMNISTDataModule(str(root), download=True).prepare_data()


def test_datamodule_reports_corrupt_files(tmp_path):
    root = fake_fashion.write(tmp_path, n_train=50, n_test=20)
    (root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    dm = FashionMNISTDataModule(str(root), val_size=10)
    with pytest.raises(DatasetError, match="cannot be read"):
        dm.setup("fit")


def _candidates(image, shift, background):
    """Every image flip_and_shift may make of one image: flipped or not, moved by (dy, dx)."""
    padded = [torch.nn.functional.pad(im, (shift,) * 4, value=background) for im in (image, image.flip(-1))]
    h, w = image.shape[-2:]
    return [p[..., dy : dy + h, dx : dx + w] for p in padded for dy in range(2 * shift + 1) for dx in range(2 * shift + 1)]


@pytest.mark.parametrize("shift", [0, 1, 2])
def test_flip_and_shift_moves_each_image_on_its_own(shift):
    torch.manual_seed(0)
    x = torch.rand(64, 2, 7, 9) + 1.0
    out = flip_and_shift(x, shift)
    assert out.shape == x.shape and out.dtype == x.dtype
    seen = set()
    for i in range(len(x)):
        matches = [k for k, c in enumerate(_candidates(x[i], shift, float(x.min()))) if torch.equal(out[i], c)]
        assert matches, f"image {i} is not a flip and shift by at most {shift} of its input"
        seen.update(matches)
    # 64 images, each drawing one of 2 (2s + 1)² placements: more than one of them is used
    assert len(seen) >= min(8, 2 * (2 * shift + 1) ** 2), f"placements used: {sorted(seen)}"


def test_datamodule_augments_training_batches_only(data_root):
    dm = FashionMNISTDataModule(str(data_root), batch_size=50, val_size=100, augment=True, shift=2)
    dm.setup("fit")

    class Stage:                                             # the Trainer's flag, as the hook reads it
        training = True
    dm.trainer = Stage()
    torch.manual_seed(0)
    x, y = dm.train_set[0][:50], dm.train_set[1][:50]
    ax, ay = dm.on_after_batch_transfer((x, y), 0)
    assert torch.equal(ay, y) and not torch.equal(ax, x), "training batches are augmented"
    Stage.training = False
    vx, vy = dm.val_set[0][:50], dm.val_set[1][:50]
    assert dm.on_after_batch_transfer((vx, vy), 0)[0] is vx, "validation and test batches are left alone"


# -- the LightningModule --------------------------------------------------------------------------


@pytest.mark.parametrize("network", ["quickstart", "basic", "better"])
def test_lit_classifier_hand_impl_runs_hand_layers(network):
    hand = LitClassifier(network=network, impl="hand")
    torch_impl = LitClassifier(network=network, impl="torch")
    hand_linears = [m for m in hand.modules() if isinstance(m, torch.nn.Linear)]
    assert hand_linears and all(isinstance(m, handgrad.nn.Linear) for m in hand_linears)
    assert isinstance(hand.train_loss, handgrad.nn.CrossEntropyLoss)
    assert not any(isinstance(m, handgrad.nn.Linear) for m in torch_impl.modules())


def test_lit_classifier_training_step_equals_the_torch_impl():
    torch.manual_seed(0)
    hand = LitClassifier(network="better", impl="hand", label_smoothing=0.1)
    torch.manual_seed(0)
    builtin = LitClassifier(network="better", impl="torch", label_smoothing=0.1)
    batch = (torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,)))
    losses = []
    for module in (hand, builtin):
        module.log = lambda *a, **k: None
        loss = module.training_step(batch, 0)
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[0], losses[1])
    for (name, p), q in zip(hand.named_parameters(), builtin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=lambda m: f"{name}.grad: {m}")


def test_compiled_training_loss_gives_the_eager_loss_and_gradients(device):
    # On CUDA, reduce-overhead replays CUDA graphs; a loss kept from an earlier step must stay readable
    # (a graph's outputs are overwritten by its next replay), and a smaller last batch compiles anew.
    mode = "reduce-overhead" if device == "cuda" else "default"
    torch.manual_seed(0)
    model = models.build("quickstart", "hand").to(device)
    loss_fn = handgrad.nn.CrossEntropyLoss()
    eager, compiled = compiled_loss(model, loss_fn), compiled_loss(model, loss_fn, mode)
    kept = []
    for batch in (32, 32, 32, 12):
        x, y = torch.rand(batch, 1, 28, 28, device=device), torch.randint(0, 10, (batch,), device=device)
        results = []
        for loss in (eager, compiled):
            model.zero_grad()
            value = loss(x, y)
            value.backward()
            results.append((value.detach(), [p.grad.clone() for p in model.parameters()]))
        (eager_value, eager_grads), (value, grads) = results
        torch.testing.assert_close(value, eager_value)
        for (name, _), g, e in zip(model.named_parameters(), grads, eager_grads):
            torch.testing.assert_close(g, e, msg=lambda m: f"batch {batch}, {name}.grad: {m}")
        kept.append((value, eager_value))
    for value, eager_value in kept:
        torch.testing.assert_close(value, eager_value)


@pytest.mark.parametrize(
    "bad",
    [
        {"optimizer": "rmsprop"}, {"scheduler": "step"}, {"network": "resnet"}, {"lr": 0.0}, {"lr": float("nan")},
        {"momentum": -0.1, "optimizer": "sgd"}, {"momentum": 0.9, "optimizer": "adam"}, {"weight_decay": -1e-4},
        {"label_smoothing": 2.0}, {"label_smoothing": -0.1}, {"dropout": 1.0}, {"dropout": -0.5},
        {"compile": "fast"},
    ],
    ids=str,
)
def test_lit_classifier_rejects_bad_options(bad):
    with pytest.raises(ValueError, match=list(bad)[0]):
        LitClassifier(**bad)


@pytest.mark.parametrize(
    "bad",
    [{"batch_size": 0}, {"eval_batch_size": 0}, {"val_size": -1}, {"val_size": 60000}, {"shift": -1}, {"shift": 14}],
    ids=str,
)
def test_datamodule_rejects_bad_options(bad):
    with pytest.raises(ValueError, match=list(bad)[0]):
        FashionMNISTDataModule(**bad)


# -- the learning curve ---------------------------------------------------------------------------


def _epochs(n, validated):
    return [
        {"epoch": e, "train_loss": 1.0 / (e + 1), "val_loss": 1.1 / (e + 1) if validated else None,
         "val_acc": 0.8 + 0.01 * e if validated else None}
        for e in range(n)
    ]


@pytest.mark.parametrize("n, validated", [(1, True), (3, True), (1, False), (3, False), (30, True)])
def test_learning_curve_shows_losses_accuracies_and_integer_epochs(n, validated):
    figure = learning_curve(_epochs(n, validated), test_acc=0.875)
    ax_loss, ax_acc = figure.axes
    shown = {line.get_label() for ax in figure.axes for line in ax.get_lines()}
    expected = {"train_loss", "test_acc 0.8750"} | ({"val_loss", "val_acc"} if validated else set())
    assert shown == expected
    (test_marker,) = [line for line in ax_acc.get_lines() if line.get_label().startswith("test_acc")]
    assert list(test_marker.get_xdata()) == [n] and list(test_marker.get_ydata()) == [0.875]
    for ax in figure.axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(t == int(t) and 1 <= t <= n for t in ticks), f"{ax.get_title()} epoch ticks: {ticks}"


# -- train.py end to end --------------------------------------------------------------------------


def test_train_writes_a_complete_run(data_root, tmp_path):
    cli.main(_args(data_root, tmp_path))
    run = tmp_path / "version_0"
    results = _results(tmp_path)
    assert results["test_acc"] > 0.5, "the stand-in data is easy: the model must learn it"
    assert results["test_loss"] > 0
    assert results["hyperparameters"]["model"]["impl"] == "hand"
    assert [e["epoch"] for e in results["epochs"]] == [0, 1]
    for epoch in results["epochs"]:
        assert epoch["seconds"] > 0 and epoch["samples_per_s"] > 0
        assert epoch["val_acc"] is not None and epoch["train_loss"] > 0
    first, second = (e["process_s"] for e in results["epochs"])
    assert 0 < first < second, (first, second)                       # seconds since the process started
    assert set(results["per_class_accuracy"]) == set(CLASSES)
    assert results["gradients"]["complete"] and results["gradients"]["hand"], results["gradients"]
    assert results["gradients"]["summary"].startswith("every gradient hand-derived")
    assert (run / "learning_curve.png").stat().st_size > 1000
    assert "| Ankle boot |" in (run / "per_class_accuracy.md").read_text()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "checkpoints").glob("best-*.ckpt")), "no best checkpoint by val_acc"
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    for column in ("train_loss", "val_loss", "val_acc", "test_loss", "test_acc"):
        assert column in header, f"metrics.csv lacks {column}"


def test_train_last_checkpoint_is_the_last_epoch_even_when_the_best_is_older(data_root, tmp_path):
    # Monitoring the highest training loss makes epoch 0 the best and every later epoch not.
    cli.main(_args(data_root, tmp_path, "--checkpoint.monitor", "train_loss", "--checkpoint.mode", "max", epochs=3))
    checkpoints = tmp_path / "version_0" / "checkpoints"
    assert torch.load(checkpoints / "last.ckpt", weights_only=False)["epoch"] == 2
    (best,) = checkpoints.glob("best-*.ckpt")
    assert best.name.startswith("best-epoch0-"), best.name


def test_train_same_seed_gives_identical_metrics(data_root, tmp_path):
    for name in ("a", "b"):
        cli.main(_args(data_root, tmp_path / name, "--seed_everything", "3"))
    a, b = _results(tmp_path / "a"), _results(tmp_path / "b")
    assert a["test_acc"] == b["test_acc"] and a["test_loss"] == b["test_loss"]
    assert [e["train_loss"] for e in a["epochs"]] == [e["train_loss"] for e in b["epochs"]]


def test_train_resume_from_last_equals_an_uninterrupted_run(data_root, tmp_path, capsys):
    keep_every_epoch = ["--checkpoint.save_top_k", "-1", "--checkpoint.filename", "epoch{epoch}"]
    cli.main(_args(data_root, tmp_path / "whole", *keep_every_epoch, epochs=3))
    # An interruption after the first epoch leaves that epoch's state as the run's last.ckpt.
    interrupted = tmp_path / "interrupted" / "version_0" / "checkpoints"
    interrupted.mkdir(parents=True)
    shutil.copy(tmp_path / "whole" / "version_0" / "checkpoints" / "epoch0.ckpt", interrupted / "last.ckpt")
    capsys.readouterr()
    cli.main(_args(data_root, tmp_path / "interrupted", "--ckpt_path", "last", epochs=3))
    assert "Restoring the run from" in capsys.readouterr().out
    whole, resumed = _results(tmp_path / "whole"), _results(tmp_path / "interrupted", version=1)
    assert [e["epoch"] for e in resumed["epochs"]] == [0, 1, 2], "the resumed run must report every epoch"
    assert resumed["test_acc"] == whole["test_acc"]
    assert resumed["test_loss"] == pytest.approx(whole["test_loss"], rel=1e-6)
    assert [e["train_loss"] for e in resumed["epochs"]] == pytest.approx([e["train_loss"] for e in whole["epochs"]])


def test_train_cnn_with_augmentation(data_root, tmp_path):
    cli.main(_args(data_root, tmp_path, "--model.network", "cnn", "--model.dropout", "0.3",
                   "--data.augment", "true", "--data.shift", "1", epochs=1))
    results = _results(tmp_path)
    assert results["hyperparameters"]["model"]["network"] == "cnn"
    assert results["hyperparameters"]["data"]["augment"] is True and results["hyperparameters"]["data"]["shift"] == 1
    assert results["test_acc"] > 0.3, f"the cnn learned nothing of the stand-in data: {results['test_acc']}"


def test_train_vit_config(data_root, tmp_path):
    """configs/vit.yaml as README gives it, shortened to three epochs of the stand-in data."""
    config = Path(__file__).resolve().parents[1] / "configs" / "vit.yaml"
    # The options after it win; the stand-in's classes are where a bright square sits, which a flip moves.
    cli.main(["--config", str(config), *_args(data_root, tmp_path, "--data.augment", "false", epochs=3)])
    results = _results(tmp_path)
    assert results["hyperparameters"]["model"]["network"] == "vit"
    assert results["hyperparameters"]["model"]["impl"] == "hand"
    assert results["gradients"]["complete"], results["gradients"]         # attention, residual adds and all
    assert results["test_acc"] > 0.2, f"the vit learned nothing of the stand-in data: {results['test_acc']}"


def test_train_compiled_trains_as_eager(data_root, tmp_path):
    cli.main(_args(data_root, tmp_path / "eager"))
    cli.main(_args(data_root, tmp_path / "compiled", "--model.compile", "default"))
    eager, compiled = _results(tmp_path / "eager"), _results(tmp_path / "compiled")
    assert compiled["hyperparameters"]["model"]["compile"] == "default"
    assert compiled["gradients"] == eager["gradients"], "the audit of a compiled step reads an eager step's graph"
    assert [e["train_loss"] for e in compiled["epochs"]] == pytest.approx([e["train_loss"] for e in eager["epochs"]],
                                                                          rel=1e-4)
    assert abs(compiled["test_acc"] - eager["test_acc"]) <= 0.005


def test_train_impl_torch_matches_impl_hand(data_root, tmp_path):
    cli.main(_args(data_root, tmp_path / "hand"))
    cli.main(_args(data_root, tmp_path / "torch", "--model.impl", "torch"))
    hand, builtin = _results(tmp_path / "hand"), _results(tmp_path / "torch")
    assert hand["gradients"]["complete"] and not builtin["gradients"]["complete"], builtin["gradients"]
    assert abs(hand["test_acc"] - builtin["test_acc"]) <= 0.005
    assert hand["test_loss"] == pytest.approx(builtin["test_loss"], rel=1e-3)


def _one_line_error(result):
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def _refused(args, capsys):
    """The one line that cli.main prints on stderr before it exits with status 2."""
    with pytest.raises(SystemExit) as exit:
        cli.main(args)
    err = capsys.readouterr().err
    assert exit.value.code == 2, err[-2000:]
    assert len(err.splitlines()) == 1 and err.startswith("error: "), f"not one line 'error: ...':\n{err[-3000:]}"
    return err.strip()


@pytest.mark.parametrize(
    "option, message",
    [
        (["--model.network", "resnet"], "model.network"),
        (["--model.compile", "fast"], "model.compile"),
        (["--model.dropout", "1.5"], "error: dropout must be in [0, 1), got 1.5"),
        (["--model.label_smoothing", "2"], "error: label_smoothing must be in [0, 1], got 2.0"),
        (["--model.label_smoothing", "-0.1"], "error: label_smoothing must be in [0, 1], got -0.1"),
        (["--model.lr", "0"], "error: lr must be a positive number, got 0.0"),
        (["--model.lr", "fast"], 'model.lr": Expected a <class \'float\'>. Got value: fast'),
        (["--model.optimizer", "sgd", "--model.momentum", "-0.9"], "error: momentum must be a number >= 0, got -0.9"),
        (["--model.momentum", "0.9"], "error: momentum is an option of sgd only, got momentum=0.9 with adam"),
        (["--model.weight_decay", "-0.0001"], "error: weight_decay must be a number >= 0, got -0.0001"),
        (["--data.batch_size", "0"], "error: batch_size must be at least 1, got 0"),
        (["--data.eval_batch_size", "0"], "error: eval_batch_size must be at least 1, got 0"),
        (["--data.batch_size", "1.5"], 'data.batch_size": Expected a <class \'int\'>. Got value: 1.5'),
        (["--data.val_size", "70000"], "error: val_size must be in [0, 60000), got 70000"),
        (["--trainer.max_epochs", "-5"], "`max_epochs` must be a non-negative integer or -1. You passed in -5."),
        (["--trainer.devices", "foo"], "`devices` selected with `CPUAccelerator` should be an int > 0."),
        (["--checkpoint.monitor", "val_accuracy"], "checkpoint.monitor must be one of ['train_loss', 'val_loss', 'val_acc']"),
        (["--data.val_size", "0", "--checkpoint.monitor", "val_loss"], "checkpoint.monitor must be one of ['train_loss']"),
        (["--checkpoint.save_top_k", "-3"], "save_top_k=-3. Must be >= -1"),
        (["--checkpoint.save_last", "true"], "checkpoint.save_last: last.ckpt is written at the end of every epoch"),
        (["--seed_everything", "-1"], "-1 is not in bounds, numpy accepts from 0 to 4294967295"),
        (["--optimizer", "SGD", "--optimizer.lr", "0.1"], "error: unrecognized arguments: --optimizer SGD --optimizer.lr 0.1"),
        (["--lr_scheduler", "StepLR"], "error: unrecognized arguments: --lr_scheduler StepLR"),
        (["--trainer.max_epoch", "1"], "error: unrecognized arguments: --trainer.max_epoch 1"),
        (["--threads", "0"], "error: --threads: at least 1, got 0"),
    ],
    ids=lambda option: " ".join(option) if isinstance(option, list) else None,
)
def test_train_bad_option_is_one_line_before_anything_is_written(data_root, tmp_path, capsys, option, message):
    assert message in _refused(_args(data_root, tmp_path / "runs", *option), capsys)
    assert not (tmp_path / "runs").exists(), "a refused run wrote into its log directory"


def test_train_bad_option_from_the_command_line_exits_2_in_one_line(data_root, tmp_path):
    result = _train_py(*_args(data_root, tmp_path / "runs", "--model.label_smoothing", "2"))
    assert _one_line_error(result) == "error: label_smoothing must be in [0, 1], got 2.0"
    assert not (tmp_path / "runs").exists(), "a refused run wrote into its log directory"


@pytest.mark.parametrize(
    "config, message",
    [
        ("model:\n  lr: fast\n", 'error: Parser key "model.lr": Expected a <class \'float\'>. Got value: fast'),
        ("model:\n  learning_rate: 0.1\n", "error: Group 'model' does not accept option 'learning_rate'"),
        ("model:\n  label_smoothing: 2\n", "error: label_smoothing must be in [0, 1], got 2"),
        ("model: [unclosed\n", "error: Problems parsing config: while parsing a flow sequence"),
    ],
    ids=["lr: fast", "unknown key", "label_smoothing: 2", "not YAML"],
)
def test_train_bad_config_file_is_one_line_without_usage(data_root, tmp_path, capsys, config, message):
    path = tmp_path / "config.yaml"
    path.write_text(config)
    assert _refused(_args(data_root, tmp_path / "runs", "--config", str(path)), capsys).startswith(message)
    assert _refused(_args(data_root, tmp_path / "runs", "--config", str(tmp_path / "nope.yaml")), capsys).startswith(
        "error: Parser key \"config\": File does not exist"
    )
    assert not (tmp_path / "runs").exists()


def test_train_accelerator_this_machine_lacks_is_one_line(data_root, tmp_path, capsys, monkeypatch):
    from lightning.pytorch.accelerators import CUDAAccelerator

    monkeypatch.setattr(CUDAAccelerator, "is_available", staticmethod(lambda: False))
    message = _refused(_args(data_root, tmp_path / "runs", "--trainer.accelerator", "cuda"), capsys)
    assert "`CUDAAccelerator` can not run on your system" in message and "['cpu']" in message, message
    assert not (tmp_path / "runs").exists()


def test_train_offers_no_option_that_overrides_the_recipe(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    assert "--model.optimizer" in out and "--model.scheduler" in out
    for option in ("--optimizer", "--lr_scheduler"):
        assert not re.search(rf"(^|\s|\[){option}\b", out), f"--help offers {option}, which bypasses the model's own"


def test_train_records_the_optimizer_it_trains_with(data_root, tmp_path):
    trainer = cli.main(_args(data_root, tmp_path, "--model.optimizer", "sgd", "--model.lr", "0.05",
                             "--model.momentum", "0.5", "--model.scheduler", "none", epochs=1))
    (optimizer,) = trainer.optimizers
    assert type(optimizer) is torch.optim.SGD and not trainer.lr_scheduler_configs
    assert optimizer.param_groups[0]["lr"] == 0.05 and optimizer.param_groups[0]["momentum"] == 0.5
    recorded = _results(tmp_path)["hyperparameters"]["model"]
    assert (recorded["optimizer"], recorded["lr"], recorded["momentum"], recorded["scheduler"]) == ("sgd", 0.05, 0.5, "none")
    config = (tmp_path / "version_0" / "config.yaml").read_text()
    assert "optimizer: sgd" in config and "lr: 0.05" in config
    assert not re.search(r"^(optimizer|lr_scheduler):", config, re.M), "config.yaml records a second optimizer"


WARNING_LINE = re.compile(r"^\S+\.py:\d+: ", re.M)            # how Python and Lightning print a warning


def _quiet_run(result):
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "💡" not in output and "Tip:" not in output, output[-3000:]
    assert not WARNING_LINE.search(output), f"a warning the user cannot act on:\n{output[-3000:]}"
    return result.stdout


def test_train_is_quiet_and_does_not_resume_a_finished_run(data_root, tmp_path):
    # As a user runs it: progress bar and model summary on; in mixed precision, which the summary notes.
    _quiet_run(_train_py(*_args(data_root, tmp_path, "--trainer.precision", "bf16-mixed", epochs=1, quiet=False)))
    resumed = _quiet_run(_train_py(*_args(data_root, tmp_path, "--ckpt_path", "last", epochs=2)))
    assert f"Restoring the run from {tmp_path}/version_0/checkpoints/last.ckpt (1 epochs done)" in resumed
    files = sorted(tmp_path.rglob("*"))
    again = _quiet_run(_train_py(*_args(data_root, tmp_path, "--ckpt_path", "last", epochs=2)))
    assert [line for line in again.splitlines() if "already finished" in line] == [
        f"The run in {tmp_path}/version_1/checkpoints/last.ckpt already finished (epochs done: 2, "
        "--trainer.max_epochs 2): nothing to resume; a larger --trainer.max_epochs trains it further"
    ], again[-3000:]
    assert "Restoring" not in again and "test_acc" not in again, "the finished run was run again"
    assert sorted(tmp_path.rglob("*")) == files, "resuming a finished run wrote files"


def test_train_into_a_file_draws_no_progress_bar_and_prints_rounded_metrics_and_its_time(data_root, tmp_path):
    """Output that is not a terminal (a pipe here, as a log file would be) gets no progress-bar
    redraws; the test metrics come rounded, and the run ends saying where it went, in how long."""
    result = _train_py(*_args(data_root, tmp_path, epochs=1, quiet=False), "--threads", "1")
    output = _quiet_run(result) + result.stderr
    assert "\r" not in output and "it/s" not in output, f"a progress bar was drawn:\n{output[-2000:]}"
    (test_line,) = [line for line in output.splitlines() if line.startswith("Test: ")]
    assert re.fullmatch(r"Test: test_acc [01]\.\d{4}, test_loss \d+\.\d{4}", test_line), test_line
    assert re.search(rf"Run written to {re.escape(str(tmp_path))}/version_0 in \d+ s \(1 CPU thread\)", output), output


def test_train_missing_dataset_is_one_line_error(tmp_path):
    result = _train_py(*_args(tmp_path / "empty", tmp_path / "runs"), "--data.download", "false")
    assert "Fashion-MNIST is not available" in _one_line_error(result)
    assert not list((tmp_path / "runs").glob("version_*")), "a run without data left a run directory"


def test_train_unwritable_log_directory_is_one_line_error(data_root, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    result = _train_py(*_args(data_root, blocker / "runs"))
    assert "cannot write to the log directory" in _one_line_error(result)


def test_train_missing_checkpoint_is_one_line_error(data_root, tmp_path):
    result = _train_py(*_args(data_root, tmp_path, "--ckpt_path", str(tmp_path / "nope.ckpt")))
    assert "no such checkpoint file" in _one_line_error(result)
    result = _train_py(*_args(data_root, tmp_path / "fresh", "--ckpt_path", "last"))
    assert "no last.ckpt" in _one_line_error(result)


def test_train_checkpoint_of_another_model_is_one_line_error(data_root, tmp_path):
    cli.main(_args(data_root, tmp_path, "--model.network", "basic", epochs=1))
    ckpt = tmp_path / "version_0" / "checkpoints" / "last.ckpt"
    result = _train_py(*_args(data_root, tmp_path, "--ckpt_path", str(ckpt), "--model.network", "better"))
    message = _one_line_error(result)
    assert "does not match the model" in message and "'network': 'basic'" in message


def test_train_corrupt_checkpoint_is_one_line_error(data_root, tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"this is not a checkpoint")
    result = _train_py(*_args(data_root, tmp_path, "--ckpt_path", str(bad)))
    assert "cannot be read" in _one_line_error(result)


# -- interruption ---------------------------------------------------------------------------------


def test_atomic_checkpoint_io_keeps_the_old_file_when_a_save_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1}, path)

    def crash(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"], "a partial file was left behind"


def _start_slow_run(data_root, run_dir, epochs=3):
    """A run slow enough to be interrupted after its first epoch."""
    args = _args(data_root, run_dir, "--data.batch_size", "4", epochs=epochs)
    return subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # A test suite started in the background inherits SIGINT ignored, and Python then never
        # turns Ctrl-C into KeyboardInterrupt: give the run a terminal's default disposition.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for(path, process, timeout=240):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the run ended before {path.name} appeared: {process.communicate()}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def slow_data_root(tmp_path_factory):
    return fake_fashion.write(tmp_path_factory.mktemp("slow"), n_train=1000, n_test=200)


def test_train_killed_run_resumes_from_last_and_finishes_as_uninterrupted(slow_data_root, tmp_path):
    epochs = ["--data.batch_size", "4"]
    run_dir = tmp_path / "killed"
    process = _start_slow_run(slow_data_root, run_dir, epochs=6)
    _wait_for(run_dir / "version_0" / "checkpoints" / "last.ckpt", process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    epochs_saved = torch.load(run_dir / "version_0" / "checkpoints" / "last.ckpt", weights_only=False)["epoch"]
    assert epochs_saved < 5, "the run finished before it could be killed"
    resumed = _train_py(*_args(slow_data_root, run_dir, *epochs, "--ckpt_path", "last", epochs=6))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Restoring the run from {run_dir}/version_0/checkpoints/last.ckpt" in resumed.stdout
    whole = _train_py(*_args(slow_data_root, tmp_path / "whole", *epochs, epochs=6))
    assert whole.returncode == 0, whole.stderr[-3000:]
    resumed_acc, whole_acc = _results(run_dir, version=1)["test_acc"], _results(tmp_path / "whole")["test_acc"]
    assert abs(resumed_acc - whole_acc) <= 0.01, f"resumed {resumed_acc} vs uninterrupted {whole_acc}"
    assert len(_results(run_dir, version=1)["epochs"]) == 6


def test_train_ctrl_c_stops_cleanly_and_keeps_the_last_checkpoint(slow_data_root, tmp_path):
    # Far more epochs than it will run: Ctrl-C must land mid-run even if this process is slow to look.
    process = _start_slow_run(slow_data_root, tmp_path, epochs=50)
    last = tmp_path / "version_0" / "checkpoints" / "last.ckpt"
    _wait_for(last, process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode != 0, f"the run was not interrupted: {stdout[-2000:]}"
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "KeyboardInterrupt" in stdout + stderr
    checkpoint = torch.load(last, weights_only=False)
    assert "state_dict" in checkpoint and checkpoint["epoch"] >= 0
    assert not list(last.parent.glob(".*partial")), "a partial checkpoint was left behind"


def test_train_ddp_on_two_cpu_processes(data_root, tmp_path):
    result = _train_py(
        *_args(data_root, tmp_path),
        "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = _results(tmp_path)
    assert results["hyperparameters"]["trainer"]["devices"] == 2
    assert results["test_acc"] > 0.5
    assert len(results["epochs"]) == 2


@pytest.mark.parametrize("config", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_is_accepted_as_written(config, tmp_path):
    """Each recipe of configs/ parses, passes every class's checks and means what its file says."""
    import yaml

    written = yaml.safe_load(config.read_text())
    args = ["--config", str(config), "--trainer.default_root_dir", str(tmp_path)]
    built = cli._cli(args, cli.task_of(args))
    for key, value in written.get("model", {}).items():
        assert built.model.hparams[key] == value, f"{config.name}: model.{key} is {built.model.hparams[key]!r}"
    for key, value in written.get("data", {}).items():
        assert built.datamodule.hparams[key] == value, f"{config.name}: data.{key} is {built.datamodule.hparams[key]!r}"
    assert built.trainer.max_epochs == written["trainer"]["max_epochs"]
    assert not list(tmp_path.iterdir()), f"{config.name}: building the run wrote {list(tmp_path.iterdir())}"
