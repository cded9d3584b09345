from zoo.transforms._base import ImageFlowTransform


class Squeeze(ImageFlowTransform):
    r"""
    The squeezing operation of RealNVP (Dinh, Sohl-Dickstein & Bengio, 2017): every 2x2 block of pixels of a
    :math:`C\times H\times W` image becomes 4 channels of one pixel of a :math:`4C\times H/2\times W/2` image,

        :math:`y_{4c + 2i + j,\;h,\;w} = x_{c,\;2h + i,\;2w + j},\qquad i, j\in\{0, 1\}`,

    i.e. channel ``4c + 2i + j`` holds the sub-image ``x[c, i::2, j::2]`` (the ordering of the reference
    implementation's ``squeeze_2x2``: reshape to ``(C, H/2, 2, W/2, 2)``, move the two 2-axes after C). The inverse
    (depth-to-space) puts every value back,

        :math:`x_{c,\;2h + i,\;2w + j} = y_{4c + 2i + j,\;h,\;w}`,

    and as a permutation of the flattened vector it has

        :math:`\log|\det J| = 0`.

    Inputs and outputs are flattened: ``(..., C*H*W) -> (..., 4C*(H/2)*(W/2))`` (same size); ``out_shape`` gives the
    shape the next transform must be built for.

    :param shape: the ``(C, H, W)`` input shape, H and W even.

    References:

    [1] Laurent Dinh, Jascha Sohl-Dickstein, Samy Bengio. Density estimation using Real NVP. ICLR 2017.
    [arXiv:1605.08803]
    """

    def __init__(self, shape):
        super().__init__(shape)
        c, h, w = self.shape
        if h % 2 or w % 2:
            raise ValueError(f"Squeeze needs even height and width, got shape {self.shape}")
        self.out_shape = (4 * c, h // 2, w // 2)

    def _call(self, x):
        c, h, w = self.shape
        x6 = self._fold(x).reshape(-1, c, h // 2, 2, w // 2, 2)
        y = x6.permute(0, 1, 3, 5, 2, 4)  # (N, C, i, j, H/2, W/2)
        return self._unfold(y, x.shape[:-1])

    def _inverse(self, y):
        c, h, w = self.shape
        y6 = self._fold(y, self.out_shape).reshape(-1, c, 2, 2, h // 2, w // 2)
        x = y6.permute(0, 1, 4, 2, 5, 3)  # (N, C, H/2, i, W/2, j)
        return self._unfold(x, y.shape[:-1])

    def log_abs_det_jacobian(self, x, y):
        return x.new_zeros(x.shape[:-1])
