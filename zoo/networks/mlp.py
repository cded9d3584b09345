"""Multi-layer perceptrons shared by encoders, decoders and hypernetworks."""
from typing import Sequence

import torch
from torch import nn

from zoo.errors import ConfigError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "softplus": nn.Softplus, "elu": nn.ELU, "gelu": nn.GELU}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; choose one of: {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]()


class MLP(nn.Sequential):
    """x -> Linear -> act -> ... -> Linear; ``hidden=()`` gives a single affine map.

    With ``out_features=None`` the network ends after the last hidden activation (an encoder body) and
    :attr:`out_features` is the last hidden width (or ``in_features`` when there is no hidden layer: the identity).
    Works on any number of leading batch dimensions.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], out_features=None, act: str = "relu"):
        layers, width = [], in_features
        for h in hidden:
            layers += [nn.Linear(width, h), activation(act)]
            width = h
        if out_features is not None:
            layers.append(nn.Linear(width, out_features))
            width = out_features
        super().__init__(*layers)
        self.in_features, self.out_features = in_features, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) if len(self) else x
