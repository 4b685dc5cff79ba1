"""Recurrent layers: the Elman RNN (tanh or ReLU), the LSTM and the GRU, run over whole sequences, and
their cells, one step. Backward is backpropagation through time: forward's loop over the time steps
run from the last step down, carrying dL/dh (and the LSTM's dL/dc) to the step before.

Notation, per time step t: x_t the step's input (b, I), h_t the hidden state (b, P), c_t the LSTM's
cell state (b, H); W_ih (k·H, I) and W_hh (k·H, P) the input and recurrent weights of the k gates,
stored (out, in) as torch stores them, b_ih and b_hh their biases; z_t the gates' pre-activations;
g = dL/d(output). P = H but for an LSTM with projections, whose h_t = m_t W_hrᵀ, W_hr (P, H). A step
holds b_t rows, one per sequence still running (b_t = N unless the batch is packed); the Functions
keep a sequence as every step's rows in time order, (R, ·) with R = Σ_t b_t (``handgrad.ops._sequence``).

Each step is the seed's linear layer twice, x_t W_ihᵀ and h_{t−1} W_hhᵀ, then elementwise gates.
Backward, from the last step down to the first:

    dz_t = dL/dz_t, from dL/dh_t through the step's gates   the chain rule inside one step
    dL/dh_{t−1} += dz_t W_hh                                 carried to the step before (the seed's g W)
    dL/dW_hh = Σ_t dz_tᵀ h_{t−1}                             summed over the steps (the seed's gᵀ x)
    dL/dx_t = dz_t W_ih,  dL/dW_ih = Σ_t dz_tᵀ x_t,  dL/db = Σ_t dz_t

Only the carry needs the loop; the sums over steps are one matrix product each once every dz_t is
known, as forward computes every x_t W_ihᵀ in one product before its loop. One Function runs one
layer in one direction over the whole sequence; the faces stack layers and directions.

A Function returns, besides the hidden states, what its backward reads that is not an input (the
LSTM's cell states and gates, the GRU's gates), so that double backward, which differentiates the
backward, sees them move with the inputs; backward takes the gradients arriving at them too.
"""

import contextlib

import torch
from torch.overrides import TorchFunctionMode

from handgrad._intercept import _requires_grad
from handgrad.ops._checks import LOWER, as_dtype, autocast, check_same_dtype_and_device, check_tensor, computed_in
from handgrad.ops._function import HandFunction, apply
from handgrad.ops._registry import Derivative, Module, Op, register
from handgrad.ops._sequence import (entering, in_time_order, initial_grad, joined, last_rows, leaving, plus_carry,
                                    previous, schedule)
from handgrad.ops.activation import tanh
from handgrad.ops.dropout import dropout as dropout_layer

# -- what the three layers share -----------------------------------------------------------------------


def _rows_of(x):
    """x as (R, I): a 3-D (T, N, I) sequence flattened (a copy where it is batch_first's transpose)."""
    return x.reshape(-1, x.shape[-1])


def _bias(b_ih, b_hh):
    """b_ih + b_hh, the sum both pre-activations share (None without biases)."""
    if b_ih is None or b_hh is None:
        return b_hh if b_ih is None else b_ih
    return b_ih + b_hh


def _input_products(x, W_ih, b):
    """x_t W_ihᵀ + b for every step at once, (R, k·H): one matrix product before the loop."""
    x2 = _rows_of(x)
    return x2.matmul(W_ih.t()) if b is None else torch.addmm(b, x2, W_ih.t())


def _weight_grads(wants, has_bias, x_shape, dZ_x, dZ_h, x, W_ih, h_prev):
    """dL/d(x, W_ih, W_hh, b_ih, b_hh) from every step's gradients at once (each only where ``wants``
    asks and, for a bias, where it is given): dZ_x (R, k·H) of x_t W_ihᵀ + b_ih and dZ_h of
    h_{t−1} W_hhᵀ + b_hh (the same tensor but for the GRU), in time order; x (R, I) or (T, N, I);
    h_prev (R, P) every step's h_{t−1}."""
    grad_x = dZ_x.mm(W_ih).view(x_shape) if wants[0] else None                # dL/dx = dZ W_ih, (R, I)
    grad_W_ih = dZ_x.t().mm(_rows_of(x)) if wants[1] else None               # dL/dW_ih = dZᵀ x, (k·H, I)
    grad_W_hh = dZ_h.t().mm(h_prev) if wants[2] else None                    # dL/dW_hh = dZᵀ h_prev, (k·H, P)
    grad_b_ih = dZ_x.sum(0) if wants[3] and has_bias[0] else None            # dL/db = Σ_t dz_t, (k·H,)
    grad_b_hh = None
    if wants[4] and has_bias[1]:
        # A copy where both biases get the same sum: autograd may keep a gradient as the .grad it is
        # accumulated into, and two parameters must not share one.
        grad_b_hh = grad_b_ih.clone() if dZ_h is dZ_x and grad_b_ih is not None else dZ_h.sum(0)
    return grad_x, grad_W_ih, grad_W_hh, grad_b_ih, grad_b_hh


def _carries(sizes, wants_h0):
    """Whether backward carries dL/dh to a step before (more than one step) or to h0: only then does
    it read W_hh (a cell whose h needs no gradient does not, so it is not kept)."""
    return len(sizes) > 1 or wants_h0


def _no_autocast(x):
    """Autocast off inside a Function: its inputs arrive cast as torch casts them, and every product
    inside runs in the dtype it chose (``computed_in``), not autocast's. (The meta device, on which
    models are audited at no cost, has no autocast.)"""
    device = x.device.type
    if device == "meta" or not torch.is_autocast_enabled(device):
        return contextlib.nullcontext()
    return torch.autocast(device, enabled=False)


def _or_zeros(tangent, like):
    return torch.zeros_like(like) if tangent is None else tangent


def _input_tangents(x, W_ih, dx, dW_ih, db, rows):
    """d(x_t W_ihᵀ + b) = dx_t W_ihᵀ + x_t dW_ihᵀ + db for every step, (R, k·H): forward's first
    product, linear in x and in W_ih, applied to each tangent."""
    dXW = torch.zeros(rows, W_ih.shape[0], dtype=W_ih.dtype, device=W_ih.device)
    if dx is not None:
        dXW = dXW + _rows_of(dx).matmul(W_ih.t())
    if dW_ih is not None:
        dXW = dXW + _rows_of(x).matmul(dW_ih.t())
    return dXW if db is None else dXW + db


def _recurrent_tangent(dh_prev, h_prev, W_hh, dW_hh, db_hh=None):
    """d(h_{t−1} W_hhᵀ + b_hh) = dh_{t−1} W_hhᵀ + h_{t−1} dW_hhᵀ + db_hh."""
    d = dh_prev.mm(W_hh.t())
    d = d if dW_hh is None else d + h_prev.mm(dW_hh.t())
    return d if db_hh is None else d + db_hh


