import torch
import torch.nn as nn

from zoo.transforms._base import ImageFlowTransform


class ActNorm(ImageFlowTransform):
    r"""
    Activation normalisation of Glow (Kingma & Dhariwal, 2018): a per-channel affine map of an image
    :math:`\mathbf{x}\in\mathbb{R}^{C\times H\times W}` (given flattened),

        :math:`y_{c,h,w} = s_c\,(x_{c,h,w} + b_c),\qquad s_c = \exp(\log s_c) > 0,`

    with inverse :math:`x_{c,h,w} = y_{c,h,w}/s_c - b_c` and log-determinant

        :math:`\log|\det J| = H\,W\sum_c \log|s_c|`,

    the same for every data point.

    *Data-dependent initialisation.* The first forward call (data -> latent direction) sets
    :math:`b_c = -\mathrm{mean}_c(\mathbf{x})` and :math:`s_c = 1/(\mathrm{std}_c(\mathbf{x}) + \epsilon)`, the moments
    taken over every batch dim and the pixels of that batch, so that the output of that batch has zero mean and unit
    variance per channel; afterwards both are ordinary parameters. The buffer ``initialized`` records that this has
    happened, so a module whose state dict is loaded is not re-initialised. An inverse call (sampling) before any
    forward call uses the identity parameters and does not initialise. :meth:`initialize` does it explicitly.

    Vector data (MAF/NICE-style) use ``shape=D``, i.e. D channels of 1x1 pixels.

    :param shape: the ``(C, H, W)`` shape of the images (int D for vectors).
    :param eps: added to the standard deviation at initialisation.

    References:

    [1] Diederik P. Kingma, Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1 Convolutions. NeurIPS 2018.
    [arXiv:1807.03039]
    """

    def __init__(self, shape, eps: float = 1e-6):
        super().__init__(shape)
        c = self.shape[0]
        self.eps = float(eps)
        self.bias = nn.Parameter(torch.zeros(c))
        self.log_scale = nn.Parameter(torch.zeros(c))
        self.register_buffer("initialized", torch.tensor(False))
        self._init_known = False  # Python mirror of the buffer: no device sync per call once initialised

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._init_known = False  # re-read the loaded buffer on the next call

    @property
    def is_initialized(self) -> bool:
        if not self._init_known:
            self._init_known = bool(self.initialized)
        return self._init_known

    @torch.no_grad()
    def initialize(self, x):
        """Set bias and scale from the batch ``x`` (shape ``(..., C*H*W)``) so that its output is standardised."""
        x4 = self._fold(x).transpose(0, 1).reshape(self.shape[0], -1)
        mean = x4.mean(dim=1)
        std = x4.std(dim=1, unbiased=False)
        self.bias.copy_(-mean)
        self.log_scale.copy_(-torch.log(std + self.eps))
        self.initialized.fill_(True)
        self._init_known = True

    def _params(self, dtype):
        return self.bias.to(dtype).view(-1, 1, 1), self.log_scale.to(dtype).view(-1, 1, 1)

    def _call(self, x):
        if not self.is_initialized:
            self.initialize(x)
        b, log_s = self._params(x.dtype)
        y = (self._fold(x) + b) * torch.exp(log_s)
        return self._unfold(y, x.shape[:-1])

    def _inverse(self, y):
        b, log_s = self._params(y.dtype)
        x = self._fold(y) * torch.exp(-log_s) - b
        return self._unfold(x, y.shape[:-1])

    def log_abs_det_jacobian(self, x, y):
        _, h, w = self.shape
        return (h * w * self.log_scale.sum()).to(x.dtype).expand(x.shape[:-1])
