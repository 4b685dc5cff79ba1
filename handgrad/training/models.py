"""The seed's three networks, and a small CNN and a small vision transformer past them, each buildable from handgrad layers
(``impl="hand"``) or from ``torch.nn`` layers (``impl="torch"``): same structure, same parameter names,
same initialisation under the same seed, so every experiment runs both ways and their state dicts are
interchangeable.
"""

import math

import torch

import handgrad.functional
import handgrad.nn

IMPLS = {"hand": handgrad.nn, "torch": torch.nn}
SIZES = (784, 512, 512, 10)


def _layers(impl):
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {sorted(IMPLS)}, got {impl!r}")
    return IMPLS[impl]


def _stack(nn, activation, bias=True, dropout=0.0):
    """784-512-512-10: Linear layers, each hidden one followed by the activation and, when
    dropout > 0, a Dropout (with dropout = 0 the module names stay the seed's)."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(nn.Linear(n_in, n_out, bias=bias))
        if activation is not None and i < len(SIZES) - 2:
            layers += [activation()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
    return nn.Sequential(*layers)


def _seed_init(module):
    """The seed's "zero-mean Xavier" init: W ~ N(0, 1/fan_in), biases zero."""
    for layer in module.modules():
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.normal_(layer.weight, 0.0, math.sqrt(1.0 / layer.in_features))
            if layer.bias is not None:
                torch.nn.init.zeros_(layer.bias)


class _Network(torch.nn.Module):
    """What the networks share: forward, ``_head(_features(x))``, and ``loss``, the training loss in
    one call."""

    def forward(self, x):
        return self._head()(self._features(x))

    def loss(self, x, target, loss_fn):
        """``loss_fn(self(x), target)``. Built from handgrad layers with a handgrad
        ``CrossEntropyLoss``, the network's last stack of Linear layers and the loss run as one
        Function (``handgrad.nn.Sequential.loss``); hooks on this network fall back to calling it."""
        head = self._head()
        if isinstance(head, handgrad.nn.Sequential) and not handgrad.nn._has_hooks(self):
            return head.loss(self._features(x), target, loss_fn)
        return loss_fn(self(x), target)

    def _head(self):
        """The Sequential whose output is the network's: the last thing forward calls."""
        raise NotImplementedError

    def _features(self, x):
        """What forward gives ``_head``."""
        raise NotImplementedError


class QuickstartNetwork(_Network):
    """The PyTorch quickstart's network: Flatten, then 784-512-512-10 with ReLU and biases.

    Module names are the seed's (``flatten``, ``linear_relu_stack``); PyTorch's default init.

    Args:
        impl: ``"hand"`` (handgrad layers) or ``"torch"`` (torch.nn layers)
        dropout: if > 0, a Dropout of this probability follows each ReLU (not in the seed)

    Shape:
        - Input: (N, 1, 28, 28) or (N, 784)
        - Output: (N, 10) logits
    """

    def __init__(self, impl="hand", dropout=0.0):
        super().__init__()
        nn = _layers(impl)
        self.flatten = torch.nn.Flatten()
        self.linear_relu_stack = _stack(nn, nn.ReLU, dropout=dropout)

    def _head(self):
        return self.linear_relu_stack

    def _features(self, x):
        return self.flatten(x)


class BasicNetwork(_Network):
    """The seed's ``MyBasicNetwork``: l³ = x W¹ W² W³, three linear layers, no bias, no activation.

    Weights ~ N(0, 1/fan_in) as in the seed.

    Shape:
        - Input: (N, 1, 28, 28) or (N, 784)
        - Output: (N, 10) logits
    """

    def __init__(self, impl="hand"):
        super().__init__()
        nn = _layers(impl)
        self.flatten = torch.nn.Flatten()
        self.layers = _stack(nn, activation=None, bias=False)
        _seed_init(self)

    def _head(self):
        return self.layers

    def _features(self, x):
        return self.flatten(x)


class BetterNetwork(_Network):
    """The seed's ``MyBetterNetwork``: lⁱ = φ(lⁱ⁻¹ Wⁱ + bⁱ) with φ = sigmoid, no φ on the logits.

    Weights ~ N(0, 1/fan_in), biases zero, as in the seed.

    Args:
        impl: ``"hand"`` (handgrad layers) or ``"torch"`` (torch.nn layers)
        dropout: if > 0, a Dropout of this probability follows each sigmoid (not in the seed)

    Shape:
        - Input: (N, 1, 28, 28) or (N, 784)
        - Output: (N, 10) logits
    """

    def __init__(self, impl="hand", dropout=0.0):
        super().__init__()
        nn = _layers(impl)
        self.flatten = torch.nn.Flatten()
        self.layers = _stack(nn, nn.Sigmoid, dropout=dropout)
        _seed_init(self)

    def _head(self):
        return self.layers

    def _features(self, x):
        return self.flatten(x)