# -- the Elman RNN: h_t = φ(z_t), z_t = x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh -------------------------


def _activation_slope(h, relu):
    """φ'(z) read from h = φ(z): 1 − h² for tanh, 1[h > 0] for ReLU."""
    return (h > 0).to(h.dtype) if relu else 1 - h * h


class RNNLayer(HandFunction):
    """One layer of an Elman RNN in one direction over the whole sequence: h_t = φ(z_t), φ = tanh or
    ReLU. Returns every step's h_t, (R, H), in time order; ``reverse`` runs from the last step.

    x (R, I) or (T, N, I); h0 (N, H); W_ih (H, I); W_hh (H, H); b_ih, b_hh (H,) or None; ``sizes``
    the b_t of the steps.
    """

    @staticmethod
    def forward(x, h0, W_ih, W_hh, b_ih, b_hh, sizes, reverse, relu):
        with _no_autocast(x):
            dtype, out_dtype = computed_in(x.dtype), h0.dtype
            x, h0, W_ih, W_hh, b_ih, b_hh = (as_dtype(t, dtype) for t in (x, h0, W_ih, W_hh, b_ih, b_hh))
            XW = _input_products(x, W_ih, _bias(b_ih, b_hh))                 # x_t W_ihᵀ + b, (R, H)
            hs, h = [], None
            for step in schedule(sizes, reverse):
                z = torch.addmm(XW[step.rows], entering(h, h0, step), W_hh.t())   # z_t, (b, H)
                h = torch.relu(z) if relu else torch.tanh(z)                  # h_t = φ(z_t)
                hs.append(h)
            return as_dtype(joined(in_time_order(hs, reverse)), out_dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, h0, W_ih, W_hh, b_ih, b_hh, ctx.sizes, ctx.reverse, ctx.relu = inputs
        wants = ctx.needs_input_grad
        ctx.save_for_backward(x if wants[2] else None, h0 if wants[3] else None, W_ih if wants[0] else None,
                              W_hh if _carries(ctx.sizes, wants[1]) else None, output)
        ctx.save_for_forward(x, h0, W_ih, W_hh, output)
        ctx.has_bias, ctx.x_shape = (b_ih is not None, b_hh is not None), x.shape

    @staticmethod
    def backward(ctx, g):
        saved = ctx.saved_tensors
        with _no_autocast(g):
            grads = rnn_backward(ctx.needs_input_grad, ctx.has_bias, ctx.x_shape, ctx.sizes, ctx.reverse, ctx.relu,
                                 g, *saved)
        return (*grads, None, None, None)

    @staticmethod
    def jvp(ctx, dx, dh0, dW_ih, dW_hh, db_ih, db_hh, *_):
        """Forward mode, the tangent carried forward through the steps as h is:
        dz_t = dx_t W_ihᵀ + x_t dW_ihᵀ + db_ih + db_hh + dh_{t−1} W_hhᵀ + h_{t−1} dW_hhᵀ, dh_t = φ'(z_t) dz_t."""
        x, h0, W_ih, W_hh, Y = ctx.saved_tensors
        dXW = _input_tangents(x, W_ih, dx, dW_ih, _bias(db_ih, db_hh), Y.shape[0])
        dh0 = _or_zeros(dh0, h0)
        dhs, dh = [], None
        for step in schedule(ctx.sizes, ctx.reverse):
            dz = dXW[step.rows] + _recurrent_tangent(entering(dh, dh0, step), previous(Y, h0, step), W_hh, dW_hh)
            dh = _activation_slope(Y[step.rows], ctx.relu) * dz               # dh_t = φ'(z_t) dz_t
            dhs.append(dh)
        return joined(in_time_order(dhs, ctx.reverse))


def rnn_backward(wants, has_bias, x_shape, sizes, reverse, relu, g, x, h0, W_ih, W_hh, Y):
    """dL/d(x, h0, W_ih, W_hh, b_ih, b_hh) of ``RNNLayer`` (None where not wanted), backpropagation
    through time from the last step to the first:

        dL/dh_t = g_t + dL/dh_t carried from the step after
        dz_t = dL/dh_t ∘ φ'(z_t)                        1 − h_t² for tanh, 1[h_t > 0] for ReLU
        dL/dh_{t−1}, carried = dz_t W_hh

    then the sums over the steps (``_weight_grads``). Shapes: g, Y (R, H); dz_t (b_t, H).
    """
    dtype = computed_in(Y.dtype)
    g, x, h0, W_ih, W_hh, Y = (as_dtype(t, dtype) for t in (g, x, h0, W_ih, W_hh, Y))
    dZ, h_prevs, d_h0 = [], [], []
    carry = None
    for step in reversed(schedule(sizes, reverse)):
        dh = plus_carry(g[step.rows], carry)                                   # dL/dh_t, (b, H)
        dz = dh * _activation_slope(Y[step.rows], relu)                        # dz_t = dL/dh_t ∘ φ'(z_t)
        if step.before is not None or wants[1]:
            carry, to_h0 = leaving(dz.mm(W_hh), step)                          # dL/dh_{t−1} = dz_t W_hh
            d_h0.append(to_h0)
        dZ.append(dz)
        if wants[3]:
            h_prevs.append(previous(Y, h0, step))
    dZ = joined(in_time_order(dZ[::-1], reverse))                              # every dz_t, (R, H)
    h_prev = joined(in_time_order(h_prevs[::-1], reverse)) if wants[3] else None
    grad_x, grad_W_ih, grad_W_hh, grad_b_ih, grad_b_hh = _weight_grads(
        (wants[0], wants[2], wants[3], wants[4], wants[5]), has_bias, x_shape, dZ, dZ, x, W_ih, h_prev)
    grad_h0 = initial_grad(d_h0) if wants[1] else None
    return grad_x, grad_h0, grad_W_ih, grad_W_hh, grad_b_ih, grad_b_hh


# -- the LSTM ---------------------------------------------------------------------------------------
#
#   i, f, c̃, o = σ(z_i), σ(z_f), tanh(z_c̃), σ(z_o)   the gates, z_t = x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh
#   c_t = f ∘ c_{t−1} + i ∘ c̃                         the cell state
#   m_t = o ∘ tanh(c_t),  h_t = m_t (or m_t W_hrᵀ)    the hidden state


class LSTMLayer(HandFunction):
    """One LSTM layer in one direction over the whole sequence (the gates above). Returns (Y, C, G):
    h_t (R, P), c_t (R, H) and the gates i, f, c̃, o side by side (R, 4H), every step's, in time order.

    x (R, I) or (T, N, I); h0 (N, P); c0 (N, H); W_ih (4H, I); W_hh (4H, P); b_ih, b_hh (4H,) or None;
    W_hr (P, H) or None; ``sizes`` the b_t of the steps; ``reverse``: run from the last step.
    """

    @staticmethod
    def forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh, W_hr, sizes, reverse):
        with _no_autocast(x):
            dtype, out_dtypes, hidden = computed_in(x.dtype), (h0.dtype, c0.dtype, x.dtype), c0.shape[1]
            x, h0, c0, W_ih, W_hh, b_ih, b_hh, W_hr = (as_dtype(t, dtype)
                                                       for t in (x, h0, c0, W_ih, W_hh, b_ih, b_hh, W_hr))
            XW = _input_products(x, W_ih, _bias(b_ih, b_hh))                 # x_t W_ihᵀ + b, (R, 4H)
            hs, cs, gates = [], [], []
            h = c = None
            for step in schedule(sizes, reverse):
                h_prev, c_prev = entering(h, h0, step), entering(c, c0, step)
                z = torch.addmm(XW[step.rows], h_prev, W_hh.t())             # z_t, (b, 4H)
                gate = torch.sigmoid(z)                                        # i, f, ·, o
                gate[:, 2 * hidden:3 * hidden] = torch.tanh(z[:, 2 * hidden:3 * hidden])   # c̃
                i, f, c_tilde, o = gate.chunk(4, 1)
                c = f * c_prev + i * c_tilde                                   # c_t = f ∘ c_{t−1} + i ∘ c̃
                h = o * torch.tanh(c)                                          # m_t = o ∘ tanh(c_t)
                if W_hr is not None:
                    h = h.mm(W_hr.t())                                         # h_t = m_t W_hrᵀ, (b, P)
                hs.append(h), cs.append(c), gates.append(gate)
            return tuple(as_dtype(joined(in_time_order(steps, reverse)), out)
                         for steps, out in zip((hs, cs, gates), out_dtypes))

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, h0, c0, W_ih, W_hh, b_ih, b_hh, W_hr, ctx.sizes, ctx.reverse = inputs
        Y, C, G = output
        wants = ctx.needs_input_grad
        ctx.save_for_backward(x if wants[3] else None, h0 if wants[4] else None, c0, W_ih if wants[0] else None,
                              W_hh if _carries(ctx.sizes, wants[1]) else None, W_hr,
                              Y if wants[4] and len(ctx.sizes) > 1 else None, C, G)
        ctx.save_for_forward(x, h0, c0, W_ih, W_hh, W_hr, Y, C, G)
        ctx.has_bias, ctx.shapes = (b_ih is not None, b_hh is not None), (x.shape, Y.shape)
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g_Y, g_C, g_G):
        saved = ctx.saved_tensors
        with _no_autocast(saved[-1]):
            grads = lstm_backward(ctx.needs_input_grad, ctx.has_bias, ctx.shapes, ctx.sizes, ctx.reverse,
                                  g_Y, g_C, g_G, *saved)
        return (*grads, None, None)

    @staticmethod
    def jvp(ctx, dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, dW_hr, *_):
        """Forward mode, the tangents carried forward through the steps as h and c are:

            dz_t = dx_t W_ihᵀ + x_t dW_ihᵀ + db + dh_{t−1} W_hhᵀ + h_{t−1} dW_hhᵀ
            di = i (1 − i) dz_i,  df = f (1 − f) dz_f,  dc̃ = (1 − c̃²) dz_c̃,  do = o (1 − o) dz_o
            dc_t = df ∘ c_{t−1} + f ∘ dc_{t−1} + di ∘ c̃ + i ∘ dc̃
            dm_t = do ∘ tanh c_t + o ∘ (1 − tanh² c_t) ∘ dc_t,  dh_t = dm_t (or dm_t W_hrᵀ + m_t dW_hrᵀ)
        """
        x, h0, c0, W_ih, W_hh, W_hr, Y, C, G = ctx.saved_tensors
        dXW = _input_tangents(x, W_ih, dx, dW_ih, _bias(db_ih, db_hh), G.shape[0])
        dh0, dc0 = _or_zeros(dh0, h0), _or_zeros(dc0, c0)
        dhs, dcs, dgates = [], [], []
        dh = dc = None
        for step in schedule(ctx.sizes, ctx.reverse):
            dz = dXW[step.rows] + _recurrent_tangent(entering(dh, dh0, step), previous(Y, h0, step), W_hh, dW_hh)
            i, f, c_tilde, o = G[step.rows].chunk(4, 1)
            dz_i, dz_f, dz_c, dz_o = dz.chunk(4, 1)
            di, df, do = i * (1 - i) * dz_i, f * (1 - f) * dz_f, o * (1 - o) * dz_o
            d_tilde = (1 - c_tilde * c_tilde) * dz_c
            dc = df * previous(C, c0, step) + f * entering(dc, dc0, step) + di * c_tilde + i * d_tilde
            tc = torch.tanh(C[step.rows])
            dh = do * tc + o * (1 - tc * tc) * dc                              # dm_t
            if W_hr is not None:
                dh = dh.mm(W_hr.t()) if dW_hr is None else dh.mm(W_hr.t()) + (o * tc).mm(dW_hr.t())
            dhs.append(dh), dcs.append(dc), dgates.append(torch.cat((di, df, d_tilde, do), 1))
        return tuple(joined(in_time_order(steps, ctx.reverse)) for steps in (dhs, dcs, dgates))


