"""What an output's autograd graph says about how its gradients will be computed: ``audit``.

Every node between an output and the leaves is one of three things:

- **hand-derived**: a node of a handgrad Function (``node._forward_cls``), whose backward is the
  derivation written in ``handgrad.ops``;
- **movement**: a built-in node that only moves, reshapes, selects, concatenates or casts values
  (``ViewBackward0``, ``CatBackward0``, ...): its backward puts g back where the value came from and
  computes nothing (``MOVEMENT``);
- **built-in computing**: any other node (``AddBackward0``, ``ReluBackward0``, a Function that is
  not handgrad's): a gradient PyTorch derives, not handgrad.

A model runs hand-derived when its graph holds no node of the third kind: ``audit(loss).complete``.
"""

import collections
import dataclasses
import re

import torch

# Autograd nodes that only move, reshape, select or cast values. ``CopySlices`` is the node an in-place
# op on a view leaves on its base: it routes g to the view's region, the op's own node inside it;
# ``CopyBackwards`` is ``copy_``'s (``x[i] = y`` writes y into a view of x): g goes to y, zeros to x;
# ``IndexPutBackward`` is ``x[index] = y``'s (torchvision's MultiScaleRoIAlign writes each level's rows
# so): g at the rows written goes to y, the rest to x (all of g to x where the values were added).
# ``PackPaddedSequence`` lays padded sequences out as a packed batch's rows (and ``IndexSelect`` sorts
# them by length), as ``torch.nn.utils.rnn``'s packing does: their backward puts g back in place.
MOVEMENT = re.compile(
    r"(View|UnsafeView|Reshape|ReshapeAlias|Unsqueeze|Squeeze|Expand|Permute|Transpose|T|Clone|ToCopy|"
    r"Select|Slice|Alias|AsStrided|Unbind|Split|SplitWithSizes|Narrow|Detach|Flatten|Unflatten|Cat|Stack|"
    r"ConstantPadNd|Roll|Flip|Index|IndexSelect|IndexPut|PackPaddedSequence|Repeat|Unfold|Diagonal|Lift|LiftFresh|"
    r"Contiguous)Backward\d*|CopySlices|CopyBackwards"
)


def is_handgrad(function):
    """Whether a ``torch.autograd.Function`` class is one of handgrad's, or one registered with it."""
    from handgrad.ops import _registry
    from handgrad.ops._function import HandFunction

    if issubclass(function, HandFunction):
        return True
    return any(issubclass(function, f) or f.__name__ == function.__name__ and f.__module__ == function.__module__
               for f in _registry.functions().values())


def walk(outputs):
    """Every node between ``outputs`` and the leaves, once each (``AccumulateGrad``, the leaves, left out)."""
    stack = [o.grad_fn for o in outputs if isinstance(o, torch.Tensor) and o.grad_fn is not None]
    seen = set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if type(node).__name__ != "AccumulateGrad":
            yield node
        stack.extend(next_node for next_node, _ in node.next_functions)


def node_kind(node):
    """("hand", Function name), ("movement", node name) or ("built-in", node name) of one node."""
    function = getattr(node, "_forward_cls", None)
    if function is not None:
        return ("hand", function.__name__) if is_handgrad(function) else ("built-in", f"{function.__name__} (a Function not handgrad's)")
    name = type(node).__name__
    return ("movement" if MOVEMENT.fullmatch(name) else "built-in"), name


@dataclasses.dataclass
class Audit:
    """The nodes of an autograd graph by kind, each a ``Counter`` of node names.

    Attributes:
        hand: handgrad Functions (``ConvNd``: 20)
        movement: built-in nodes that move values (``ViewBackward0``: 3)
        builtin: built-in nodes that compute (``AddBackward0``: 8): what is not hand-derived
    """

    hand: collections.Counter
    movement: collections.Counter
    builtin: collections.Counter

    @property
    def complete(self):
        """True when every node that computes is hand-derived (and there is at least one)."""
        return not self.builtin and bool(self.hand)

    def as_dict(self):
        return {"complete": self.complete, "hand": dict(self.hand), "movement": dict(self.movement),
                "builtin": dict(self.builtin)}

    def summary(self):
        """One line: whether every gradient is hand-derived, and the counts."""
        head = "every gradient hand-derived" if self.complete else "NOT every gradient hand-derived"
        left = f"; built-in: {_listed(self.builtin)}" if self.builtin else ""
        return (f"{head}: {sum(self.hand.values())} hand-derived nodes, {sum(self.movement.values())} movement, "
                f"{sum(self.builtin.values())} built-in computing{left}")

    def __str__(self):
        lines = [self.summary()]
        for title, counter in (("hand-derived", self.hand), ("movement", self.movement), ("built-in computing", self.builtin)):
            lines.append(f"  {title}: {_listed(counter) if counter else '(none)'}")
        return "\n".join(lines)

    __repr__ = __str__


def _listed(counter):
    return ", ".join(f"{name} {n}" for name, n in counter.most_common())


def audit(*outputs):
    """An ``Audit`` of the autograd graph behind ``outputs`` (tensors, or tuples/lists of them): which
    of its nodes are handgrad's hand-derived Functions, which are built-in movement and which are
    built-in nodes that compute. ``audit(loss).complete`` proves every gradient of ``loss`` is derived
    by hand, from the graph autograd will run, whatever modules or functions built it."""
    flat = [t for o in outputs for t in (o if isinstance(o, (tuple, list)) else (o,))]
    if not flat or not all(isinstance(t, torch.Tensor) for t in flat):
        raise TypeError(f"audit: expected tensors (or tuples of tensors), got {[type(t).__name__ for t in flat]}")
    if not any(t.grad_fn is not None for t in flat):
        raise ValueError("audit: no output has an autograd graph (grad_fn is None): compute it with grad enabled "
                         "from tensors that require grad")
    kinds = {"hand": collections.Counter(), "movement": collections.Counter(), "built-in": collections.Counter()}
    for node in walk(flat):
        kind, name = node_kind(node)
        kinds[kind][name] += 1
    return Audit(kinds["hand"], kinds["movement"], kinds["built-in"])
