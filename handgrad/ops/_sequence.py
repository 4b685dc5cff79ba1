"""The layout of a batch of sequences in the recurrent layers (``handgrad.ops.rnn``): which rows each
time step holds, the order in which a layer runs the steps, and the state each step starts from.

A batch is kept as rows, every step's rows after the step before's, in time order: the (R, ·) layout
of ``torch.nn.utils.rnn.PackedSequence``. Step t holds b_t rows, one per sequence still running,
longest sequences first, so b_1 ≥ b_2 ≥ …, and R = Σ_t b_t. A batch that is not packed is the case
b_t = N: its (T, N, ·) tensor is (T·N, ·) in this layout.
"""

from typing import NamedTuple

import torch


class Step(NamedTuple):
    """One time step as a layer runs it: its rows, and those of the step run before it (None for the
    first step run)."""

    rows: slice
    before: slice = None

    @property
    def size(self):
        """b_t, the sequences the step runs."""
        return self.rows.stop - self.rows.start

    @property
    def size_before(self):
        """b of the step run before it (0 for the first)."""
        return 0 if self.before is None else self.before.stop - self.before.start


def schedule(sizes, reverse):
    """The steps of a batch of step sizes ``sizes`` (b_1, …, b_T) in the order a layer runs them: from
    the first to the last, or from the last to the first with ``reverse``."""
    rows, start = [], 0
    for b in sizes:
        rows.append(slice(start, start + b))
        start += b
    if reverse:
        rows.reverse()
    return [Step(r, before) for r, before in zip(rows, [None, *rows[:-1]])]


def in_time_order(pieces, reverse):
    """One piece per step, in the order the steps ran, put in time order."""
    return pieces[::-1] if reverse else pieces


def joined(pieces):
    """The pieces concatenated along the rows (the one piece itself, uncopied)."""
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces)


def entering(state_before, initial, step):
    """The state (b_t rows) a step starts from: the first b_t rows of the state the step run before it
    left (``state_before``, None for the first step; sequences that have ended are its last rows),
    then, where the step has more rows than that one (running a packed batch backwards, sequences
    start one after another), the initial state of the sequences that start here."""
    b, b_before = step.size, step.size_before
    if b_before == 0:
        return initial if b == initial.shape[0] else initial[:b]
    if b <= b_before:
        return state_before if b == b_before else state_before[:b]
    return torch.cat((state_before, initial[b_before:b]))


def previous(states, initial, step):
    """h_{t−1} (or c_{t−1}) of a step, read from every step's states kept in the (R, ·) layout."""
    return entering(None if step.before is None else states[step.before], initial, step)


def leaving(d_state, step):
    """dL/d(the state a step started from), split as ``entering`` joined it: (the rows that belong
    to the state of the step run before it, the rows that belong to the initial state or None)."""
    kept = min(step.size, step.size_before)
    return d_state[:kept], (d_state[kept:] if kept < step.size or step.before is None else None)


def plus_carry(g, carry):
    """g (a step's b_t rows) plus the gradient carried back from the step run after it, which covers
    only its first rows where sequences end at this step (None for the last step run)."""
    if carry is None or carry.shape[0] == 0:
        return g
    if carry.shape[0] < g.shape[0]:
        return torch.cat((g[:carry.shape[0]] + carry, g[carry.shape[0]:]))
    return g + carry


def initial_grad(pieces):
    """dL/d(initial state) from the rows ``leaving`` handed it at each step, gathered from the last
    step run to the first, that is from the last rows to the first."""
    return joined([d for d in pieces[::-1] if d is not None])


def last_rows(sizes, reverse, device):
    """The rows of each sequence's last step run, where its final state is: run backwards, time 0's
    (the first N rows); run forwards, the last N rows, or in a packed batch, whose sequences end at
    different steps, an index of each one's own last step."""
    n, total = sizes[0], sum(sizes)
    if reverse:
        return slice(0, n)
    if sizes[-1] == n:
        return slice(total - n, total)
    rows, start = [0] * n, 0
    for t, b in enumerate(sizes):
        for j in range(sizes[t + 1] if t + 1 < len(sizes) else 0, b):    # the sequences ending at step t
            rows[j] = start + j
        start += b
    return torch.tensor(rows, device=device)