def lstm_backward(wants, has_bias, shapes, sizes, reverse, g_Y, g_C, g_G, x, h0, c0, W_ih, W_hh, W_hr, Y, C, G):
    """dL/d(x, h0, c0, W_ih, W_hh, b_ih, b_hh, W_hr) of ``LSTMLayer`` (None where not wanted),
    backpropagation through time from the last step to the first:

        dL/dh_t = g_t + dL/dh_t carried from the step after;   dL/dm_t = dL/dh_t (or dL/dh_t W_hr)
        dL/dc_t = g_c,t + dL/dc_t carried from the step after + dL/dm_t ∘ o ∘ (1 − tanh² c_t)
        dL/di = dL/dc_t ∘ c̃,  dL/df = dL/dc_t ∘ c_{t−1},  dL/dc̃ = dL/dc_t ∘ i,  dL/do = dL/dm_t ∘ tanh c_t
        dz_t = [dL/di ∘ i (1 − i), dL/df ∘ f (1 − f), dL/dc̃ ∘ (1 − c̃²), dL/do ∘ o (1 − o)]
        carried to the step before: dL/dh_{t−1} = dz_t W_hh,  dL/dc_{t−1} = dL/dc_t ∘ f

    then the sums over the steps (``_weight_grads``) and dL/dW_hr = Σ_t (dL/dh_t)ᵀ m_t. g_Y, g_C and g_G
    arrive at the three outputs (None where nothing does; g_G only in double backward).
    Shapes: Y, g_Y (R, P); C, g_C (R, H); G, g_G (R, 4H); dz_t (b_t, 4H).
    """
    dtype = computed_in(G.dtype)
    g_Y, g_C, g_G, x, h0, c0, W_ih, W_hh, W_hr, Y, C, G = (
        as_dtype(t, dtype) for t in (g_Y, g_C, g_G, x, h0, c0, W_ih, W_hh, W_hr, Y, C, G))
    g_Y = torch.zeros(shapes[1], dtype=dtype, device=C.device) if g_Y is None else g_Y
    g_C = torch.zeros_like(C) if g_C is None else g_C
    tanh_C = tanh(C)                                                           # tanh c_t of every step, (R, H)
    dZ, dH, h_prevs, d_h0, d_c0 = [], [], [], [], []
    carry_h = carry_c = None
    for step in reversed(schedule(sizes, reverse)):
        i, f, c_tilde, o = G[step.rows].chunk(4, 1)
        tc = tanh_C[step.rows]
        dh = plus_carry(g_Y[step.rows], carry_h)                               # dL/dh_t, (b, P)
        dm = dh if W_hr is None else dh.mm(W_hr)                               # dL/dm_t, (b, H)
        dc = plus_carry(g_C[step.rows], carry_c) + dm * o * (1 - tc * tc)      # dL/dc_t, (b, H)
        d_i = dc * c_tilde                                                     # dL/di
        d_f = dc * previous(C, c0, step)                                       # dL/df = dL/dc_t ∘ c_{t−1}
        d_tilde = dc * i                                                       # dL/dc̃
        d_o = dm * tc                                                          # dL/do
        if g_G is not None:
            g_i, g_f, g_tilde, g_o = g_G[step.rows].chunk(4, 1)
            d_i, d_f, d_tilde, d_o = d_i + g_i, d_f + g_f, d_tilde + g_tilde, d_o + g_o
        dz = torch.cat((d_i * i * (1 - i), d_f * f * (1 - f), d_tilde * (1 - c_tilde * c_tilde),
                        d_o * o * (1 - o)), 1)                                 # dz_t, (b, 4H)
        carry_c, to_c0 = leaving(dc * f, step)                                 # dL/dc_{t−1} = dL/dc_t ∘ f
        if step.before is not None or wants[1]:
            carry_h, to_h0 = leaving(dz.mm(W_hh), step)                        # dL/dh_{t−1} = dz_t W_hh
            d_h0.append(to_h0)
        dZ.append(dz), dH.append(dh), d_c0.append(to_c0)
        if wants[4]:
            h_prevs.append(previous(Y, h0, step))
    dZ = joined(in_time_order(dZ[::-1], reverse))                              # every dz_t, (R, 4H)
    h_prev = joined(in_time_order(h_prevs[::-1], reverse)) if wants[4] else None
    grad_x, grad_W_ih, grad_W_hh, grad_b_ih, grad_b_hh = _weight_grads(
        (wants[0], wants[3], wants[4], wants[5], wants[6]), has_bias, shapes[0], dZ, dZ, x, W_ih, h_prev)
    grad_W_hr = None
    if W_hr is not None and wants[7]:
        M = G.chunk(4, 1)[3] * tanh_C                                          # m_t = o ∘ tanh c_t, (R, H)
        grad_W_hr = joined(in_time_order(dH[::-1], reverse)).t().mm(M)         # Σ_t (dL/dh_t)ᵀ m_t, (P, H)
    grad_h0 = initial_grad(d_h0) if wants[1] else None
    grad_c0 = initial_grad(d_c0) if wants[2] else None
    return grad_x, grad_h0, grad_c0, grad_W_ih, grad_W_hh, grad_b_ih, grad_b_hh, grad_W_hr


