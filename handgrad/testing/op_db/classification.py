"""The classification losses' cases (``handgrad.ops.classification``): NumPy oracles (the seed's
−log softmax(l)_y row by row, generalised), samples, bad inputs, bench sizes."""

import numpy as np
import torch

from handgrad.testing import ErrorInput, ModuleSample, Sample, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, idx, without, x32
from handgrad.testing.op_db.softmax import log_softmax_numpy

# -- NumPy oracles ------------------------------------------------------------------------------------


def _target_distribution(target, n_rows, n_classes, weight, ignore_index, label_smoothing):
    """Per-row target distribution A (M, C) with L_row = −Σ_c A log p, and the 'mean' divisor."""
    w = np.ones(n_classes) if weight is None else np.asarray(weight, dtype=np.float64)
    eps = label_smoothing
    if np.issubdtype(target.dtype, np.floating):
        return ((1 - eps) * target + eps / n_classes) * w, n_rows
    A = np.zeros((n_rows, n_classes))
    divisor = 0.0
    for m, t in enumerate(target):
        if t == ignore_index:
            continue
        A[m, t] += (1 - eps) * w[t]
        A[m] += eps / n_classes * w
        divisor += w[t]
    return A, divisor


def cross_entropy_rows_numpy(logits, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """The seed's −log softmax(l)_y for rows of logits (M, C), generalised: (L, vjp)."""
    A, divisor = _target_distribution(target, *logits.shape, weight, ignore_index, label_smoothing)
    log_p, _ = log_softmax_numpy(logits, 1)
    # Only the classes the target puts weight on count: a −inf logit elsewhere (masking) or NaN
    # logits in an ignored row must not turn 0 · (−inf) into NaN.
    with np.errstate(invalid="ignore"):
        rows = -np.where(A != 0, A * log_p, 0.0).sum(axis=1)
    probabilities = np.issubdtype(target.dtype, np.floating)

    def vjp(g):
        r = _row_scale_numpy(g, reduction, divisor, logits.shape[0])
        dlogits = r * (A.sum(axis=1, keepdims=True) * np.exp(log_p) - A)     # r (s softmax − A)
        if not probabilities:
            return dlogits, None
        w = np.ones(logits.shape[1]) if weight is None else np.asarray(weight, dtype=np.float64)
        return dlogits, -r * (1 - label_smoothing) * w * log_p

    return reduce_numpy(rows, reduction, divisor), vjp


def reduce_numpy(terms, reduction, divisor):
    with np.errstate(invalid="ignore", divide="ignore"):     # a mean over nothing is NaN, as in torch
        return terms if reduction == "none" else terms.sum() if reduction == "sum" else terms.sum() / divisor


def _row_scale_numpy(g, reduction, divisor, n_rows):
    """r (M, 1) from g: g_row, g, or g / D (0 when D = 0: no row counts)."""
    g = np.asarray(g, dtype=np.float64)
    if reduction == "none":
        return g.reshape(-1, 1)
    scale = float(g) if reduction == "sum" else (float(g) / divisor if divisor else 0.0)
    return np.full((n_rows, 1), scale)


def legacy_reduction(size_average, reduce, reduction):
    """PyTorch's deprecated spellings: reduce=False is 'none', else size_average=False is 'sum'."""
    if size_average is None and reduce is None:
        return reduction
    return "none" if reduce is False else "sum" if size_average is False else "mean"


def _class_rows_numpy(x, target, reduction, rows_oracle):
    """``rows_oracle(x2, t2)`` on one row per prediction, for input (C), (N, C) or (N, C, d1, ..., dK):
    the class dimension moved last and the rest flattened, then the loss and gradients moved back."""
    class_dim = 0 if x.ndim == 1 else 1
    n_classes = x.shape[class_dim]
    x2 = np.moveaxis(x, class_dim, -1).reshape(-1, n_classes)
    probabilities = np.issubdtype(target.dtype, np.floating)
    t2 = np.moveaxis(target, class_dim, -1).reshape(-1, n_classes) if probabilities else target.reshape(-1)
    loss, rows_vjp = rows_oracle(x2, t2)
    class_free = x.shape[:class_dim] + x.shape[class_dim + 1:]
    if reduction == "none":
        loss = loss.reshape(class_free)

    def unflatten(a):
        return None if a is None else np.moveaxis(a.reshape(class_free + (n_classes,)), -1, class_dim)

    def vjp(g):
        return tuple(unflatten(a) for a in rows_vjp(g.reshape(-1) if g.ndim else g))

    return loss, vjp


def cross_entropy_numpy(x, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                        label_smoothing=0.0):
    reduction = legacy_reduction(size_average, reduce, reduction)
    return _class_rows_numpy(x, target, reduction, lambda x2, t2: cross_entropy_rows_numpy(
        x2, t2, weight, ignore_index, reduction, label_smoothing))


# -- samples, bad inputs, bench sizes ----------------------------------------------------------------


def _cross_entropy_samples(gen):
    def sample(name, shape, reduction, probabilities=False, weight=False, ignore=None, smoothing=0.0, scale=1.0,
               offset=0.0, all_ignored=False, **sample_options):
        x = (randn(gen, *shape, requires_grad=False) * scale + offset).requires_grad_()
        class_dim = 0 if len(shape) == 1 else 1
        n_classes = shape[class_dim]
        kwargs = {"reduction": reduction, "label_smoothing": smoothing}
        if weight:
            kwargs["weight"] = torch.rand(n_classes, generator=gen, dtype=torch.float64) + 0.1
        if probabilities:
            target = torch.softmax(randn(gen, *shape, requires_grad=False), class_dim).requires_grad_()
        else:
            target_shape = shape[:class_dim] + shape[class_dim + 1:]
            target = torch.randint(0, n_classes, target_shape, generator=gen)
            if ignore is not None:
                kwargs["ignore_index"] = ignore
                drop = torch.rand(target_shape, generator=gen) < 0.3
                target = torch.full_like(target, ignore) if all_ignored else target.masked_fill(drop, ignore)
        return Sample((x, target), kwargs, f"{name}, {reduction}", **sample_options)

    forms = {
        "(N, C) indices": dict(shape=(8, 5)),
        "(N, C) indices, weight": dict(shape=(8, 5), weight=True),
        "(N, C) indices, ignore_index": dict(shape=(8, 5), ignore=-100),
        "(N, C) indices, ignore_index=2": dict(shape=(8, 5), ignore=2),
        "(N, C) indices, label_smoothing": dict(shape=(8, 5), smoothing=0.2),
        "(N, C) indices, weight, ignore_index, label_smoothing": dict(shape=(8, 5), weight=True, ignore=-100,
                                                                       smoothing=0.3),
        "(C,) unbatched index": dict(shape=(5,)),
        "(N, C, d1, d2) indices, weight, ignore_index": dict(shape=(2, 4, 3, 2), weight=True, ignore=-100),
        "(N, C) probabilities": dict(shape=(8, 5), probabilities=True),
        "(N, C, d1) probabilities, weight, label_smoothing": dict(shape=(2, 4, 3), probabilities=True, weight=True,
                                                                   smoothing=0.1),
        "(C,) unbatched probabilities": dict(shape=(5,), probabilities=True),
        "(0, C) empty batch": dict(shape=(0, 5)),
        "all targets ignored": dict(shape=(4, 5), ignore=-100, all_ignored=True),
        "logits 1e4 + N(0, 1)": dict(shape=(8, 5), offset=1e4),
        "logits ~ N(0, 1e4)": dict(shape=(8, 5), scale=1e4),
        "logits ~ N(0, 1e-8)": dict(shape=(8, 5), scale=1e-8),
    }
    nan_means = {"(0, C) empty batch", "all targets ignored"}      # a mean over no rows is NaN by definition
    no_half = without(torch.float16)    # losses near 1e4 summed pass 65504
    samples = []
    for name, form in forms.items():
        for reduction in ("mean", "sum", "none"):
            options = {}
            if name in nan_means and reduction == "mean":
                options["gradcheck"] = False
            if name == "logits ~ N(0, 1e4)" and reduction != "none":
                options["dtypes"] = no_half
            samples.append(sample(name, reduction=reduction, **form, **options))
    return samples + _extreme_samples(gen)


def _extreme_samples(gen):
    """Valid extreme input: ignored rows, empty batches, NaN and −inf logits, huge and tiny logits."""
    nan, inf = float("nan"), float("inf")

    def logits(*shape, scale=1.0, offset=0.0, at=None):
        t = torch.randn(shape, generator=gen, dtype=torch.float64) * scale + offset
        for index, value in (at or {}).items():
            t[index] = value
        return t.requires_grad_()

    def probabilities(*shape):
        return torch.softmax(torch.randn(shape, generator=gen, dtype=torch.float64), 1).requires_grad_()

    weight = torch.tensor([0.5, 1.0, 2.0, 1.5, 0.1], dtype=torch.float64)
    forms = {  # name: (logits, target, options)
        "(N, C), one row ignored": (logits(4, 5), idx(1, -100, 3, 0), {}),
        "(N, C), ignore_index=2 on two rows, weight, label_smoothing":
            (logits(4, 5), idx(1, 2, 3, 2), {"ignore_index": 2, "label_smoothing": 0.2, "weight": weight}),
        "(N, C, d1), one sample all ignored": (logits(2, 4, 3), torch.tensor([[-100, -100, -100], [0, 3, 1]]), {}),
        "(0, C) indices, weight, label_smoothing":
            (logits(0, 5), idx(), {"weight": torch.ones(5, dtype=torch.float64), "label_smoothing": 0.1}),
        "(0, C) probabilities": (logits(0, 5), probabilities(0, 5), {}),
        "(0, C, d1) indices": (logits(0, 5, 2), torch.zeros(0, 2, dtype=torch.long), {}),
        "NaN logit": (logits(4, 5, at={(1, 2): nan}), idx(1, 2, 3, 0), {}),
        "NaN logit, label_smoothing": (logits(4, 5, at={(0, 0): nan}), idx(1, 2, 3, 0), {"label_smoothing": 0.1}),
        "NaN logit, probabilities": (logits(4, 5, at={(2, 4): nan}), probabilities(4, 5), {}),
        "NaN logits in an ignored row": (logits(4, 5, at={(1, 2): nan}), idx(1, -100, 3, 0), {}),
        "-inf logit of a non-target class (masking)": (logits(4, 5, at={(0, 3): -inf}), idx(1, 2, 3, 0), {}),
        "logits ~ N(0, 1e-8), probabilities": (logits(8, 5, scale=1e-8), probabilities(8, 5), {}),
    }
    finite = {"(N, C), one row ignored", "(N, C), ignore_index=2 on two rows, weight, label_smoothing",
              "(N, C, d1), one sample all ignored", "logits ~ N(0, 1e-8), probabilities"}
    return [
        Sample((x.detach().clone().requires_grad_(), t.detach().clone().requires_grad_(t.requires_grad)),
               {"reduction": reduction, **options}, f"{name}, {reduction}",
               dtypes=(torch.float64, torch.float32), gradcheck=name in finite)
        for name, (x, t, options) in forms.items()
        for reduction in ("mean", "sum", "none")
    ]


_ERRORS = (
    # -- cross_entropy: target ---------------------------------------------------------------------
    ErrorInput(
        "logits/target batch mismatch", lambda F, nn: F.cross_entropy(x32(3, 5), idx(0, 1, 2, 3)),
        ValueError, r"target of shape \(4,\) does not match input of shape \(3, 5\).*shape \(3,\)"),
    ErrorInput(
        "(N, C, d1) logits, wrong target spatial shape",
        lambda F, nn: F.cross_entropy(x32(2, 5, 3), torch.zeros(2, 4, dtype=torch.long)),
        RuntimeError, r"target of shape \(2, 4\) does not match input of shape \(2, 5, 3\).*shape \(2, 3\)"),
    ErrorInput(
        "probability target of the wrong shape", lambda F, nn: F.cross_entropy(x32(3, 5), torch.rand(3, 4)),
        RuntimeError, r"must have the input's shape \(3, 5\), got \(3, 4\)"),
    ErrorInput(
        "target above the last class", lambda F, nn: F.cross_entropy(x32(3, 5), idx(0, 10, 1)),
        IndexError, r"target 10 is out of bounds.*\[0, 4\] for 5 classes"),
    ErrorInput(
        "negative target other than ignore_index", lambda F, nn: F.cross_entropy(x32(3, 5), idx(0, -3, 1)),
        IndexError, r"target -3 is out of bounds.*ignore_index=-100"),
    ErrorInput(
        "negative target with ignore_index=-1", lambda F, nn: F.cross_entropy(x32(3, 5), idx(-1, -2, 1), ignore_index=-1),
        IndexError, r"target -2 is out of bounds.*ignore_index=-1"),
    ErrorInput(
        "float class indices of shape (N,)", lambda F, nn: F.cross_entropy(x32(3, 5), torch.tensor([0.0, 1.0, 2.0])),
        RuntimeError, r"floating-point target .*input's shape \(3, 5\), got \(3,\).*int64"),
    ErrorInput(
        "int32 target", lambda F, nn: F.cross_entropy(x32(3, 5), torch.tensor([0, 1, 2], dtype=torch.int32)),
        RuntimeError, r"target must have dtype torch\.long .*got torch\.int32"),
    ErrorInput(
        "bool target", lambda F, nn: F.cross_entropy(x32(3, 5), torch.tensor([True, False, True])),
        RuntimeError, r"target must have dtype torch\.long .*got torch\.bool"),
    ErrorInput(
        "list target", lambda F, nn: F.cross_entropy(x32(3, 5), [0, 1, 2]),
        TypeError, r"target must be a torch\.Tensor, got list"),
    ErrorInput(
        "ignore_index with probability targets",
        lambda F, nn: F.cross_entropy(x32(3, 5), torch.rand(3, 5), ignore_index=1),
        RuntimeError, r"ignore_index .*not supported with class-probability targets"),
    # -- cross_entropy: options --------------------------------------------------------------------
    ErrorInput(
        "reduction 'avg'", lambda F, nn: F.cross_entropy(x32(3, 5), idx(0, 1, 2), reduction="avg"),
        ValueError, r"reduction must be one of .*got 'avg'"),
    ErrorInput(
        "label_smoothing 1.5", lambda F, nn: F.cross_entropy(x32(3, 5), idx(0, 1, 2), label_smoothing=1.5),
        RuntimeError, r"label_smoothing must be in \[0, 1\], got 1\.5"),
    ErrorInput(
        "label_smoothing -0.1", lambda F, nn: F.cross_entropy(x32(3, 5), idx(0, 1, 2), label_smoothing=-0.1),
        RuntimeError, r"label_smoothing must be in \[0, 1\], got -0\.1", torch_accepts=True),
    ErrorInput(
        "weight of the wrong length", lambda F, nn: F.cross_entropy(x32(3, 5), idx(0, 1, 2), weight=torch.ones(4)),
        RuntimeError, r"weight must hold one value per class, shape \(5,\), got shape \(4,\)"),
    ErrorInput(
        "2-D weight", lambda F, nn: F.cross_entropy(x32(3, 5), idx(0, 1, 2), weight=torch.ones(1, 5)),
        RuntimeError, r"weight must hold one value per class, shape \(5,\), got shape \(1, 5\)"),
    ErrorInput(
        "float64 weight, float32 logits",
        lambda F, nn: F.cross_entropy(x32(3, 5), idx(0, 1, 2), weight=torch.ones(5, dtype=torch.float64)),
        RuntimeError, r"weight has dtype torch\.float64 but input has dtype torch\.float32"),
    ErrorInput(
        "weight requiring grad",
        lambda F, nn: F.cross_entropy(x32(3, 5), idx(0, 1, 2), weight=torch.ones(5, requires_grad=True)),
        RuntimeError, r"not differentiable with respect to weight"),
    # -- cross_entropy: logits ---------------------------------------------------------------------
    ErrorInput(
        "int64 logits", lambda F, nn: F.cross_entropy(torch.ones(3, 5, dtype=torch.long), idx(0, 1, 2)),
        NotImplementedError, r"input \(logits\) must be floating point, got torch\.int64"),
    ErrorInput(
        "0-d logits", lambda F, nn: F.cross_entropy(x32(), torch.tensor(0)),
        RuntimeError, r"input must be \(C\), \(N, C\) or \(N, C, d1, \.\.\., dK\); got a 0-d tensor"),
    ErrorInput(
        "zero classes", lambda F, nn: F.cross_entropy(x32(3, 0), idx(0, 0, 0)),
        IndexError, r"input of shape \(3, 0\) has no classes"),
    # -- cross_entropy through nn.CrossEntropyLoss -------------------------------------------------
    ErrorInput(
        "nn.CrossEntropyLoss target above the last class",
        lambda F, nn: nn.CrossEntropyLoss()(x32(3, 5), idx(0, 7, 1)),
        IndexError, r"target 7 is out of bounds"),
    ErrorInput(
        "nn.CrossEntropyLoss weight of the wrong length",
        lambda F, nn: nn.CrossEntropyLoss(weight=torch.ones(4))(x32(3, 5), idx(0, 1, 2)),
        RuntimeError, r"weight must hold one value per class, shape \(5,\), got shape \(4,\)"),
    ErrorInput(
        "nn.CrossEntropyLoss reduction 'avg'",
        lambda F, nn: nn.CrossEntropyLoss(reduction="avg")(x32(3, 5), idx(0, 1, 2)),
        ValueError, r"reduction must be one of .*got 'avg'"),
    ErrorInput(
        "nn.CrossEntropyLoss ignore_index with probability targets",
        lambda F, nn: nn.CrossEntropyLoss(ignore_index=0)(x32(3, 5), torch.rand(3, 5)),
        RuntimeError, r"ignore_index .*not supported with class-probability targets"),
    ErrorInput(
        "nn.CrossEntropyLoss label_smoothing 1.5",
        lambda F, nn: nn.CrossEntropyLoss(label_smoothing=1.5)(x32(3, 5), idx(0, 1, 2)),
        RuntimeError, r"label_smoothing must be in \[0, 1\], got 1\.5"),
)


def _module_samples():
    """CrossEntropyLoss with every option, on (N, C) and (N, C, d1, d2) logits, indices and probabilities."""
    def indices(shape, ignore=None):
        def input(gen):
            target = torch.randint(0, shape[1], shape[:1] + shape[2:], generator=gen)
            if ignore is not None:
                target = target.masked_fill(torch.rand(target.shape, generator=gen) < 0.3, ignore)
            return randn(gen, *shape), target
        return input

    def probabilities(gen):
        return randn(gen, 8, 4), torch.softmax(randn(gen, 8, 4, requires_grad=False), 1)

    weight = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64)
    options = {
        "default": ({}, None), "weight": ({"weight": weight}, None), "ignore_index=-100": ({}, -100),
        "ignore_index=2": ({"ignore_index": 2}, 2), "label_smoothing": ({"label_smoothing": 0.2}, None),
        "all options": ({"weight": weight, "ignore_index": 1, "label_smoothing": 0.3}, 1),
    }
    samples = [
        ModuleSample(f"{name}, {reduction}, {shape}", indices(shape, ignore), (), {**kwargs, "reduction": reduction})
        for name, (kwargs, ignore) in options.items() for reduction in ("mean", "sum", "none")
        for shape in ((9, 4), (2, 4, 3, 2))
    ]
    samples += [ModuleSample(f"probabilities, {reduction}", probabilities, (),
                             {"weight": weight, "reduction": reduction, "label_smoothing": 0.1})
                for reduction in ("mean", "sum", "none")]
    return tuple(samples)


