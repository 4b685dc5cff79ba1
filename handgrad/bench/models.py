"""Section 11: what the interception costs. A training step (zero_grad, forward, cross-entropy,
backward, SGD) of torchvision's resnet18 at batch 32 on 64 × 64 images, ``handgrad.nn.convert``-ed,
against the built-in model with the same weights; and the same model with its modules converted
but its forward's own calls (``out += identity``) left to PyTorch (``swap_classes``: convert before
the interception), to separate what the mode costs from what the hand Functions do. Each row first
checks that its hand side gives the built-in's loss and gradients, and says what the audit of its
graph finds.
"""

import copy

import torch

import handgrad.nn
from handgrad.bench.timing import ms, paired, print_table
from handgrad.bench.training import check_same_step
from handgrad.bench.transformer import STEP_TOLERANCE, _step

BATCH, SIZE = 32, 64


def bench_models(device, mode):
    import torchvision

    variants = {"resnet18, convert": handgrad.nn.convert, "resnet18, modules only": handgrad.nn.swap_classes}
    x = torch.randn(BATCH, 3, SIZE, SIZE, device=device)
    y = torch.randint(0, 10, (BATCH,), device=device)
    losses = {"hand": handgrad.nn.CrossEntropyLoss(), "torch": torch.nn.CrossEntropyLoss()}
    rows = []
    for name, conversion in variants.items():
        torch.manual_seed(0)                                  # the same weights for every row: steps change them
        builtin = torchvision.models.resnet18(num_classes=10).to(device)
        twins = {"hand": conversion(copy.deepcopy(builtin)), "torch": builtin}
        hand = twins["hand"]
        loss_of = {impl: (lambda x, y, m=m, loss=losses[impl]: loss(m(x), y)) for impl, m in twins.items()}
        check_same_step(twins, loss_of, x, y, f"section 11: {name}", STEP_TOLERANCE)
        report = handgrad.nn.audit(loss_of["hand"](x, y))
        steps = {impl: _step(m, losses[impl], torch.optim.SGD(m.parameters(), lr=1e-3), x, y)
                 for impl, m in twins.items()}
        left = ", ".join(f"{n} {k}" for n, k in report.builtin.items())
        rows.append({"model": name, "complete": report.complete, "builtin": dict(report.builtin),
                     "audit": "every gradient hand-derived" if report.complete else f"built-in: {left}"}
                    | paired(steps["hand"], steps["torch"], device, mode["repeats"], mode["sample_s"]))
    print_table(f"11. A converted model's training step (ms), hand vs built-in: batch {BATCH}, {SIZE} × {SIZE} images",
                ["model", "hand", "torch", "hand/torch", "audit of the hand side's graph"],
                [[r["model"], ms(r["hand_s"]), ms(r["torch_s"]), f"{r['ratio']:.2f}", r["audit"]] for r in rows])
    return {"steps": rows}