# -- the GRU ----------------------------------------------------------------------------------------
#
#   r, u = σ(x_t W_irᵀ + b_ir + h_{t−1} W_hrᵀ + b_hr), σ(… W_iu …)   reset and update gates (torch's r, z)
#   a_t = h_{t−1} W_hnᵀ + b_hn                                        the recurrent part of the candidate
#   n = tanh(x_t W_inᵀ + b_in + r ∘ a_t)                              the candidate
#   h_t = (1 − u) ∘ n + u ∘ h_{t−1} = n + u ∘ (h_{t−1} − n)
#
# W_ih = [W_ir; W_iu; W_in] and W_hh = [W_hr; W_hu; W_hn] stacked by gate, biases likewise.


class GRULayer(HandFunction):
    """One GRU layer in one direction over the whole sequence (the gates above). Returns (Y, G): h_t
    (R, H) and r, u, n, a side by side (R, 4H), every step's, in time order.

    x (R, I) or (T, N, I); h0 (N, H); W_ih (3H, I); W_hh (3H, H); b_ih, b_hh (3H,) or None; ``sizes``
    the b_t of the steps; ``reverse``: run from the last step.
    """

    @staticmethod
    def forward(x, h0, W_ih, W_hh, b_ih, b_hh, sizes, reverse):
        with _no_autocast(x):
            dtype, out_dtypes, hidden = computed_in(x.dtype), (h0.dtype, x.dtype), h0.shape[1]
            x, h0, W_ih, W_hh, b_ih, b_hh = (as_dtype(t, dtype) for t in (x, h0, W_ih, W_hh, b_ih, b_hh))
            XW = _input_products(x, W_ih, b_ih)                               # x_t W_ihᵀ + b_ih, (R, 3H)
            hs, gates, h = [], [], None
            for step in schedule(sizes, reverse):
                h_prev, xw = entering(h, h0, step), XW[step.rows]
                hw = h_prev.mm(W_hh.t()) if b_hh is None else torch.addmm(b_hh, h_prev, W_hh.t())  # (b, 3H)
                r, u = torch.sigmoid(xw[:, :2 * hidden] + hw[:, :2 * hidden]).chunk(2, 1)
                a = hw[:, 2 * hidden:]                                         # a_t = h_{t−1} W_hnᵀ + b_hn
                n = torch.tanh(xw[:, 2 * hidden:] + r * a)                     # n = tanh(x W_inᵀ + b_in + r ∘ a)
                h = n + u * (h_prev - n)                                       # h_t = n + u ∘ (h_{t−1} − n)
                hs.append(h), gates.append(torch.cat((r, u, n, a), 1))
            return tuple(as_dtype(joined(in_time_order(steps, reverse)), out)
                         for steps, out in zip((hs, gates), out_dtypes))

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, h0, W_ih, W_hh, b_ih, b_hh, ctx.sizes, ctx.reverse = inputs
        Y, G = output
        wants = ctx.needs_input_grad
        ctx.save_for_backward(x if wants[2] else None, h0, W_ih if wants[0] else None,
                              W_hh if _carries(ctx.sizes, wants[1]) else None, Y if len(ctx.sizes) > 1 else None, G)
        ctx.save_for_forward(x, h0, W_ih, W_hh, Y, G)
        ctx.has_bias, ctx.shapes = (b_ih is not None, b_hh is not None), (x.shape, Y.shape)
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g_Y, g_G):
        saved = ctx.saved_tensors
        with _no_autocast(saved[-1]):
            grads = gru_backward(ctx.needs_input_grad, ctx.has_bias, ctx.shapes, ctx.sizes, ctx.reverse, g_Y, g_G,
                                 *saved)
        return (*grads, None, None)

    @staticmethod
    def jvp(ctx, dx, dh0, dW_ih, dW_hh, db_ih, db_hh, *_):
        """Forward mode, the tangent carried forward through the steps as h is:

            dxw = dx_t W_ihᵀ + x_t dW_ihᵀ + db_ih,  dhw = dh_{t−1} W_hhᵀ + h_{t−1} dW_hhᵀ + db_hh
            dr = r (1 − r)(dxw_r + dhw_r),  du = u (1 − u)(dxw_u + dhw_u),  da = dhw_n
            dn = (1 − n²)(dxw_n + dr ∘ a + r ∘ da)
            dh_t = dn + du ∘ (h_{t−1} − n) + u ∘ (dh_{t−1} − dn)
        """
        x, h0, W_ih, W_hh, Y, G = ctx.saved_tensors
        hidden = h0.shape[1]
        dXW = _input_tangents(x, W_ih, dx, dW_ih, db_ih, G.shape[0])
        dh0 = _or_zeros(dh0, h0)
        dhs, dgates, dh = [], [], None
        for step in schedule(ctx.sizes, ctx.reverse):
            h_prev, dh_prev = previous(Y, h0, step), entering(dh, dh0, step)
            dxw, dhw = dXW[step.rows], _recurrent_tangent(dh_prev, h_prev, W_hh, dW_hh, db_hh)
            r, u, n, a = G[step.rows].chunk(4, 1)
            dr = r * (1 - r) * (dxw[:, :hidden] + dhw[:, :hidden])
            du = u * (1 - u) * (dxw[:, hidden:2 * hidden] + dhw[:, hidden:2 * hidden])
            da = dhw[:, 2 * hidden:]
            dn = (1 - n * n) * (dxw[:, 2 * hidden:] + dr * a + r * da)
            dh = dn + du * (h_prev - n) + u * (dh_prev - dn)
            dhs.append(dh), dgates.append(torch.cat((dr, du, dn, da), 1))
        return tuple(joined(in_time_order(steps, ctx.reverse)) for steps in (dhs, dgates))