def _bench(device):
    return [("(1024, 10) logits", (bench_randn(device, 1024, 10), torch.randint(0, 10, (1024,), device=device)), {})]


def nll_loss_rows_numpy(x, target, weight=None, ignore_index=-100, reduction="mean"):
    """L_row = −Σ_c A_c x_c with A = w_t onehot(t) (0 on ignored rows): the seed's −log p_y, log p given."""
    A, divisor = _target_distribution(target, *x.shape, weight, ignore_index, 0.0)
    with np.errstate(invalid="ignore"):                      # NaN in an ignored row stays out
        rows = -np.where(A != 0, A * x, 0.0).sum(axis=1)
    return reduce_numpy(rows, reduction, divisor), lambda g: (-_row_scale_numpy(g, reduction, divisor, len(x)) * A,
                                                              None)


def nll_loss_numpy(x, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    reduction = legacy_reduction(size_average, reduce, reduction)
    return _class_rows_numpy(x, target, reduction,
                             lambda x2, t2: nll_loss_rows_numpy(x2, t2, weight, ignore_index, reduction))


def _log_probabilities(gen, *shape, scale=1.0):
    """Log-probabilities along dimension 1 (0 for a (C) input), a leaf requiring grad."""
    logits = randn(gen, *shape, requires_grad=False) * scale
    return torch.log_softmax(logits, 0 if len(shape) == 1 else 1).requires_grad_()


def _nll_loss_samples(gen):
    weight = torch.tensor([0.5, 1.0, 2.0, 1.5, 0.1], dtype=torch.float64)

    def targets(*shape, ignore=None, every=False):
        t = torch.randint(0, 5, shape, generator=gen)
        if ignore is not None:
            t = torch.full_like(t, ignore) if every else t.masked_fill(torch.rand(shape, generator=gen) < 0.3, ignore)
        return t

    forms = {  # name: (input, target, options)
        "(N, C)": (_log_probabilities(gen, 8, 5), targets(8), {}),
        "(N, C), weight": (_log_probabilities(gen, 8, 5), targets(8), {"weight": weight}),
        "(N, C), ignore_index=-100": (_log_probabilities(gen, 8, 5), targets(8, ignore=-100), {}),
        "(N, C), ignore_index=2, weight": (_log_probabilities(gen, 8, 5), targets(8, ignore=2),
                                           {"ignore_index": 2, "weight": weight}),
        "(C,) unbatched, target ()": (_log_probabilities(gen, 5), torch.tensor(3), {}),
        "(C,) unbatched, weight": (_log_probabilities(gen, 5), torch.tensor(1), {"weight": weight}),
        "(N, C, d1), weight": (_log_probabilities(gen, 2, 5, 3), targets(2, 3), {"weight": weight}),
        # Not (N, C, d1, d2): torch's nll_loss2d backward refuses the strided check's non-contiguous
        # input ("grad_input must be contiguous"); the module samples run that shape.
        "(N, C, d1, d2, d3), weight, ignore_index": (_log_probabilities(gen, 2, 5, 3, 2, 2),
                                                     targets(2, 3, 2, 2, ignore=-100), {"weight": weight}),
        "(N, C), uint8 target": (_log_probabilities(gen, 6, 5), targets(6).to(torch.uint8), {}),
        "(N, C), scores, not log-probabilities": (randn(gen, 6, 5, scale=3.0), targets(6), {}),
        "(N, C), log-probabilities down to -1e4": (_log_probabilities(gen, 6, 5, scale=1e4), targets(6), {}),
        "(0, C) empty batch": (_log_probabilities(gen, 0, 5), targets(0), {}),
        "(N, C, 0) no positions": (_log_probabilities(gen, 2, 5, 0), targets(2, 0), {}),
        "all targets ignored": (_log_probabilities(gen, 4, 5), targets(4, ignore=-100, every=True), {}),
    }
    nothing_counts = {"(0, C) empty batch", "(N, C, 0) no positions", "all targets ignored"}   # a mean of nothing: NaN
    samples = [
        Sample((x, t), {**options, "reduction": reduction}, f"{name}, {reduction}",
               gradcheck=not (name in nothing_counts and reduction == "mean"),
               dtypes=without(torch.float16) if "1e4" in name else None)
        for name, (x, t, options) in forms.items() for reduction in ("mean", "sum", "none")
    ]
    # A NaN in a row that is ignored does not reach the loss or the gradient.
    x = _log_probabilities(gen, 4, 5).detach()
    x[1, 2] = float("nan")
    samples += [Sample((x.clone().requires_grad_(), idx(0, -100, 3, 1)), {"reduction": reduction},
                       f"NaN in an ignored row, {reduction}", gradcheck=False) for reduction in ("mean", "sum", "none")]
    return samples


def _nll_loss_module_samples():
    def input(shape, ignore=None):
        def draw(gen):
            target = torch.randint(0, shape[1], shape[:1] + shape[2:], generator=gen)
            if ignore is not None:
                target = target.masked_fill(torch.rand(target.shape, generator=gen) < 0.3, ignore)
            return _log_probabilities(gen, *shape), target
        return draw

    weight = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64)
    options = {"default": ({}, None), "weight": ({"weight": weight}, None), "ignore_index=-100": ({}, -100),
               "weight, ignore_index=1": ({"weight": weight, "ignore_index": 1}, 1)}
    return tuple(
        ModuleSample(f"{name}, {reduction}, {shape}", input(shape, ignore), (), {**kwargs, "reduction": reduction})
        for name, (kwargs, ignore) in options.items() for reduction in ("mean", "sum", "none")
        for shape in ((9, 4), (2, 4, 3, 2))
    )


