import torch
import torch.nn as nn

from zoo.transforms._base import FlowTransform


class DiagonalScaling(FlowTransform):
    r"""
    The diagonal scaling layer that ends a NICE flow (Dinh, Krueger & Bengio, 2015),

        :math:`\mathbf{y} = \mathbf{x}\odot\exp(\mathbf{s})`,

    with inverse :math:`\mathbf{x} = \mathbf{y}\odot\exp(-\mathbf{s})` and log-determinant

        :math:`\log|\det J| = \sum_i s_i`,

    the same for every data point. Parameterising the scale as :math:`\exp(\mathbf{s})` keeps it positive; NICE's
    :math:`S_{ii}` is :math:`\exp(s_i)` (large values mark unimportant directions of the latent space).

    :param input_dim: D.

    References:

    [1] Laurent Dinh, David Krueger, Yoshua Bengio. NICE: Non-linear Independent Components Estimation.
    ICLR 2015 workshop. [arXiv:1410.8516]
    """

    def __init__(self, input_dim: int):
        super().__init__()
        self.input_dim = int(input_dim)
        self.log_scale = nn.Parameter(torch.zeros(self.input_dim))

    def _call(self, x):
        return x * torch.exp(self.log_scale.to(x.dtype))

    def _inverse(self, y):
        return y * torch.exp(-self.log_scale.to(y.dtype))

    def log_abs_det_jacobian(self, x, y):
        return self.log_scale.sum().to(x.dtype).expand(x.shape[:-1])