def gru_backward(wants, has_bias, shapes, sizes, reverse, g_Y, g_G, x, h0, W_ih, W_hh, Y, G):
    """dL/d(x, h0, W_ih, W_hh, b_ih, b_hh) of ``GRULayer`` (None where not wanted), backpropagation
    through time from the last step to the first:

        dL/dh_t = g_t + dL/dh_t carried from the step after
        dL/du = dL/dh_t ∘ (h_{t−1} − n),  dL/dn = dL/dh_t ∘ (1 − u)        h_t = n + u ∘ (h_{t−1} − n)
        dz_n = dL/dn ∘ (1 − n²),  dL/dr = dz_n ∘ a,  dL/da = dz_n ∘ r       n = tanh(z_n), z_n ∋ r ∘ a
        dz_r = dL/dr ∘ r (1 − r),  dz_u = dL/du ∘ u (1 − u)
        dL/d(x W_ihᵀ + b_ih) = [dz_r, dz_u, dz_n],  dL/d(h W_hhᵀ + b_hh) = [dz_r, dz_u, dL/da]
        carried to the step before: dL/dh_{t−1} = [dz_r, dz_u, dL/da] W_hh + dL/dh_t ∘ u

    then the sums over the steps (``_weight_grads``, one sum for each of the two products). g_Y and
    g_G arrive at the two outputs (None where nothing does; g_G only in double backward).
    Shapes: Y, g_Y (R, H); G, g_G (R, 4H); the steps' gradients (b_t, 3H).
    """
    dtype = computed_in(G.dtype)
    g_Y, g_G, x, h0, W_ih, W_hh, Y, G = (as_dtype(t, dtype) for t in (g_Y, g_G, x, h0, W_ih, W_hh, Y, G))
    g_Y = torch.zeros(shapes[1], dtype=dtype, device=G.device) if g_Y is None else g_Y
    dXW, dHW, h_prevs, d_h0 = [], [], [], []
    carry = None
    for step in reversed(schedule(sizes, reverse)):
        r, u, n, a = G[step.rows].chunk(4, 1)
        h_prev = previous(Y, h0, step)
        dh = plus_carry(g_Y[step.rows], carry)                                 # dL/dh_t, (b, H)
        d_u = dh * (h_prev - n)                                                # dL/du
        d_n = dh * (1 - u)                                                     # dL/dn
        if g_G is not None:
            g_r, g_u, g_n, g_a = g_G[step.rows].chunk(4, 1)
            d_u, d_n = d_u + g_u, d_n + g_n
        dz_n = d_n * (1 - n * n)                                               # dL/dz_n = dL/dn ∘ (1 − n²)
        d_r = dz_n * a                                                         # dL/dr = dz_n ∘ a
        d_a = dz_n * r                                                         # dL/da = dz_n ∘ r
        if g_G is not None:
            d_r, d_a = d_r + g_r, d_a + g_a
        dz_r, dz_u = d_r * r * (1 - r), d_u * u * (1 - u)
        dxw = torch.cat((dz_r, dz_u, dz_n), 1)                                 # dL/d(x W_ihᵀ + b_ih), (b, 3H)
        dhw = torch.cat((dz_r, dz_u, d_a), 1)                                  # dL/d(h W_hhᵀ + b_hh), (b, 3H)
        if step.before is not None or wants[1]:
            carry, to_h0 = leaving(dhw.mm(W_hh) + dh * u, step)                # dL/dh_{t−1}
            d_h0.append(to_h0)
        dXW.append(dxw), dHW.append(dhw)
        if wants[3]:
            h_prevs.append(h_prev)
    dXW, dHW = (joined(in_time_order(steps[::-1], reverse)) for steps in (dXW, dHW))   # (R, 3H)
    h_prev = joined(in_time_order(h_prevs[::-1], reverse)) if wants[3] else None
    grad_x, grad_W_ih, grad_W_hh, grad_b_ih, grad_b_hh = _weight_grads(
        (wants[0], wants[2], wants[3], wants[4], wants[5]), has_bias, shapes[0], dXW, dHW, x, W_ih, h_prev)
    grad_h0 = initial_grad(d_h0) if wants[1] else None
    return grad_x, grad_h0, grad_W_ih, grad_W_hh, grad_b_ih, grad_b_hh


