"""Bytes kept for backward: what a forward leaves in memory for its backward to read.

``Kept`` counts, while active, the unique storages that autograd saves (``torch.autograd.graph.
saved_tensors_hooks``; a view and its base are one storage, counted once), parameters excluded (a model
keeps them anyway). A Function may also hold tensors as attributes of its ``ctx``, where no hook sees
them; ``Kept.count(outputs)`` adds those from the graph behind the outputs, so that nothing kept escapes
the count. ``by_node`` says which node keeps what: where the bytes of a model's step go.

This is the measure of ``verify``'s ``kept_bytes`` check (each Function keeps no more than the built-in),
of the benchmark's bytes kept per training step, and of ``convert(model, memory="lean")``'s savings.
"""

import collections

import torch

from handgrad._audit import walk


def storage_key(t):
    """What identifies a tensor's memory: its storage's address (0 for an empty storage, which holds
    nothing), with its size in bytes."""
    storage = t.untyped_storage()
    return storage.data_ptr(), storage.nbytes()


class Kept:
    """A context manager counting the unique storages saved for backward while it is active.

    Args:
        exclude: tensors (parameters) whose storages are not counted

    Attributes:
        storages: storage address → bytes, of every tensor saved
    """

    def __init__(self, exclude=()):
        self.excluded = {storage_key(t)[0] for t in exclude}
        self.storages = {}
        # The storages counted, held while counting: a node freed before the forward ends (a branch
        # the output does not reach, a detector's discarded candidates) frees what it saved, and a
        # storage allocated later at the same address would be taken for the one already counted.
        self._held = []
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, _unpack)

    def _pack(self, t):
        self.add(t)
        return t

    def add(self, t):
        """Count ``t``'s storage (once, whatever views of it are saved)."""
        address, nbytes = storage_key(t)
        if address and address not in self.excluded and address not in self.storages:
            self.storages[address] = nbytes
            self._held.append(t.untyped_storage())

    def count(self, outputs):
        """Add the tensors that the custom Functions behind ``outputs`` hold as ``ctx`` attributes."""
        for node in walk(outputs):
            for t in _attribute_tensors(node):
                self.add(t)
        return self

    @property
    def bytes(self):
        return sum(self.storages.values())

    @property
    def tensors(self):
        return len(self.storages)

    def __enter__(self):
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._held.clear()
        return self._hooks.__exit__(*exc)


def _unpack(t):
    return t


def _attribute_tensors(node):
    """Tensors a custom Function's ctx holds as attributes (in lists, tuples and dicts too)."""
    if getattr(node, "_forward_cls", None) is None:
        return []
    found, stack = [], list(vars(node).values())
    while stack:
        value = stack.pop()
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
    return found


def saved_by(node):
    """The tensors ``node`` keeps for its backward: a custom Function's saved tensors and ctx
    attributes, or a built-in node's ``_saved_*`` fields."""
    if getattr(node, "_forward_cls", None) is not None:
        try:
            saved = [t for t in node.saved_tensors if isinstance(t, torch.Tensor)]
        except RuntimeError:                               # already freed by a backward
            saved = []
        return saved + _attribute_tensors(node)
    found = []
    for name in dir(node):
        if name.startswith("_saved_"):
            try:
                value = getattr(node, name)
            except RuntimeError:
                continue
            values = value if isinstance(value, (list, tuple)) else (value,)
            found += [t for t in values if isinstance(t, torch.Tensor)]
    return found


def node_name(node):
    """A custom Function's class name, or a built-in node's name."""
    cls = getattr(node, "_forward_cls", None)
    return cls.__name__ if cls is not None else type(node).__name__


def by_node(outputs, exclude=()):
    """Bytes kept for backward by the nodes behind ``outputs``, by node name: each storage counted
    once, for the first node found keeping it (a ``Counter``, largest first with ``most_common``)."""
    excluded = {storage_key(t)[0] for t in exclude}
    seen, counts = set(), collections.Counter()
    for node in walk(outputs):
        for t in saved_by(node):
            address, nbytes = storage_key(t)
            if address and address not in excluded and address not in seen:
                seen.add(address)
                counts[node_name(node)] += nbytes
    return counts
