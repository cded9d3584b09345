import torch
import torch.nn as nn

from zoo.transforms._base import ImageFlowTransform


class InvertibleConv1x1(ImageFlowTransform):
    r"""
    Glow's invertible 1x1 convolution (Kingma & Dhariwal, 2018), a learned linear mixing of the channels applied at
    every pixel of a :math:`C\times H\times W` image,

        :math:`\mathbf{y}_{:,h,w} = \mathbf{W}\,\mathbf{x}_{:,h,w}`,

    with the LU parameterisation

        :math:`\mathbf{W} = \mathbf{P}\,\mathbf{L}\,(\mathbf{U} + \mathrm{diag}(\mathbf{s})),\qquad
        \mathbf{s} = \mathrm{sign}(\mathbf{s})\odot\exp(\log|\mathbf{s}|)`,

    P a fixed permutation, L unit lower triangular, U strictly upper triangular, and the signs of s fixed at
    initialisation, so that the diagonal never reaches zero and W stays invertible. Inverse
    :math:`\mathbf{x}_{:,h,w} = \mathbf{W}^{-1}\mathbf{y}_{:,h,w}` with
    :math:`\mathbf{W}^{-1} = (\mathbf{U} + \mathrm{diag}\,\mathbf{s})^{-1}\mathbf{L}^{-1}\mathbf{P}^T`
    (two triangular solves); log-determinant

        :math:`\log|\det J| = H\,W\,\log|\det\mathbf{W}| = H\,W\sum_c\log|s_c|`,

    the same for every data point. Initialised, as in Glow, from the LU decomposition of a random rotation.
    (Pyro's :class:`~pyro.distributions.transforms.GeneralizedChannelPermute` is the same map without the guard on
    the diagonal of U.)

    With one channel (:math:`C = 1`) the factorisation degenerates to :math:`P = L = 1`, :math:`U = 0`: the map is
    :math:`\mathbf{y}_{:,h,w} = s\,\mathbf{x}_{:,h,w}` with :math:`\log|\det J| = H\,W\log|s|`, and only
    :math:`\log|s|` is a parameter (Glow's code would keep 1 x 1 variables for L and U whose every entry its
    triangular masks remove, so they never get a gradient).

    :param shape: the ``(C, H, W)`` image shape (int D for vectors: a learned invertible linear map).

    References:

    [1] Diederik P. Kingma, Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1 Convolutions. NeurIPS 2018.
    [arXiv:1807.03039]
    """

    def __init__(self, shape):
        super().__init__(shape)
        c = self.shape[0]
        q, _ = torch.linalg.qr(torch.randn(c, c))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("permutation", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(c, c), -1), persistent=False)
        if c > 1:
            self.lower = nn.Parameter(torch.tril(lower, -1))
            self.upper = nn.Parameter(torch.triu(upper, 1))
        else:  # 1 x 1: L = 1 and U = 0 exactly (the masks would remove every entry), so no parameters for them
            self.register_parameter("lower", None)
            self.register_parameter("upper", None)
        self.log_abs_s = nn.Parameter(torch.log(torch.abs(s)))

    def factors(self):
        """``(P, L, U + diag(s))``: the three factors of W (L unit lower, the last upper triangular)."""
        mask = self.lower_mask
        diag = torch.diag(self.sign_s * torch.exp(self.log_abs_s))
        if self.lower is None:  # one channel: W = s
            return self.permutation, torch.ones_like(diag), diag
        eye = torch.eye(mask.shape[0], dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * mask + eye
        upper = self.upper * mask.T + diag
        return self.permutation, lower, upper

    def weight(self):
        """The C x C matrix W."""
        p, lower, upper = self.factors()
        return p @ lower @ upper

    def inverse_weight(self):
        """W^{-1} through two triangular solves."""
        p, lower, upper = self.factors()
        eye = torch.eye(p.shape[0], dtype=p.dtype, device=p.device)
        l_inv = torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, l_inv @ p.T, upper=True)

    def _mix(self, w, x):
        w = w.to(x.dtype)
        return self._unfold(torch.einsum("ij,njhw->nihw", w, self._fold(x)), x.shape[:-1])

    def _call(self, x):
        return self._mix(self.weight(), x)

    def _inverse(self, y):
        return self._mix(self.inverse_weight(), y)

    def log_abs_det_jacobian(self, x, y):
        _, h, w = self.shape
        return (h * w * self.log_abs_s.sum()).to(x.dtype).expand(x.shape[:-1])