# -- the functional faces: torch.rnn_tanh, rnn_relu, lstm, gru and their cells ------------------------

_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
# Autocast, as it reaches torch's kernels: the RNN's products are cast (its states too), the LSTM runs
# as one cast kernel (oneDNN's on the CPU, cuDNN's on CUDA); on the CPU the GRU's gates are computed
# in the lower dtype but its state stays in h0's, which this runs as it is given.
_AUTOCAST = {"rnn_tanh": LOWER, "rnn_relu": LOWER, "lstm": LOWER, "gru": {"cuda": "lower"}}


def _packed_form(second):
    """Whether a call is torch's packed form, (data, batch_sizes, hx, params, ...): torch tells its two
    overloads apart by the second argument, batch_sizes being an integer tensor."""
    return isinstance(second, torch.Tensor) and not second.is_floating_point()


def _states(fn, hx, lstm):
    """(h0, c0) of an LSTM's hx pair, (hx, None) otherwise."""
    if not lstm:
        check_tensor(fn, "hx", hx)
        return hx, None
    if not isinstance(hx, (list, tuple)) or len(hx) != 2:
        raise RuntimeError(f"{fn}: hx must be a pair (h0, c0) of tensors, got {type(hx).__name__}"
                           + (f" of {len(hx)}" if isinstance(hx, (list, tuple)) else ""))
    for name, t in zip(("hx[0] (h0)", "hx[1] (c0)"), hx):
        check_tensor(fn, name, t)
    return hx


def _check_shape(fn, name, t, expected):
    if tuple(t.shape) != tuple(expected):
        raise RuntimeError(f"{fn}: {name} must have shape {tuple(expected)}, got {tuple(t.shape)}")


def _sequence_of(fn, input, batch_sizes, batch_first):
    """(x, sizes): the input as the layers take it, (T, N, I) or packed data (R, I), and the b_t."""
    check_tensor(fn, "input", input)
    if not input.is_floating_point():
        raise RuntimeError(f"{fn}: input must be a floating-point tensor, got {input.dtype}")
    if batch_sizes is None:
        if input.dim() != 3:
            raise RuntimeError(f"{fn}: input must be 3-D, (T, N, I) (or (N, T, I) with batch_first), got shape "
                               f"{tuple(input.shape)}")
        x = input.transpose(0, 1) if batch_first else input                  # (T, N, I)
        if x.shape[0] == 0:
            raise RuntimeError(f"{fn}: Expected sequence length to be larger than 0 in RNN, got input of shape "
                               f"{tuple(input.shape)}")
        return x, (x.shape[1],) * x.shape[0]
    if input.dim() != 2 or batch_sizes.dim() != 1:
        raise RuntimeError(f"{fn}: a packed input is 2-D data (R, I) with 1-D batch_sizes, got shapes "
                           f"{tuple(input.shape)} and {tuple(batch_sizes.shape)}")
    sizes = tuple(batch_sizes.tolist())
    if not sizes or sum(sizes) != input.shape[0] or min(sizes) < 1 or list(sizes) != sorted(sizes, reverse=True):
        raise RuntimeError(f"{fn}: batch_sizes must be positive, non-increasing and sum to the {input.shape[0]} "
                           f"rows of data, got {list(sizes)}")
    return input, sizes


def _layer_weights(fn, params, k, per, where, expected):
    """W_ih, W_hh, b_ih, b_hh, W_hr of layer and direction k, each checked (None where absent)."""
    names = [name for name in ("W_ih", "W_hh", "b_ih", "b_hh", "W_hr") if name in expected]
    weights = dict.fromkeys(("W_ih", "W_hh", "b_ih", "b_hh", "W_hr"))
    for offset, (name, t) in enumerate(zip(names, params[k * per:(k + 1) * per])):
        what = f"params[{k * per + offset}] ({name} of {where})"
        check_tensor(fn, what, t)
        _check_shape(fn, what, t, expected[name])
        weights[name] = t
    return tuple(weights.values())


def _checked_weights(fn, x, sizes, h0, c0, params, has_biases, num_layers, directions):
    """Each layer's and direction's (W_ih, W_hh, b_ih, b_hh, W_hr), the shapes of the states and of
    every weight checked against the input's."""
    if not isinstance(num_layers, int) or num_layers < 1:
        raise RuntimeError(f"{fn}: num_layers must be a positive int, got {num_layers!r}")
    states, n = num_layers * directions, sizes[0]
    if h0.dim() != 3 or h0.shape[:2] != (states, n):
        raise RuntimeError(f"{fn}: hx{'[0]' if c0 is not None else ''} must have shape ({states}, {n}, hidden size) "
                           f"for {num_layers} layer(s) × {directions} direction(s) and {n} sequences, got "
                           f"{tuple(h0.shape)}")
    size = h0.shape[2]
    hidden = c0.shape[2] if c0 is not None and c0.dim() == 3 else size
    if c0 is not None:
        _check_shape(fn, "hx[1] (c0)", c0, (states, n, hidden))
    projections = size != hidden                                              # the LSTM's P < H
    per = 2 + 2 * bool(has_biases) + projections
    if len(params) != states * per:
        raise RuntimeError(
            f"{fn}: params must hold {states * per} tensors, {per} for each of {num_layers} layer(s) × {directions} "
            f"direction(s) (W_ih, W_hh{', b_ih, b_hh' if has_biases else ''}{', W_hr' if projections else ''}), "
            f"got {len(params)}")
    rows = _GATES[fn] * hidden
    weights = []
    for layer in range(num_layers):
        expected = {"W_ih": (rows, x.shape[-1] if layer == 0 else directions * size), "W_hh": (rows, size)}
        expected.update({"b_ih": (rows,), "b_hh": (rows,)} if has_biases else {})
        expected.update({"W_hr": (size, hidden)} if projections else {})
        weights.append([_layer_weights(fn, params, layer * directions + direction, per,
                                       f"layer {layer}" + (" reverse" if direction else ""), expected)
                        for direction in range(directions)])
    return weights


