"""How a loss's terms become L, and so how much each term moves L.

``reduction`` 'none' keeps the terms, 'sum' adds them, 'mean' adds them and divides by D (the number
of terms, or the sum of their weights). So dL/d(term) = r with r = g ('sum'; one per term for
'none') or g / D ('mean'), g = dL/dL the upstream gradient.
"""


def reduce(terms, reduction, denominator):
    """The loss terms (per row, or per element) reduced: summed, summed / D ('mean'), or kept ('none')."""
    if reduction == "none":
        return terms
    return terms.sum() if reduction == "sum" else terms.sum() / denominator


def scale(g, reduction, denominator):
    """r: how much each term of the loss moves L: g ('sum'; for 'none', one per term) or g / D ('mean')."""
    return g / denominator if reduction == "mean" else g
