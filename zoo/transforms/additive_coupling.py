from typing import Optional, Sequence

import torch
import torch.nn as nn

from zoo.transforms._base import FlowTransform

PARTITIONS = ("alternate", "half")


def partition_indices(input_dim: int, partition: str = "alternate", parity: int = 0):
    """The index sets ``(I_1, I_2)`` of a coupling layer on vectors of size ``input_dim``: ``I_1`` is passed through
    and conditions the update of ``I_2``. ``"alternate"``: even indices vs odd indices; ``"half"``: the first
    ``ceil(D/2)`` vs the rest. ``parity=1`` swaps the roles (NICE alternates them from layer to layer)."""
    if partition not in PARTITIONS:
        raise ValueError(f"partition must be one of {PARTITIONS}, got {partition!r}")
    if input_dim < 2:
        raise ValueError(f"a coupling layer needs input_dim >= 2, got {input_dim}")
    idx = torch.arange(input_dim)
    if partition == "alternate":
        first, second = idx[0::2], idx[1::2]
    else:
        first, second = idx[: (input_dim + 1) // 2], idx[(input_dim + 1) // 2:]
    if parity % 2:
        first, second = second, first
    return first, second


def mlp(in_dim: int, hidden_dims: Sequence[int], out_dim: int, activation=nn.ReLU) -> nn.Sequential:
    """A ReLU MLP ``in_dim -> hidden_dims -> out_dim`` (NICE's coupling function m)."""
    layers, d = [], in_dim
    for h in hidden_dims:
        layers += [nn.Linear(d, h), activation()]
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class AdditiveCoupling(FlowTransform):
    r"""
    The additive coupling layer of NICE (Dinh, Krueger & Bengio, 2015) on vectors :math:`\mathbf{x}\in\mathbb{R}^D`,
    split by a partition :math:`(I_1, I_2)` of the indices,

        :math:`\mathbf{y}_{I_1} = \mathbf{x}_{I_1},\qquad
        \mathbf{y}_{I_2} = \mathbf{x}_{I_2} + m(\mathbf{x}_{I_1})`,

    with inverse :math:`\mathbf{x}_{I_2} = \mathbf{y}_{I_2} - m(\mathbf{y}_{I_1})` and log-determinant

        :math:`\log|\det J| = 0`

    (the Jacobian is triangular with unit diagonal). :math:`m` is any network; by default a ReLU MLP (NICE used 5
    hidden layers of 1000 units on MNIST). Stack layers with alternating ``parity`` so that every coordinate is updated,
    and finish with :class:`~zoo.transforms.DiagonalScaling` (NICE's only volume change).

    :param input_dim: D.
    :param hidden_dims: hidden sizes of the default MLP m.
    :param partition: ``"alternate"`` (even vs odd indices, as in NICE) or ``"half"`` (first vs second half).
    :param parity: 0 keeps ``I_1`` as the partition's first set, 1 swaps the two sets.
    :param coupling: a module mapping ``(..., |I_1|) -> (..., |I_2|)`` to use instead of the default MLP.

    References:

    [1] Laurent Dinh, David Krueger, Yoshua Bengio. NICE: Non-linear Independent Components Estimation.
    ICLR 2015 workshop. [arXiv:1410.8516]
    """

    def __init__(self, input_dim: int, hidden_dims: Sequence[int] = (1000,) * 5, *, partition: str = "alternate",
                 parity: int = 0, coupling: Optional[nn.Module] = None):
        super().__init__()
        first, second = partition_indices(input_dim, partition, parity)
        self.input_dim, self.partition, self.parity = int(input_dim), partition, int(parity)
        self.register_buffer("idx1", first, persistent=False)
        self.register_buffer("idx2", second, persistent=False)
        # y = cat(y_1, y_2)[..., inv_perm]
        self.register_buffer("inv_perm", torch.argsort(torch.cat([first, second])), persistent=False)
        self.coupling = coupling if coupling is not None else mlp(len(first), hidden_dims, len(second))

    def _shift(self, x1):
        return self.coupling(x1)

    def _call(self, x):
        x1, x2 = x.index_select(-1, self.idx1), x.index_select(-1, self.idx2)
        return torch.cat([x1, x2 + self._shift(x1)], dim=-1).index_select(-1, self.inv_perm)

    def _inverse(self, y):
        y1, y2 = y.index_select(-1, self.idx1), y.index_select(-1, self.idx2)
        return torch.cat([y1, y2 - self._shift(y1)], dim=-1).index_select(-1, self.inv_perm)

    def log_abs_det_jacobian(self, x, y):
        return x.new_zeros(x.shape[:-1])