def _recurrent(fn, args):
    """torch.rnn_tanh / rnn_relu / lstm / gru (``fn``), in either of torch's forms, hand-derived:
    one Function per layer and direction, the layers joined as torch joins them (the directions'
    states side by side, dropout between layers in training)."""
    lstm = fn == "lstm"
    if _packed_form(args[1]):
        input, batch_sizes, hx, params, has_biases, num_layers, dropout, train, bidirectional = args
        batch_first = False
    else:
        input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first = args
        batch_sizes = None
    x, sizes = _sequence_of(fn, input, batch_sizes, batch_first)
    h0, c0 = _states(fn, hx, lstm)
    params = list(params)
    directions = 2 if bidirectional else 1
    weights = _checked_weights(fn, x, sizes, h0, c0, params, has_biases, num_layers, directions)
    check_same_dtype_and_device(fn, {"input": input, "h0": h0, "c0": c0,
                                     **{f"params[{i}]": p for i, p in enumerate(params)}})
    x, h0, *cast = autocast(_AUTOCAST[fn], x, h0, *(w for layer in weights for d in layer for w in d))
    if lstm and not (h0.shape[2] != c0.shape[2] and c0.device.type == "cpu"):   # with projections, torch's CPU
        (c0,) = autocast(_AUTOCAST[fn], c0)                                       # kernel keeps c in c0's dtype
    cast = iter(cast)
    weights = [[tuple(next(cast) for _ in d) for d in layer] for layer in weights]

    layer_input, h_n, c_n = x, [], []
    for layer, layer_weights in enumerate(weights):
        outputs = []
        for direction, (W_ih, W_hh, b_ih, b_hh, W_hr) in enumerate(layer_weights):
            k, reverse = layer * directions + direction, direction == 1
            last = last_rows(sizes, reverse, x.device)
            if lstm:
                Y, C, _ = apply(LSTMLayer, layer_input, h0[k], c0[k], W_ih, W_hh, b_ih, b_hh, W_hr, sizes, reverse)
                c_n.append(C[last])
            elif fn == "gru":
                Y, _ = apply(GRULayer, layer_input, h0[k], W_ih, W_hh, b_ih, b_hh, sizes, reverse)
            else:
                Y = apply(RNNLayer, layer_input, h0[k], W_ih, W_hh, b_ih, b_hh, sizes, reverse, fn == "rnn_relu")
            outputs.append(Y)
            h_n.append(Y[last])
        layer_input = outputs[0] if directions == 1 else torch.cat(outputs, 1)     # (R, D·P)
        if dropout and train and layer < num_layers - 1:
            layer_input = dropout_layer(layer_input, dropout)
    output = layer_input
    if batch_sizes is None:
        output = output.view(x.shape[0], x.shape[1], -1)                     # (T, N, D·P)
        output = output.transpose(0, 1) if batch_first else output
    return (output, torch.stack(h_n), torch.stack(c_n)) if lstm else (output, torch.stack(h_n))