_NLL_LOSS_ERRORS = (
    ErrorInput("target above the last class", lambda F, nn: F.nll_loss(x32(3, 5), idx(0, 5, 1)),
               IndexError, r"nll_loss: target 5 is out of bounds.*\[0, 4\] for 5 classes"),
    ErrorInput("negative target other than ignore_index", lambda F, nn: F.nll_loss(x32(3, 5), idx(0, -1, 1)),
               IndexError, r"nll_loss: target -1 is out of bounds.*ignore_index=-100"),
    ErrorInput("input/target batch mismatch", lambda F, nn: F.nll_loss(x32(3, 5), idx(0, 1, 2, 3)),
               ValueError, r"nll_loss: target of shape \(4,\) does not match input of shape \(3, 5\).*shape \(3,\)"),
    ErrorInput("(N, C, d1) input, wrong target positions",
               lambda F, nn: F.nll_loss(x32(2, 5, 3), torch.zeros(2, 4, dtype=torch.long)),
               RuntimeError, r"nll_loss: target of shape \(2, 4\) does not match input of shape \(2, 5, 3\)"),
    ErrorInput("(C) input, two targets", lambda F, nn: F.nll_loss(x32(5), idx(1, 2)),
               ValueError, r"nll_loss: target of shape \(2,\) does not match input of shape \(5,\).*shape \(\)"),
    ErrorInput("float target", lambda F, nn: F.nll_loss(x32(3, 5), torch.tensor([0.0, 1.0, 2.0])),
               RuntimeError, r"nll_loss: class-index target must have dtype torch\.long .*got torch\.float32"),
    ErrorInput("int32 target", lambda F, nn: F.nll_loss(x32(3, 5), torch.tensor([0, 1, 2], dtype=torch.int32)),
               RuntimeError, r"nll_loss: class-index target must have dtype torch\.long .*got torch\.int32"),
    ErrorInput("list target", lambda F, nn: F.nll_loss(x32(3, 5), [0, 1, 2]),
               TypeError, r"nll_loss: target must be a torch\.Tensor, got list"),
    ErrorInput("list input", lambda F, nn: F.nll_loss([[0.0, 1.0]], idx(0)),
               TypeError, r"nll_loss: input must be a torch\.Tensor, got list"),
    ErrorInput("0-d input", lambda F, nn: F.nll_loss(x32(), torch.tensor(0)),
               ValueError, r"nll_loss: input must be \(C\), \(N, C\) or \(N, C, d1, \.\.\., dK\); got a 0-d tensor"),
    ErrorInput("zero classes", lambda F, nn: F.nll_loss(x32(3, 0), idx(0, 0, 0)),
               IndexError, r"nll_loss: input of shape \(3, 0\) has no classes"),
    ErrorInput("int64 input", lambda F, nn: F.nll_loss(torch.ones(3, 5, dtype=torch.long), idx(0, 1, 2)),
               NotImplementedError, r"nll_loss: input \(log-probabilities\) must be floating point, got torch\.int64"),
    ErrorInput("reduction 'avg'", lambda F, nn: F.nll_loss(x32(3, 5), idx(0, 1, 2), reduction="avg"),
               ValueError, r"nll_loss: reduction must be one of .*got 'avg'"),
    ErrorInput("weight of the wrong length", lambda F, nn: F.nll_loss(x32(3, 5), idx(0, 1, 2), weight=torch.ones(4)),
               RuntimeError, r"nll_loss: weight must hold one value per class, shape \(5,\), got shape \(4,\)"),
    ErrorInput("float64 weight, float32 input",
               lambda F, nn: F.nll_loss(x32(3, 5), idx(0, 1, 2), weight=torch.ones(5, dtype=torch.float64)),
               RuntimeError, r"nll_loss: weight has dtype torch\.float64 but input has dtype torch\.float32"),
    ErrorInput("weight requiring grad",
               lambda F, nn: F.nll_loss(x32(3, 5), idx(0, 1, 2), weight=torch.ones(5, requires_grad=True)),
               RuntimeError, r"nll_loss: the loss is not differentiable with respect to weight"),
    ErrorInput("nn.NLLLoss target above the last class", lambda F, nn: nn.NLLLoss()(x32(3, 5), idx(0, 7, 1)),
               IndexError, r"nll_loss: target 7 is out of bounds"),
    ErrorInput("nn.NLLLoss weight of the wrong length",
               lambda F, nn: nn.NLLLoss(weight=torch.ones(4))(x32(3, 5), idx(0, 1, 2)),
               RuntimeError, r"nll_loss: weight must hold one value per class, shape \(5,\), got shape \(4,\)"),
    ErrorInput("nn.NLLLoss reduction 'avg'", lambda F, nn: nn.NLLLoss(reduction="avg")(x32(3, 5), idx(0, 1, 2)),
               ValueError, r"nll_loss: reduction must be one of .*got 'avg'"),
)


def _nll_loss_bench(device):
    """The seed's size, where a call's fixed cost is most of it, and a wide one, where it is not."""
    def log_probabilities(n, c):
        x = torch.randn(n, c, device=device).log_softmax(1).requires_grad_()
        return x, torch.randint(0, c, (n,), device=device)
    return [("(1024, 10) log-probabilities", log_probabilities(1024, 10), {}),
            ("(4096, 1000) log-probabilities", log_probabilities(4096, 1000), {})]


OP_INFOS = (
    OpInfo("cross_entropy", torch.nn.functional.cross_entropy, _cross_entropy_samples, cross_entropy_numpy, _bench,
           errors=_ERRORS, modules={torch.nn.CrossEntropyLoss: _module_samples()}),
    OpInfo("nll_loss", torch.nn.functional.nll_loss, _nll_loss_samples, nll_loss_numpy, _nll_loss_bench,
           errors=_NLL_LOSS_ERRORS, modules={torch.nn.NLLLoss: _nll_loss_module_samples()}),
)
