"""Hypernetwork heads: a context vector h(x) in, the parameters of one flow step out.

Pyro's :class:`~pyro.nn.DenseNN` plays this role for its conditional flows, but it needs at least one hidden layer
and calls ``.item()`` in its constructor (so it cannot be built under ``torch.device("meta")``). The amortized flows of
the papers (Rezende & Mohamed 2015; van den Berg et al. 2018) map the encoder's last hidden layer *linearly* to the
flow parameters, which is ``ParamHead(context_dim, param_dims)`` with no hidden layer.
"""
from typing import Sequence, Tuple, Union

import torch
from torch import nn


class ParamHead(nn.Module):
    r"""
    A dense network from a context :math:`h\in\mathbb{R}^C` to a tuple of parameter vectors of sizes ``param_dims``.

    With ``hidden_dims=()`` (the default) it is one linear layer, the amortization used in the flow papers. The output
    keeps the context's batch shape: a context of shape ``(..., C)`` gives parameters of shapes ``(..., p)`` for ``p``
    in ``param_dims``. If ``param_dims`` has a single entry the tensor itself is returned (the convention of
    :class:`~pyro.nn.DenseNN`, which :class:`~pyro.distributions.transforms.ConditionalHouseholder` relies on).

    :param context_dim: dimension :math:`C` of the context.
    :type context_dim: int
    :param param_dims: sizes of the parameter vectors to emit.
    :type param_dims: list[int]
    :param hidden_dims: sizes of the hidden layers (none by default).
    :type hidden_dims: list[int]
    :param nonlinearity: activation between hidden layers.
    :type nonlinearity: torch.nn.Module
    """

    def __init__(
        self,
        context_dim: int,
        param_dims: Sequence[int],
        hidden_dims: Sequence[int] = (),
        nonlinearity: nn.Module = None,
    ):
        super().__init__()
        self.context_dim = int(context_dim)
        self.param_dims = [int(p) for p in param_dims]
        self.hidden_dims = [int(h) for h in (hidden_dims or ())]
        sizes = [self.context_dim] + self.hidden_dims + [sum(self.param_dims)]
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            if i > 0:
                layers.append(nonlinearity if nonlinearity is not None else nn.ReLU())
            layers.append(nn.Linear(a, b))
        self.net = nn.Sequential(*layers)

    def forward(self, context: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, ...]]:
        out = self.net(context)
        if len(self.param_dims) == 1:
            return out
        return tuple(torch.split(out, self.param_dims, dim=-1))