def rnn_tanh(input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    """The Elman RNN, h_t = tanh(x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh), over the whole sequence, layer
    after layer, as ``torch.rnn_tanh`` (what ``torch.nn.RNN`` runs). Returns (output, h_n).

    Shapes: input (T, N, I) ((N, T, I) with batch_first) or, in torch's packed form
    ``rnn_tanh(data, batch_sizes, hx, params, has_biases, num_layers, dropout, train, bidirectional)``
    (what a PackedSequence runs), data (R, I); hx (L·D, N, H); params W_ih, W_hh (and b_ih, b_hh with
    biases) for each layer and direction; output (T, N, D·H) (or (R, D·H)); h_n (L·D, N, H).
    """
    return _recurrent("rnn_tanh", (input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
                                   batch_first))


def rnn_relu(input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    """``rnn_tanh`` with h_t = relu(z_t), as ``torch.rnn_relu`` (``torch.nn.RNN(nonlinearity='relu')``)."""
    return _recurrent("rnn_relu", (input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
                                   batch_first))


def lstm(input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    """The LSTM over the whole sequence, layer after layer, as ``torch.lstm`` (what ``torch.nn.LSTM``
    runs): gates i, f, c̃, o = σ, σ, tanh, σ of z_t = x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh,
    c_t = f ∘ c_{t−1} + i ∘ c̃, h_t = o ∘ tanh(c_t) (times W_hrᵀ with projections). Returns
    (output, h_n, c_n).

    Shapes: input (T, N, I) ((N, T, I) with batch_first) or, in torch's packed form
    ``lstm(data, batch_sizes, hx, params, ...)``, data (R, I); hx the pair (h0 (L·D, N, P), c0 (L·D, N, H)),
    P < H meaning projections; params W_ih, W_hh (b_ih, b_hh with biases, W_hr with projections) for
    each layer and direction; output (T, N, D·P) (or (R, D·P)); h_n (L·D, N, P); c_n (L·D, N, H).
    """
    return _recurrent("lstm", (input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first))


def gru(input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    """The GRU over the whole sequence, layer after layer, as ``torch.gru`` (what ``torch.nn.GRU``
    runs): r, u = σ(…), n = tanh(x_t W_inᵀ + b_in + r ∘ (h_{t−1} W_hnᵀ + b_hn)), h_t = n + u ∘ (h_{t−1} − n).
    Returns (output, h_n); shapes as ``rnn_tanh``'s, params W_ih (3H, ·), W_hh (3H, H) (and b_ih, b_hh)."""
    return _recurrent("gru", (input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first))


def _cell(fn, input, hx, w_ih, w_hh, b_ih, b_hh):
    """One step of the cell ``fn``: the layer's Function on a sequence of one step."""
    lstm = fn == "lstm_cell"
    check_tensor(fn, "input", input)
    h, c = _states(fn, hx, lstm)
    for name, t in (("w_ih", w_ih), ("w_hh", w_hh), ("b_ih", b_ih), ("b_hh", b_hh)):
        if t is not None or name.startswith("w"):
            check_tensor(fn, name, t)
    if input.dim() != 2 or not input.is_floating_point():
        raise RuntimeError(f"{fn}: input must be a 2-D (N, I) floating-point tensor, got shape {tuple(input.shape)} "
                           f"and dtype {input.dtype}")
    (batch, features), hidden, rows = input.shape, w_hh.shape[-1], _GATES[fn.removesuffix("_cell")] * w_hh.shape[-1]
    for name, t, expected in (("hx[0] (h)" if lstm else "hx", h, (batch, hidden)), ("hx[1] (c)", c, (batch, hidden)),
                              ("w_ih", w_ih, (rows, features)), ("w_hh", w_hh, (rows, hidden)),
                              ("b_ih", b_ih, (rows,)), ("b_hh", b_hh, (rows,))):
        if t is not None:
            _check_shape(fn, name, t, expected)
    check_same_dtype_and_device(fn, {"input": input, "hx": h, "c": c, "w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih,
                                     "b_hh": b_hh})
    if fn.startswith("rnn"):        # its products cast by autocast; the LSTM and GRU cells keep h's dtype
        input, h, w_ih, w_hh, b_ih, b_hh = autocast(LOWER, input, h, w_ih, w_hh, b_ih, b_hh)
    if lstm:
        y, c, _ = apply(LSTMLayer, input, h, c, w_ih, w_hh, b_ih, b_hh, None, (batch,), False)
        return y, c
    if fn == "gru_cell":
        return apply(GRULayer, input, h, w_ih, w_hh, b_ih, b_hh, (batch,), False)[0]
    return apply(RNNLayer, input, h, w_ih, w_hh, b_ih, b_hh, (batch,), False, fn == "rnn_relu_cell")


def rnn_tanh_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One step of the Elman RNN, h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh), as ``torch.rnn_tanh_cell``
    (``torch.nn.RNNCell``). Shapes: input (N, I), hx (N, H), w_ih (H, I), w_hh (H, H), biases (H,)."""
    return _cell("rnn_tanh_cell", input, hx, w_ih, w_hh, b_ih, b_hh)


def rnn_relu_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """``rnn_tanh_cell`` with relu, as ``torch.rnn_relu_cell`` (``torch.nn.RNNCell(nonlinearity='relu')``)."""
    return _cell("rnn_relu_cell", input, hx, w_ih, w_hh, b_ih, b_hh)


def lstm_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One LSTM step, as ``torch.lstm_cell`` (``torch.nn.LSTMCell``): returns (h', c'). Shapes: input
    (N, I), hx the pair (h (N, H), c (N, H)), w_ih (4H, I), w_hh (4H, H), biases (4H,)."""
    return _cell("lstm_cell", input, hx, w_ih, w_hh, b_ih, b_hh)


def gru_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One GRU step, as ``torch.gru_cell`` (``torch.nn.GRUCell``). Shapes: input (N, I), hx (N, H),
    w_ih (3H, I), w_hh (3H, H), biases (3H,)."""
    return _cell("gru_cell", input, hx, w_ih, w_hh, b_ih, b_hh)


def _takes(*args, **kwargs):
    """Whether handgrad takes a call of torch's recurrent kernels: by position as torch's modules call
    them (torch's packed form by keyword is left to torch), every floating tensor of one dtype and
    device (under autocast torch casts mixed ones itself)."""
    if "data" in kwargs or "batch_sizes" in kwargs:
        return False
    values = (*args, *kwargs.values())
    tensors = [t for v in values for t in (v if isinstance(v, (list, tuple)) else (v,))
               if isinstance(t, torch.Tensor) and t.is_floating_point()]
    return len({t.dtype for t in tensors}) == 1 and len({t.device for t in tensors}) == 1


# -- the modules: torch's own forward, its kernels hand-derived -------------------------------------


class _HandKernels(TorchFunctionMode):
    """While ``torch.nn.RNN``, ``LSTM``, ``GRU`` or a cell runs its own forward (its argument checks,
    unbatched inputs, packed sequences, ``permute_hidden``), the kernels it calls (``_VF.lstm``,
    ``_VF.gru_cell``, ...) run handgrad's faces."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        face = _KERNELS.get(func)
        if face is not None and torch.is_grad_enabled() and _requires_grad(args, kwargs) and _takes(*args, **kwargs):
            return face(*args, **kwargs)
        return func(*args, **kwargs)


def _module_forward(torch_cls):
    def forward(self, input, hx=None):
        with _HandKernels():
            return torch_cls.forward(self, input, hx)
    return forward


# -- registration ----------------------------------------------------------------------------------

_LAYER_SHAPES = "x (T, N, I) or packed (R, I), h (L·D, N, P), y (T, N, D·P)"
_KERNELS = {}       # torch's kernel → its face, what _HandKernels runs
for _name, _face, _function, _modules, _derivative in (
    ("rnn_tanh", rnn_tanh, RNNLayer, (torch.nn.RNN,),
     Derivative("h_t = tanh(z_t), z_t = x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh",
                "dz_t = (g_t + dz_{t+1} W_hh) ∘ (1 − h_t²); dL/dW_ih = Σ dz_tᵀ x_t, dL/dW_hh = Σ dz_tᵀ h_{t−1}",
                _LAYER_SHAPES)),
    ("rnn_relu", rnn_relu, RNNLayer, (),
     Derivative("h_t = relu(z_t)", "dz_t = (g_t + dz_{t+1} W_hh) ∘ 1[h_t > 0]; the weights as rnn_tanh's",
                _LAYER_SHAPES)),
    ("lstm", lstm, LSTMLayer, (torch.nn.LSTM,),
     Derivative("i, f, c̃, o = σ, σ, tanh, σ (z_t); c_t = f ∘ c_{t−1} + i ∘ c̃; h_t = o ∘ tanh c_t (W_hrᵀ)",
                "dc_t = dc_{t+1} ∘ f_{t+1} + dh_t ∘ o (1 − tanh² c_t); dz_t = [dc_t c̃, dc_t c_{t−1}, dc_t i, "
                "dh_t tanh c_t] ∘ the gates' slopes; dh_{t−1} = dz_t W_hh", _LAYER_SHAPES + ", c (L·D, N, H)")),
    ("gru", gru, GRULayer, (torch.nn.GRU,),
     Derivative("r, u = σ(z); n = tanh(x W_inᵀ + b_in + r ∘ (h_{t−1} W_hnᵀ + b_hn)); h_t = n + u ∘ (h_{t−1} − n)",
                "du = dh_t (h_{t−1} − n), dn = dh_t (1 − u), through σ and tanh; "
                "dh_{t−1} = dz_h W_hh + dh_t ∘ u", _LAYER_SHAPES)),
    ("rnn_tanh_cell", rnn_tanh_cell, RNNLayer, (torch.nn.RNNCell,),
     Derivative("h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)",
                "dz = g ∘ (1 − h'²); dL/dx = dz W_ih, dL/dh = dz W_hh", "x (N, I), h (N, H)")),
    ("rnn_relu_cell", rnn_relu_cell, RNNLayer, (),
     Derivative("h' = relu(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)", "dz = g ∘ 1[h' > 0]; as rnn_tanh_cell",
                "x (N, I), h (N, H)")),
    ("lstm_cell", lstm_cell, LSTMLayer, (torch.nn.LSTMCell,),
     Derivative("one step of lstm: c' = f ∘ c + i ∘ c̃, h' = o ∘ tanh c'",
                "dc = g_c + g ∘ o (1 − tanh² c'); dz = [dc c̃, dc c, dc i, g tanh c'] ∘ the gates' slopes; "
                "dL/dx = dz W_ih, dL/dh = dz W_hh, dL/dc = dc ∘ f", "x (N, I), h, c (N, H)")),
    ("gru_cell", gru_cell, GRULayer, (torch.nn.GRUCell,),
     Derivative("one step of gru: h' = n + u ∘ (h − n)",
                "du = g (h − n), dn = g (1 − u), through σ and tanh; dL/dh = dz_h W_hh + g ∘ u",
                "x (N, I), h (N, H)")),
):
    register(Op(_name, _face, (_function,), _derivative,
                modules={cls: Module(_module_forward(cls)) for cls in _modules},
                fused_by=f"`{'RNN' if _name == 'rnn_relu' else 'RNNCell'}(nonlinearity='relu')`",
                intercepts={getattr(torch, _name): None}, accepts=_takes))
    _KERNELS[getattr(torch, _name)] = _face
