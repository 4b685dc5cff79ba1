"""The character-level GPT: Tiny Shakespeare as a data module, the GPT network on hand gradients (lean)
equal to the built-in, its schedule, and ``python train.py --config configs/gpt.yaml`` end to end."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import handgrad.nn
from handgrad import _machine
from handgrad.training import cli
from handgrad.training.data import DatasetError
from handgrad.training.gpt import GPT
from handgrad.training.language import LitLanguageModel, warmup_cosine
from handgrad.training.text import RandomWindows, ShakespeareDataModule, Windows

REPO = Path(__file__).resolve().parents[1]
DATA = str(REPO / "data")
SMALL = ["--model.layers", "2", "--model.heads", "2", "--model.width", "32", "--data.block_size", "32",
         "--data.steps_per_epoch", "6", "--data.val_windows", "24", "--model.sample_length", "40",
         "--model.warmup_steps", "2", "--trainer.enable_progress_bar", "false",
         "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="module")
def shakespeare():
    data = ShakespeareDataModule(DATA, block_size=16, batch_size=4, steps_per_epoch=3, val_windows=10)
    data.setup()
    return data


def test_shakespeare_is_characters_split_as_nanogpt_splits_it(shakespeare):
    assert shakespeare.vocab_size == 65 and shakespeare.chars[0] == "\n" and shakespeare.chars[-1] == "z"
    assert len(shakespeare.train_tokens) == int(0.9 * 1_115_394)
    assert len(shakespeare.train_tokens) + len(shakespeare.val_tokens) == 1_115_394
    assert shakespeare.decode(shakespeare.train_tokens[:14].tolist()) == "First Citizen:"
    assert shakespeare.decode(shakespeare.encode("To be").tolist()) == "To be"


def test_training_windows_are_random_next_character_pairs_seeded_by_epoch(shakespeare):
    batches = list(shakespeare.train_dataloader())
    assert len(batches) == 3
    for x, y in batches:
        assert x.shape == y.shape == (4, 16) and x.dtype == torch.long
        assert torch.equal(x[:, 1:], y[:, :-1])                     # y is x moved on by one character
    again = list(shakespeare.train_dataloader())
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))
    other = RandomWindows(shakespeare.train_tokens, 16, 4, 3, seed=torch.initial_seed(), epoch=lambda: 1)
    assert not torch.equal(next(iter(other))[0], batches[0][0])


def test_validation_reads_the_held_out_text_in_consecutive_windows(shakespeare):
    test = list(shakespeare.test_dataloader())
    windows = torch.cat([x for x, _ in test])
    assert len(windows) == (len(shakespeare.val_tokens) - 1) // 16
    assert torch.equal(windows.flatten(), shakespeare.val_tokens[: windows.numel()].long())
    assert sum(len(x) for x, _ in shakespeare.val_dataloader()) == 10
    ranks = [torch.cat([x for x, _ in Windows(shakespeare.val_tokens, 16, 64, rank=r, world_size=2)]) for r in (0, 1)]
    assert len(ranks[0]) + len(ranks[1]) == len(windows)


@pytest.mark.parametrize("bad", [{"block_size": 0}, {"batch_size": 0}, {"steps_per_epoch": 0}, {"val_windows": -1},
                                 {"eval_batch_size": 0}], ids=str)
def test_shakespeare_rejects_bad_options(bad):
    with pytest.raises(ValueError, match=list(bad)[0]):
        ShakespeareDataModule(DATA, **bad)


def test_shakespeare_refuses_a_missing_or_altered_text(tmp_path):
    with pytest.raises(DatasetError, match="Tiny Shakespeare is not available"):
        ShakespeareDataModule(str(tmp_path))
    (tmp_path / "tinyshakespeare").mkdir()
    (tmp_path / "tinyshakespeare" / "input.txt").write_text("To be, or not to be")
    with pytest.raises(DatasetError, match="its MD5 is not"):
        ShakespeareDataModule(str(tmp_path))


@pytest.mark.parametrize("memory", ["lean", "plain"])
def test_gpt_on_hand_gradients_equals_builtin_in_float64(memory):
    torch.manual_seed(0)
    model = GPT(65, block_size=16, layers=2, heads=2, width=16, dropout=0.0).double()
    hand = handgrad.nn.convert(copy.deepcopy(model), memory=memory)
    idx = torch.randint(0, 65, (3, 16))
    losses = []
    for m in (model, hand):
        loss = m(idx, torch.roll(idx, -1, 1))
        loss.backward()
        losses.append(loss)
    assert handgrad.nn.audit(losses[1]).complete, str(handgrad.nn.audit(losses[1]))
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-12, atol=1e-12)
    for (name, p), q in zip(model.named_parameters(), hand.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-9, atol=1e-12, msg=f"d{name}")


def test_gpt_generates_characters_of_its_vocabulary(shakespeare):
    torch.manual_seed(0)
    model = GPT(65, block_size=16, layers=1, heads=2, width=16)
    out = model.generate(shakespeare.encode("\n").unsqueeze(0), 40, top_k=5, generator=torch.Generator().manual_seed(1))
    assert out.shape == (1, 41) and int(out.max()) < 65
    assert len(shakespeare.decode(out[0].tolist())) == 41


def test_warmup_then_cosine_to_the_floor_as_nanogpt():
    factor = warmup_cosine(warmup=100, total=2000, floor=0.1)
    assert factor(0) == pytest.approx(1 / 101) and factor(99) == pytest.approx(100 / 101)
    assert factor(100) == pytest.approx(1.0)
    assert factor(1050) == pytest.approx(0.55)                 # half way down the cosine
    assert factor(2000) == pytest.approx(0.1) and factor(5000) == pytest.approx(0.1)


@pytest.mark.parametrize("bad", [{"width": 30, "heads": 4}, {"dropout": 1.0}, {"min_lr": 1.0}, {"memory": "fast"},
                                 {"network": "cnn"}, {"top_k": 0}, {"decay_steps": 50}], ids=str)
def test_language_model_rejects_bad_options(bad):
    name = "width" if "width" in bad else list(bad)[0]
    with pytest.raises(ValueError, match=name):
        LitLanguageModel(**bad)


def test_task_is_text_where_the_network_is_gpt(tmp_path):
    assert cli.task_of(["--config", str(REPO / "configs" / "gpt.yaml")]) == "text"
    assert cli.task_of(["--model.network", "gpt"]) == "text"
    assert cli.task_of(["--model.network=gpt"]) == "text"
    assert cli.task_of(["--config", str(REPO / "configs" / "vit.yaml")]) == "images"
    assert cli.task_of([]) == "images"
    assert cli.task_of(["--config", str(tmp_path / "missing.yaml")]) == "images"


def _train(*args, timeout=600):
    return subprocess.run([sys.executable, str(REPO / "train.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_train_gpt_config_end_to_end_every_gradient_hand_derived(tmp_path):
    """python train.py --config configs/gpt.yaml, shortened: trains, validates, tests on all of the
    held-out text, writes the sample and results.json (every gradient hand-derived), resumes."""
    result = _train("--config", "configs/gpt.yaml", "--trainer.max_epochs", "1", "--trainer.default_root_dir",
                    str(tmp_path), *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "nats per character" in result.stdout and "Sample (40 characters):" in result.stdout
    run = tmp_path / "version_0"
    results = json.loads((run / "results.json").read_text())
    assert results["gradients"]["complete"], results["gradients"]
    assert results["hyperparameters"]["model"]["memory"] == "lean"
    assert 0 < results["test_loss"] < 5 and len(results["sample"]) == 40
    assert (run / "sample.txt").read_text() == results["sample"] + "\n"
    assert (run / "learning_curve.png").is_file() and list((run / "checkpoints").glob("best-epoch0-val_loss*.ckpt"))
    resumed = _train("--config", "configs/gpt.yaml", "--trainer.max_epochs", "2", "--trainer.default_root_dir",
                     str(tmp_path), "--ckpt_path", "last", *SMALL)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "(1 epochs done)" in resumed.stdout


def test_train_gpt_on_builtins(tmp_path):
    result = _train("--config", "configs/gpt.yaml", "--model.impl", "torch", "--trainer.max_epochs", "1",
                    "--trainer.default_root_dir", str(tmp_path), *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "version_0" / "results.json").read_text())
    assert results["gradients"] is None and results["hyperparameters"]["model"]["impl"] == "torch"


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_train_gpt_mixed_precision_clips_gradients(precision, tmp_path):
    """configs/gpt.yaml clips gradients; under mixed precision Lightning refuses to clip a fused
    optimizer's, so the GPT's AdamW is fused only outside it."""
    result = _train("--config", "configs/gpt.yaml", "--model.compile", "none", "--trainer.precision", precision,
                    "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path), *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 0 < json.loads((tmp_path / "version_0" / "results.json").read_text())["test_loss"] < 5


@pytest.mark.parametrize("option, message", [
    (["--model.width", "30"], "error: width must be a multiple of heads, got width=30 and heads=4"),
    (["--data.block_size", "0"], "error: block_size must be at least 1, got 0"),
    (["--model.memory", "fast"], "error: "),
    (["--checkpoint.monitor", "val_acc"], "error: checkpoint.monitor must be one of ['train_loss', 'val_loss']"),
])
def test_train_gpt_bad_option_is_one_line(option, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["--config", str(REPO / "configs" / "gpt.yaml"), "--trainer.default_root_dir", str(tmp_path),
                  *option])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and len(err.splitlines()) == 1 and err.startswith(message), err


def test_busy_cores_are_read_from_the_kernel():
    busy = _machine.busy_cores(0.05)
    assert busy is None or 0.0 <= busy <= _machine.os.cpu_count() + 1e-9


def test_default_threads_leave_the_busy_cores_alone(monkeypatch):
    cores = len(_machine.os.sched_getaffinity(0))
    monkeypatch.setattr(_machine, "busy_cores", lambda: float(cores))
    assert _machine.default_threads() == 1
    monkeypatch.setattr(_machine, "busy_cores", lambda: 0.0)
    assert _machine.default_threads() == min(cores, torch.get_num_threads())
