"""The recurrent layers' cases (``handgrad.ops.rnn``): a NumPy oracle that runs each cell one step at
a time and backpropagates through time step by step, samples of every option of ``torch.lstm`` and
its siblings (layers, directions, batch_first, biases, projections, dropout in training), bad inputs,
module samples of ``torch.nn.RNN``, ``LSTM``, ``GRU`` and their cells, bench sizes.

``torch.lstm`` takes hx and params as lists of tensors; the samples give each tensor as an argument
of its own, so that verify differentiates it, and ``call`` puts them back into lists.
"""

import numpy as np
import torch

from handgrad.testing import ErrorInput, ModuleSample, Sample, Tolerance, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, x32

_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


# -- one step of each cell, forward and backward --------------------------------------------------


def _step(mode, x, h, c, W_ih, W_hh, b_ih, b_hh, W_hr):
    """One step: (h', c', what its backward needs). x (N, I), h (N, P), c (N, H) or None."""
    xw = x @ W_ih.T + (0 if b_ih is None else b_ih)
    hw = h @ W_hh.T + (0 if b_hh is None else b_hh)
    if mode in ("rnn_tanh", "rnn_relu"):
        h_new = np.tanh(xw + hw) if mode == "rnn_tanh" else np.maximum(xw + hw, 0)
        return h_new, None, (x, h, h_new)
    if mode == "gru":
        (x_r, x_u, x_n), (h_r, h_u, a) = np.split(xw, 3, axis=1), np.split(hw, 3, axis=1)
        r, u = _sigmoid(x_r + h_r), _sigmoid(x_u + h_u)
        n = np.tanh(x_n + r * a)
        return (1 - u) * n + u * h, None, (x, h, r, u, n, a)
    i, f, g, o = np.split(xw + hw, 4, axis=1)
    i, f, g, o = _sigmoid(i), _sigmoid(f), np.tanh(g), _sigmoid(o)
    c_new = f * c + i * g
    m = o * np.tanh(c_new)
    return (m if W_hr is None else m @ W_hr.T), c_new, (x, h, c, i, f, g, o, c_new, m)


def _step_backward(mode, tape, W_ih, W_hh, W_hr, dh, dc):
    """dL/d(x, h, c) and dL/d(W_ih, W_hh, b_ih, b_hh, W_hr) of one step, from dL/dh' and dL/dc'."""
    dW_hr = dc_prev = None
    if mode in ("rnn_tanh", "rnn_relu"):
        x, h, h_new = tape
        dz_x = dz_h = dh * ((1 - h_new ** 2) if mode == "rnn_tanh" else (h_new > 0))
        dh_prev = dz_h @ W_hh
    elif mode == "gru":
        x, h, r, u, n, a = tape
        dn = dh * (1 - u) * (1 - n ** 2)                  # through h' = (1 − u) n + u h and n = tanh(·)
        dr, du = dn * a * r * (1 - r), dh * (h - n) * u * (1 - u)
        dz_x, dz_h = np.concatenate([dr, du, dn], 1), np.concatenate([dr, du, dn * r], 1)
        dh_prev = dz_h @ W_hh + dh * u
    else:
        x, h, c, i, f, g, o, c_new, m = tape
        if W_hr is not None:
            dW_hr, dh = dh.T @ m, dh @ W_hr
        dc = dc + dh * o * (1 - np.tanh(c_new) ** 2)
        dz_x = dz_h = np.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g ** 2),
                                      dh * np.tanh(c_new) * o * (1 - o)], 1)
        dh_prev, dc_prev = dz_h @ W_hh, dc * f
    return dz_x @ W_ih, dh_prev, dc_prev, (dz_x.T @ x, dz_h.T @ h, dz_x.sum(0), dz_h.sum(0), dW_hr)


# -- the layers -------------------------------------------------------------------------------------


def _unpack(weights, has_biases, projections):
    """W_ih, W_hh, b_ih, b_hh, W_hr of one layer and direction (None where absent)."""
    W_ih, W_hh, *rest = weights
    b_ih, b_hh = rest[:2] if has_biases else (None, None)
    return W_ih, W_hh, b_ih, b_hh, (rest[-1] if projections else None)


