"""The embedding's cases (``handgrad.ops.embedding``): NumPy oracle, samples, bad inputs, bench sizes."""

import numpy as np
import torch

from handgrad.testing import ErrorInput, ModuleSample, Sample, randn
from handgrad.testing.op_db._common import OpInfo, idx


def embedding_numpy(x, W, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, sparse=False):
    """The lookup on a copy of W, renormalised first as PyTorch does: each distinct row looked up
    whose norm exceeds max_norm is scaled by max_norm / (norm + 1e-7)."""
    W = W.copy()
    n_rows, d = W.shape
    flat = x.reshape(-1)
    if max_norm is not None:
        for v in np.unique(flat):
            norm = np.linalg.norm(W[v], ord=norm_type)
            if norm > max_norm:
                W[v] = W[v] * (max_norm / (norm + 1e-7))
    y = W[flat].reshape(x.shape + (d,))
    pad = None if padding_idx is None else padding_idx % n_rows

    def vjp(g):
        g_rows = g.reshape(-1, d)
        if scale_grad_by_freq:
            counts = np.bincount(flat, minlength=n_rows)
            g_rows = g_rows / counts[flat][:, None]
        dW = np.zeros((n_rows, d))
        np.add.at(dW, flat, g_rows)                          # row v: Σ of the g rows with x_i = v
        if pad is not None:
            dW[pad] = 0
        return None, dW

    return y, vjp


def _samples(gen):
    def sample(name, index_shape, n_rows=7, d=4, index_dtype=torch.int64, scale=1.0, include=None, derivative=True,
               builtin_devices=None, **kwargs):
        W = randn(gen, n_rows, d, requires_grad=False) * scale
        x = torch.randint(0, n_rows, index_shape, generator=gen, dtype=index_dtype)
        if include is not None and x.numel():
            x.view(-1)[0] = include % n_rows                 # the index the option is about occurs
        return Sample((x, W.requires_grad_()), kwargs, name, gradcheck=derivative, builtin_devices=builtin_devices)

    # padding_idx and scale_grad_by_freq make the gradient differ from the derivative on purpose
    # (PyTorch documents it), and a max_norm that rescales rewrites W on every call, finite
    # differences included: for those, derivative=False turns gradcheck off; every other check runs.
    return [
        sample("(N,) indices", (6,)),
        sample("(B, T) indices", (3, 4)),
        sample("(B, T, K) indices", (2, 3, 2)),
        sample("0-d index", ()),
        sample("int32 indices", (3, 4), index_dtype=torch.int32),
        sample("(0,) no indices", (0,)),
        sample("(B, 0) no indices", (3, 0)),
        sample("one-row table", (5,), n_rows=1),
        sample("max_norm above every row (no rescaling)", (3, 4), max_norm=100.0),
        sample("padding_idx=0", (3, 4), padding_idx=0, include=0, derivative=False),
        sample("padding_idx=-1", (3, 4), padding_idx=-1, include=-1, derivative=False),
        sample("scale_grad_by_freq", (4, 5), scale_grad_by_freq=True, derivative=False),
        sample("scale_grad_by_freq, padding_idx=2", (4, 5), scale_grad_by_freq=True, padding_idx=2, include=2,
               derivative=False),
        sample("max_norm=1 rescales rows", (3, 4), max_norm=1.0, scale=2.0, derivative=False,
               builtin_devices=_RENORM_BUILTIN),
        sample("max_norm=1, norm_type=1", (3, 4), max_norm=1.0, norm_type=1.0, scale=2.0, derivative=False,
               builtin_devices=_RENORM_BUILTIN),
        sample("max_norm=0.5, norm_type=inf, padding_idx", (3, 4), max_norm=0.5, norm_type=float("inf"),
               padding_idx=1, include=1, derivative=False, builtin_devices=_RENORM_BUILTIN),
        sample("max_norm=1, norm_type=3, duplicate rows", (6, 5), n_rows=3, max_norm=1.0, norm_type=3.0, scale=2.0,
               derivative=False, builtin_devices=_RENORM_BUILTIN),
    ]


# PyTorch's CUDA renorm is wrong for norm_type other than 1 and 2 and for a transposed table (the
# strided check): where a sample rescales, the built-in is trusted on the CPU only, and the NumPy
# oracle checks every device.
_RENORM_BUILTIN = ("cpu",)


def _W(*shape):
    return torch.randn(shape)