class CNN(_Network):
    """Past the seed: a small convolutional network with batch norm, every layer hand-derived.

    Two blocks of 3×3 convolution (no bias: the batch norm's β is one), batch norm, ReLU and 2×2
    max pooling take the image from 1×28×28 to 32×14×14 and 64×7×7; then a 3136-128-10 classifier
    with ReLU and, when dropout > 0, a Dropout before its last layer. PyTorch's default init.

    Args:
        impl: ``"hand"`` (handgrad layers) or ``"torch"`` (torch.nn layers)
        dropout: probability of the Dropout before the last Linear layer (0: none)

    Shape:
        - Input: (N, 1, 28, 28)
        - Output: (N, 10) logits
    """

    CHANNELS = (32, 64)
    HIDDEN = 128

    def __init__(self, impl="hand", dropout=0.0):
        super().__init__()
        nn = _layers(impl)
        c1, c2 = self.CHANNELS
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.flatten = torch.nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(c2 * 7 * 7, self.HIDDEN), nn.ReLU(),
            *([nn.Dropout(dropout)] if dropout > 0 else []),
            nn.Linear(self.HIDDEN, 10),
        )

    def _head(self):
        return self.classifier

    def _features(self, x):
        if x.dim() != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"the cnn network takes images of shape (N, 1, 28, 28), got {tuple(x.shape)}")
        return self.flatten(self.features(x))


class ViT(_Network):
    """Past the CNN: a small vision transformer, every layer hand-derived.

    A convolutional stem (the hybrid of the ViT paper, §3.1, and "Early convolutions help transformers
    see better", Xiao et al. 2021: a 3×3 convolution to 16 channels, batch norm, ReLU) and then the
    28×28 map cut into 7×7 = 49 patches of 4×4 pixels, each projected to a token of width 64 (a 4×4
    convolution of stride 4); a learned class token goes in front (50 tokens) and a learned position
    embedding is added to each. Then 4 pre-norm encoder blocks (torch.nn's
    ``TransformerEncoderLayer`` with ``norm_first``): x + attention(LN(x)) with 4 heads of 16, then
    x + W₂ GELU(W₁ LN(x)) with an MLP of width 128; a final LayerNorm, and the class token's row into a
    64-10 classifier (sizes chosen so that an epoch takes about two minutes on a 2-core CPU). torchvision's ViT initialisation: position embedding N(0, 0.02²), class token 0,
    PyTorch's defaults elsewhere.

    Args:
        impl: ``"hand"`` (handgrad layers, the residual sums and the position embedding
            ``handgrad.functional.add``) or ``"torch"`` (torch.nn layers and ``+``)
        dropout: the blocks' dropout (after attention, in and after the MLP), in [0, 1)

    Shape:
        - Input: (N, 1, 28, 28)
        - Output: (N, 10) logits
    """

    STEM, PATCH, WIDTH, HEADS, MLP, DEPTH = 16, 4, 64, 4, 128, 4

    def __init__(self, impl="hand", dropout=0.0):
        super().__init__()
        nn = _layers(impl)
        self._add = handgrad.functional.add if impl == "hand" else torch.add
        tokens = (28 // self.PATCH) ** 2 + 1
        self.patches = nn.Sequential(nn.Conv2d(1, self.STEM, 3, padding=1), nn.BatchNorm2d(self.STEM), nn.ReLU(),
                                     nn.Conv2d(self.STEM, self.WIDTH, self.PATCH, stride=self.PATCH))
        self.class_token = torch.nn.Parameter(torch.zeros(1, 1, self.WIDTH))
        self.position = torch.nn.Parameter(torch.empty(1, tokens, self.WIDTH).normal_(std=0.02))
        block = nn.TransformerEncoderLayer(self.WIDTH, self.HEADS, self.MLP, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(block, self.DEPTH, norm=nn.LayerNorm(self.WIDTH),
                                             enable_nested_tensor=False)
        self.classifier = nn.Sequential(nn.Linear(self.WIDTH, 10))

    def _head(self):
        return self.classifier

    def _features(self, x):
        if x.dim() != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"the vit network takes images of shape (N, 1, 28, 28), got {tuple(x.shape)}")
        tokens = self.patches(x).flatten(2).transpose(1, 2)                      # (N, 49, W)
        tokens = torch.cat([self.class_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        return self.encoder(self._add(tokens, self.position))[:, 0]              # the class token's row


NETWORKS = {"quickstart": QuickstartNetwork, "basic": BasicNetwork, "better": BetterNetwork, "cnn": CNN, "vit": ViT}


def build(network, impl="hand", dropout=0.0):
    """One of the seed's networks by name, from handgrad (``"hand"``) or torch.nn (``"torch"``) layers."""
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {sorted(NETWORKS)}, got {network!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if dropout and network == "basic":
        raise ValueError("the basic network has no hidden activations to put dropout after; use dropout=0")
    return NETWORKS[network](impl) if network == "basic" else NETWORKS[network](impl, dropout)


def seed_parameters(model):
    """The model's weights as the seed's NumPy arrays: W¹, b¹, ... with W of shape (in, out)."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    params = {}
    for i, layer in enumerate(linears, start=1):
        params[f"W{i}"] = layer.weight.detach().double().cpu().numpy().T.copy()
        if layer.bias is not None:
            params[f"b{i}"] = layer.bias.detach().double().cpu().numpy().reshape(1, -1).copy()
    return params