def _layers_numpy(mode, x, h0, c0, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    """The layers and directions one step at a time, the dropout masks drawn from torch's generator in
    the order the layers draw them; returns (outputs, vjp)."""
    lstm = mode == "lstm"
    directions = 2 if bidirectional else 1
    projections = lstm and h0.shape[2] != c0.shape[2]
    per = 2 + 2 * has_biases + projections
    size = h0.shape[2]
    layer_input = x.transpose(1, 0, 2) if batch_first else x                  # (T, N, I)
    steps = layer_input.shape[0]
    tapes, h_n, c_n = [], [], []
    for layer in range(num_layers):
        outputs, runs = [], []
        for direction in range(directions):
            k = layer * directions + direction
            weights = _unpack(params[k * per:(k + 1) * per], has_biases, projections)
            h, c = h0[k], (c0[k] if lstm else None)
            ys, run = [None] * steps, []
            for t in (reversed(range(steps)) if direction else range(steps)):
                h, c, tape = _step(mode, layer_input[t], h, c, *weights)
                ys[t] = h
                run.append((t, tape))
            outputs.append(np.stack(ys)), runs.append((weights, run)), h_n.append(h), c_n.append(c)
        output = np.concatenate(outputs, -1)
        mask = None
        if dropout and train and layer < num_layers - 1:
            mask = torch.empty(output.shape, dtype=torch.float64).bernoulli_(1 - dropout).numpy() / (1 - dropout)
            output = output * mask
        tapes.append((layer_input, runs, mask))
        layer_input = output
    y = layer_input.transpose(1, 0, 2) if batch_first else layer_input

    def vjp(g_y, g_h, g_c=None):
        grads = [np.zeros_like(p) for p in params]
        grad_h0, grad_c0 = np.zeros_like(h0), (np.zeros_like(c0) if lstm else None)
        g_out = g_y.transpose(1, 0, 2) if batch_first else g_y
        for layer in reversed(range(num_layers)):
            layer_input, runs, mask = tapes[layer]
            g_out = g_out if mask is None else g_out * mask
            g_in = np.zeros_like(layer_input)
            for direction, ((W_ih, W_hh, b_ih, b_hh, W_hr), run) in enumerate(runs):
                k = layer * directions + direction
                dh, dc = g_h[k], (g_c[k] if lstm else None)
                g_direction = g_out[:, :, direction * size:(direction + 1) * size]
                for t, tape in reversed(run):
                    dx, dh, dc, step_grads = _step_backward(mode, tape, W_ih, W_hh, W_hr, g_direction[t] + dh, dc)
                    g_in[t] += dx
                    W_ih_g, W_hh_g, b_ih_g, b_hh_g, W_hr_g = step_grads
                    own = [W_ih_g, W_hh_g] + [b_ih_g, b_hh_g] * has_biases + [W_hr_g] * projections
                    for j, grad in enumerate(own):
                        grads[k * per + j] += grad
                grad_h0[k] = dh
                if lstm:
                    grad_c0[k] = dc
            g_out = g_in
        grad_x = g_out.transpose(1, 0, 2) if batch_first else g_out
        return (grad_x, grad_h0, grad_c0, *grads) if lstm else (grad_x, grad_h0, *grads)

    outputs = (y, np.stack(h_n), np.stack(c_n)) if lstm else (y, np.stack(h_n))
    return outputs, vjp


def _layers_oracle(mode):
    if mode == "lstm":
        def oracle(x, h0, c0, *params, **options):
            return _layers_numpy(mode, x, h0, c0, params, **options)
    else:
        def oracle(x, h0, *params, **options):
            return _layers_numpy(mode, x, h0, None, params, **options)
    oracle.__name__ = f"{mode}_numpy"
    return oracle


def _cell_oracle(mode):
    def oracle(x, hx, *rest):
        c = None
        if mode == "lstm":
            c, *rest = rest
        W_ih, W_hh, b_ih, b_hh = (*rest, None, None)[:4]
        h_new, c_new, tape = _step(mode, x, hx, c, W_ih, W_hh, b_ih, b_hh, None)

        def vjp(g_h, g_c=None):
            dx, dh, dc, (dW_ih, dW_hh, db_ih, db_hh, _) = _step_backward(mode, tape, W_ih, W_hh, None, g_h, g_c)
            biases = (db_ih if b_ih is not None else None, db_hh if b_hh is not None else None)
            return (dx, dh, dc, dW_ih, dW_hh, *biases) if mode == "lstm" else (dx, dh, dW_ih, dW_hh, *biases)

        return ((h_new, c_new) if mode == "lstm" else h_new), vjp
    oracle.__name__ = f"{mode}_cell_numpy"
    return oracle


# -- samples ----------------------------------------------------------------------------------------


def _layer_sample(gen, mode, name, steps, batch, features, hidden, *, num_layers=1, bidirectional=False,
                  batch_first=False, has_biases=True, dropout=0.0, train=False, projection=0):
    """x, h0 (and c0), then each layer's and direction's weights, as arguments of their own; the
    options as keywords."""
    directions = 2 if bidirectional else 1
    size = projection or hidden
    gates = {"lstm": 4, "gru": 3}.get(mode, 1)
    x = randn(gen, *((batch, steps) if batch_first else (steps, batch)), features)
    states = [randn(gen, num_layers * directions, batch, size)]
    if mode == "lstm":
        states.append(randn(gen, num_layers * directions, batch, hidden))
    params = []
    for layer in range(num_layers):
        for _ in range(directions):
            inputs = features if layer == 0 else directions * size
            params += [randn(gen, gates * hidden, inputs, scale=0.5), randn(gen, gates * hidden, size, scale=0.5)]
            if has_biases:
                params += [randn(gen, gates * hidden, scale=0.5), randn(gen, gates * hidden, scale=0.5)]
            if projection:
                params.append(randn(gen, projection, hidden, scale=0.5))
    options = dict(has_biases=has_biases, num_layers=num_layers, dropout=dropout, train=train,
                   bidirectional=bidirectional, batch_first=batch_first)
    return Sample((x, *states, *params), options, name)


def _layer_samples(mode):
    def samples(gen):
        return [
            _layer_sample(gen, mode, "1 layer, (T, N, I) = (3, 2, 2), H = 2", 3, 2, 2, 2),
            _layer_sample(gen, mode, "2 layers, bidirectional, batch_first, no biases"
                          + (", projections (H 2, P 1)" if mode == "lstm" else ""), 2, 2, 1, 2, num_layers=2,
                          bidirectional=True, batch_first=True, has_biases=False,
                          projection=1 if mode == "lstm" else 0),
            _layer_sample(gen, mode, "2 layers, dropout 0.5 in training", 2, 3, 1, 1, num_layers=2, dropout=0.5,
                          train=True),
        ]
    return samples


def _cell_samples(mode):
    def samples(gen):
        gates = {"lstm": 4, "gru": 3}.get(mode, 1)
        states = 2 if mode == "lstm" else 1

        def sample(name, batch, features, hidden, biases):
            weights = [randn(gen, gates * hidden, features, scale=0.5), randn(gen, gates * hidden, hidden, scale=0.5)]
            weights += [randn(gen, gates * hidden, scale=0.5) for _ in range(2)] if biases else []
            return Sample((randn(gen, batch, features), *(randn(gen, batch, hidden) for _ in range(states)), *weights),
                          {}, name)

        return [sample("(N, I) = (3, 4), H = 3", 3, 4, 3, True), sample("no biases", 2, 3, 2, False),
                sample("(0, I) empty batch", 0, 3, 2, True)]
    return samples


def _layer_call(mode):
    """``torch.lstm``'s arguments from the samples' flat ones: hx (the pair for the LSTM), params."""
    states = 2 if mode == "lstm" else 1

    def call(function):
        def flat(input, *tensors, **options):
            hx = tuple(tensors[:states]) if mode == "lstm" else tensors[0]
            return function(input, hx, list(tensors[states:]), **options)
        return flat
    return call


def _lstm_cell_call(function):
    def flat(input, h, c, *weights):
        return function(input, (h, c), *weights)
    return flat


# -- bad input ----------------------------------------------------------------------------------------


def _lstm_args(x, h0, c0, params, layers=1, bidirectional=False, batch_first=False):
    return (x, (h0, c0), params, True, layers, 0.0, False, bidirectional, batch_first)


def _lstm_params(features=3, hidden=4, layers=1):
    return [p for layer in range(layers) for p in (x32(4 * hidden, features if layer == 0 else hidden),
                                                   x32(4 * hidden, hidden), x32(4 * hidden), x32(4 * hidden))]


_LAYER_ERRORS = (
    ErrorInput("lstm: 2-D input", lambda F, nn: F.lstm(*_lstm_args(x32(5, 3), x32(1, 2, 4), x32(1, 2, 4),
                                                                 _lstm_params())), RuntimeError,
               r"lstm: input must be 3-D, \(T, N, I\) .*got shape \(5, 3\)"),
    ErrorInput("lstm: no time step", lambda F, nn: F.lstm(*_lstm_args(x32(0, 2, 3), x32(1, 2, 4), x32(1, 2, 4),
                                                                    _lstm_params())), RuntimeError,
               r"Expected sequence length to be larger than 0 in RNN"),
    ErrorInput("lstm: params for one layer, two asked for",
               lambda F, nn: F.lstm(*_lstm_args(x32(5, 2, 3), x32(2, 2, 4), x32(2, 2, 4), _lstm_params(), layers=2)),
               RuntimeError, r"lstm: params must hold 8 tensors, 4 for each of 2 layer\(s\) × 1 direction\(s\) "
                             r"\(W_ih, W_hh, b_ih, b_hh\), got 4"),
    ErrorInput("lstm: W_ih of another input size",
               lambda F, nn: F.lstm(*_lstm_args(x32(5, 2, 7), x32(1, 2, 4), x32(1, 2, 4), _lstm_params())),
               RuntimeError, r"lstm: params\[0\] \(W_ih of layer 0\) must have shape \(16, 7\), got \(16, 3\)"),
    ErrorInput("lstm: h0 of another batch", lambda F, nn: F.lstm(*_lstm_args(x32(5, 2, 3), x32(1, 3, 4), x32(1, 3, 4),
                                                                           _lstm_params())), RuntimeError,
               r"lstm: hx\[0\] must have shape \(1, 2, hidden size\) for 1 layer\(s\) × 1 direction\(s\) and 2 "
               r"sequences, got \(1, 3, 4\)"),
    ErrorInput("lstm: hx a tensor, not a pair", lambda F, nn: F.lstm(x32(5, 2, 3), x32(1, 2, 4), _lstm_params(), True,
                                                                   1, 0.0, False, False, False), RuntimeError,
               r"lstm: hx must be a pair \(h0, c0\) of tensors, got Tensor"),
    ErrorInput("lstm: float64 input, float32 weights",
               lambda F, nn: F.lstm(*_lstm_args(x32(5, 2, 3, dtype=torch.float64), x32(1, 2, 4, dtype=torch.float64),
                                                x32(1, 2, 4, dtype=torch.float64), _lstm_params())), RuntimeError,
               r"lstm: params\[0\] has dtype torch.float32 but input has dtype torch.float64"),
    ErrorInput("lstm: integer input", lambda F, nn: F.lstm(*_lstm_args(torch.ones(5, 2, 3, dtype=torch.long),
                                                                     x32(1, 2, 4), x32(1, 2, 4), _lstm_params())),
               RuntimeError, r"lstm: input must be a floating-point tensor, got torch.int64"),
    ErrorInput("lstm: packed batch_sizes that do not add up",
               lambda F, nn: F.lstm(x32(5, 3), torch.tensor([2, 2]), (x32(1, 2, 4), x32(1, 2, 4)), _lstm_params(),
                                    True, 1, 0.0, False, False), RuntimeError,
               r"lstm: batch_sizes must be positive, non-increasing and sum to the 5 rows of data, got \[2, 2\]"),
    ErrorInput("nn.LSTM: input of another size", lambda F, nn: nn.LSTM(3, 4)(x32(5, 2, 7)), RuntimeError,
               r"input.size\(-1\) must be equal to input_size. Expected 3, got 7"),
    ErrorInput("nn.GRU: 4-D input", lambda F, nn: nn.GRU(3, 4)(x32(5, 2, 3, 1)), ValueError,
               r"GRU: Expected input to be 2D or 3D, got 4D"),
)

_CELL_ERRORS = (
    ErrorInput("lstm_cell: 1-D input", lambda F, nn: F.lstm_cell(x32(3), (x32(4), x32(4)), x32(16, 3), x32(16, 4)),
               RuntimeError, r"lstm_cell: input must be a 2-D \(N, I\) floating-point tensor, got shape \(3,\)"),
    ErrorInput("gru_cell: w_hh of another hidden size",
               lambda F, nn: F.gru_cell(x32(2, 3), x32(2, 4), x32(12, 3), x32(12, 5)), RuntimeError,
               r"gru_cell: hx must have shape \(2, 5\), got \(2, 4\)"),
    ErrorInput("rnn_tanh_cell: list hx", lambda F, nn: F.rnn_tanh_cell(x32(2, 3), [x32(2, 4)], x32(4, 3), x32(4, 4)),
               TypeError, r"rnn_tanh_cell: hx must be a torch\.Tensor, got list"),
    ErrorInput("nn.LSTMCell: 3-D input", lambda F, nn: nn.LSTMCell(3, 4)(x32(2, 2, 3)), ValueError,
               r"LSTMCell: Expected input to be 1D or 2D, got 3D instead"),
)


# -- bench sizes and modules ---------------------------------------------------------------------------


def _layer_bench(mode):
    """seq 64, batch 16, hidden 256 (a sequence tagger's size), and two bidirectional layers batch_first."""
    gates = _GATES[mode]

    def bench(device):
        def case(label, steps, batch, features, hidden, layers, directions, batch_first):
            x = bench_randn(device, *((batch, steps) if batch_first else (steps, batch)), features)
            states = [bench_randn(device, layers * directions, batch, hidden)
                      for _ in range(2 if mode == "lstm" else 1)]
            params = [t for layer in range(layers) for _ in range(directions)
                      for t in (bench_randn(device, gates * hidden, features if layer == 0 else directions * hidden),
                                bench_randn(device, gates * hidden, hidden), bench_randn(device, gates * hidden),
                                bench_randn(device, gates * hidden))]
            with torch.no_grad():
                for p in params:
                    p.mul_(hidden ** -0.5)
            options = dict(has_biases=True, num_layers=layers, dropout=0.0, train=True,
                           bidirectional=directions == 2, batch_first=batch_first)
            return label, (x, *states, *params), options
        return [case("T 64, N 16, I 256, H 256", 64, 16, 256, 256, 1, 1, False),
                case("T 64, N 16, I 128, H 128, 2 layers bidirectional, batch_first", 64, 16, 128, 128, 2, 2, True)]
    return bench


def _cell_bench(mode):
    gates = _GATES[mode]

    def bench(device):
        weights = [bench_randn(device, gates * 256, 256), bench_randn(device, gates * 256, 256),
                   bench_randn(device, gates * 256), bench_randn(device, gates * 256)]
        with torch.no_grad():
            for w in weights:
                w.mul_(256 ** -0.5)
        states = [bench_randn(device, 64, 256) for _ in range(2 if mode == "lstm" else 1)]
        return [("N 64, I 256, H 256", (bench_randn(device, 64, 256), *states, *weights), {})]
    return bench


def _sequence(*shapes):
    return lambda gen: tuple(randn(gen, *shape) for shape in shapes)


def _recurrent_modules(name, cls_kwargs_list):
    return tuple(ModuleSample(f"{name}({label}) on {shapes}", _sequence(*shapes), args, kwargs)
                 for label, args, kwargs, shapes in cls_kwargs_list)


_RNN_MODULES = _recurrent_modules("RNN", [
    ("3, 4", (3, 4), {}, [(5, 2, 3), (1, 2, 4)]),
    ("3, 4, num_layers=2, nonlinearity='relu', bidirectional=True, batch_first=True, dropout=0.5", (3, 4),
     dict(num_layers=2, nonlinearity="relu", bidirectional=True, batch_first=True, dropout=0.5), [(2, 5, 3)]),
    ("3, 4, bias=False", (3, 4), dict(bias=False), [(5, 3), (1, 4)]),
])
_LSTM_MODULES = _recurrent_modules("LSTM", [
    ("3, 4", (3, 4), {}, [(5, 2, 3)]),
    ("3, 4, num_layers=2, proj_size=2, bidirectional=True, batch_first=True, dropout=0.5", (3, 4),
     dict(num_layers=2, proj_size=2, bidirectional=True, batch_first=True, dropout=0.5), [(2, 5, 3)]),
    ("3, 4, num_layers=2, dropout=0.5", (3, 4), dict(num_layers=2, dropout=0.5), [(5, 2, 3)]),
    ("3, 4, bias=False", (3, 4), dict(bias=False), [(5, 3)]),
])
_GRU_MODULES = _recurrent_modules("GRU", [
    ("3, 4", (3, 4), {}, [(5, 2, 3), (1, 2, 4)]),
    ("3, 4, num_layers=2, bidirectional=True, batch_first=True, dropout=0.5", (3, 4),
     dict(num_layers=2, bidirectional=True, batch_first=True, dropout=0.5), [(2, 5, 3)]),
    ("3, 4, bias=False", (3, 4), dict(bias=False), [(5, 3), (1, 4)]),
])
_RNN_CELL_MODULES = _recurrent_modules("RNNCell", [
    ("3, 4", (3, 4), {}, [(2, 3), (2, 4)]),
    ("3, 4, bias=False, nonlinearity='relu'", (3, 4), dict(bias=False, nonlinearity="relu"), [(3,)]),
])
_LSTM_CELL_MODULES = _recurrent_modules("LSTMCell", [
    ("3, 4", (3, 4), {}, [(2, 3)]),
    ("3, 4, bias=False", (3, 4), dict(bias=False), [(3,)]),
])
_GRU_CELL_MODULES = _recurrent_modules("GRUCell", [
    ("3, 4", (3, 4), {}, [(2, 3), (2, 4)]),
    ("3, 4, bias=False", (3, 4), dict(bias=False), [(3,), (4,)]),
])


# torch's CPU kernels round the state to float16 or bfloat16 at every step (these compute a step in
# float32): over a sequence the gradients' sums differ by a few roundings of their scale.
_SEQUENCE_TOLERANCES = {torch.bfloat16: Tolerance(atol=5e-2, rtol=3e-2), torch.float16: Tolerance(atol=6e-3, rtol=4e-3)}


def _weights_from(position):
    """The positions of the weights in the samples' arguments (the parameters a model keeps anyway),
    every layer's and direction's: at most 2 × 2 × 5 of them."""
    return tuple(range(position, position + 20))


OP_INFOS = (
    OpInfo("rnn_tanh", torch.rnn_tanh, _layer_samples("rnn_tanh"), _layers_oracle("rnn_tanh"), _layer_bench("rnn_tanh"),
           modules={torch.nn.RNN: _RNN_MODULES}, call=_layer_call("rnn_tanh"), tolerances=_SEQUENCE_TOLERANCES,
           parameters=_weights_from(2)),
    OpInfo("rnn_relu", torch.rnn_relu, _layer_samples("rnn_relu"), _layers_oracle("rnn_relu"), _layer_bench("rnn_relu"),
           call=_layer_call("rnn_relu"), tolerances=_SEQUENCE_TOLERANCES, parameters=_weights_from(2)),
    OpInfo("lstm", torch.lstm, _layer_samples("lstm"), _layers_oracle("lstm"), _layer_bench("lstm"),
           errors=_LAYER_ERRORS, modules={torch.nn.LSTM: _LSTM_MODULES}, call=_layer_call("lstm"),
           tolerances=_SEQUENCE_TOLERANCES, parameters=_weights_from(3)),
    OpInfo("gru", torch.gru, _layer_samples("gru"), _layers_oracle("gru"), _layer_bench("gru"),
           modules={torch.nn.GRU: _GRU_MODULES}, call=_layer_call("gru"), tolerances=_SEQUENCE_TOLERANCES,
           parameters=_weights_from(2)),
    OpInfo("rnn_tanh_cell", torch.rnn_tanh_cell, _cell_samples("rnn_tanh"), _cell_oracle("rnn_tanh"),
           _cell_bench("rnn_tanh"), modules={torch.nn.RNNCell: _RNN_CELL_MODULES}, parameters=_weights_from(2)),
    OpInfo("rnn_relu_cell", torch.rnn_relu_cell, _cell_samples("rnn_relu"), _cell_oracle("rnn_relu"),
           _cell_bench("rnn_relu"), parameters=_weights_from(2)),
    OpInfo("lstm_cell", torch.lstm_cell, _cell_samples("lstm"), _cell_oracle("lstm"), _cell_bench("lstm"),
           errors=_CELL_ERRORS, modules={torch.nn.LSTMCell: _LSTM_CELL_MODULES}, call=_lstm_cell_call,
           parameters=_weights_from(3)),
    OpInfo("gru_cell", torch.gru_cell, _cell_samples("gru"), _cell_oracle("gru"), _cell_bench("gru"),
           modules={torch.nn.GRUCell: _GRU_CELL_MODULES}, parameters=_weights_from(2)),
)