_ERRORS = (
    ErrorInput("float indices", lambda F, nn: F.embedding(torch.tensor([1.0, 2.0]), _W(10, 3)), RuntimeError,
               r"input holds the indices .* must be int64 or int32, got torch\.float32; convert with input\.long\(\)"),
    ErrorInput("int16 indices", lambda F, nn: F.embedding(idx(1, 2, dtype=torch.int16), _W(10, 3)), RuntimeError,
               r"must be int64 or int32, got torch\.int16"),
    ErrorInput("bool indices", lambda F, nn: F.embedding(torch.tensor([True, False]), _W(10, 3)), RuntimeError,
               r"must be int64 or int32, got torch\.bool"),
    ErrorInput("index past the last row", lambda F, nn: F.embedding(idx(1, 10, 2), _W(10, 3)), IndexError,
               r"index 10 is out of range for a weight of 10 rows: indices must lie in \[0, 9\]"),
    ErrorInput("negative index", lambda F, nn: F.embedding(idx(1, -1), _W(10, 3)), IndexError,
               r"index -1 is out of range for a weight of 10 rows"),
    ErrorInput("1-D weight", lambda F, nn: F.embedding(idx(1), _W(10)), RuntimeError,
               r"weight must be a 2-D table \(num_embeddings, embedding_dim\), got shape \(10,\)"),
    ErrorInput("3-D weight", lambda F, nn: F.embedding(idx(1), _W(10, 2, 2)), RuntimeError,
               r"weight must be a 2-D table .*got shape \(10, 2, 2\)"),
    ErrorInput("padding_idx past the last row", lambda F, nn: F.embedding(idx(1), _W(10, 3), padding_idx=10),
               AssertionError, r"padding_idx 10 is out of range for a weight of 10 rows .*-10 <= padding_idx < 10"),
    ErrorInput("padding_idx below -V", lambda F, nn: F.embedding(idx(1), _W(10, 3), padding_idx=-11),
               AssertionError, r"padding_idx -11 is out of range"),
    ErrorInput("float padding_idx", lambda F, nn: F.embedding(idx(1), _W(10, 3), padding_idx=1.5), TypeError,
               r"padding_idx must be an int or None, got 1\.5"),
    ErrorInput("sparse=True", lambda F, nn: F.embedding(idx(1), _W(10, 3).requires_grad_(), sparse=True),
               NotImplementedError, r"sparse=True .* does not derive .*pass sparse=False", torch_accepts=True),
    ErrorInput("negative max_norm", lambda F, nn: F.embedding(idx(1), _W(10, 3), max_norm=-1.0), ValueError,
               r"max_norm .* must be >= 0, got -1\.0", torch_accepts=True),
    ErrorInput("max_norm with an int64 table", lambda F, nn: F.embedding(idx(1), torch.ones(10, 3, dtype=torch.long),
                                                                         max_norm=1.0),
               RuntimeError, r"max_norm rescales rows by their norm and needs a floating-point weight, got torch\.int64"),
    ErrorInput("list indices", lambda F, nn: F.embedding([1, 2], _W(10, 3)), TypeError,
               r"input must be a torch\.Tensor, got list"),
    ErrorInput("nn.Embedding index past the last row", lambda F, nn: nn.Embedding(10, 3)(idx(3, 12)), IndexError,
               r"index 12 is out of range for a weight of 10 rows"),
    ErrorInput("nn.Embedding float indices", lambda F, nn: nn.Embedding(10, 3)(torch.tensor([0.0, 1.0])), RuntimeError,
               r"must be int64 or int32, got torch\.float32"),
    ErrorInput("nn.Embedding(sparse=True)", lambda F, nn: nn.Embedding(10, 3, sparse=True)(idx(1, 2)),
               NotImplementedError, r"sparse=True .*torch\.nn\.Embedding\(sparse=True\)", torch_accepts=True),
)


def _module_samples():
    def indices(*shape, n_rows=10):
        return lambda gen: (torch.randint(0, n_rows, shape, generator=gen),)

    configurations = [  # (name, args, kwargs, index shape)
        ("Embedding(10, 3) on (N,)", (10, 3), {}, (6,)),
        ("Embedding(10, 3) on (B, T)", (10, 3), {}, (4, 5)),
        ("Embedding(10, 3) on a 0-d index", (10, 3), {}, ()),
        ("Embedding(10, 3, padding_idx=0)", (10, 3), {"padding_idx": 0}, (4, 5)),
        ("Embedding(10, 3, padding_idx=-1)", (10, 3), {"padding_idx": -1}, (4, 5)),
        ("Embedding(10, 3, max_norm=1.0)", (10, 3), {"max_norm": 1.0}, (4, 5)),
        ("Embedding(10, 3, max_norm=1.5, norm_type=1.0)", (10, 3), {"max_norm": 1.5, "norm_type": 1.0}, (4, 5)),
        ("Embedding(10, 3, scale_grad_by_freq=True)", (10, 3), {"scale_grad_by_freq": True}, (4, 5)),
        ("Embedding(10, 3, padding_idx=2, scale_grad_by_freq=True)", (10, 3),
         {"padding_idx": 2, "scale_grad_by_freq": True}, (4, 5)),
    ]
    return tuple(ModuleSample(name, indices(*shape), args, kwargs) for name, args, kwargs, shape in configurations)


def _bench(device):
    W = torch.randn(10_000, 256, device=device, requires_grad=True)
    x = torch.randint(0, 10_000, (64, 128), device=device)
    return [("vocab 10000 × 256, indices (64, 128)", (x, W), {})]


OP_INFOS = (
    OpInfo("embedding", torch.nn.functional.embedding, _samples, embedding_numpy, _bench, errors=_ERRORS,
           modules={torch.nn.Embedding: _module_samples()}, parameters=(1,)),
)
