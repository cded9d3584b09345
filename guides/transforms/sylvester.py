r"""Sylvester normalizing flows (O-SNF, H-SNF, T-SNF), plain and amortized.

One step maps :math:`\mathbf{z}\in\mathbb{R}^D` to

    :math:`\mathbf{z}' = \mathbf{z} + Q R_1 \tanh(R_2 Q^T \mathbf{z} + \mathbf{b})`

with :math:`Q\in\mathbb{R}^{D\times M}` having orthonormal columns and :math:`R_1, R_2\in\mathbb{R}^{M\times M}` upper
triangular. By Sylvester's determinant identity
:math:`\det(I_D + Q R_1 \mathrm{diag}(h') R_2 Q^T) = \det(I_M + \mathrm{diag}(h') R_2 R_1)`, and :math:`R_2 R_1` is upper
triangular, so

    :math:`\log|\det J| = \sum_{i=1}^M \log\left|1 + (R_1)_{ii} (R_2)_{ii} h'\left((R_2 Q^T\mathbf{z}+\mathbf{b})_i\right)\right|`.

The map is invertible when :math:`(R_1)_{ii}(R_2)_{ii} > -1/\|h'\|_\infty = -1`. As in the paper's code, the diagonals
go through :math:`\tanh`; here they are also scaled by :data:`DIAG_BOUND` :math:`< 1` so that the product stays
strictly above :math:`-1` even when :math:`\tanh` rounds to :math:`\pm 1` for extreme (hyper)network outputs, which
keeps :math:`1 + (R_1)_{ii}(R_2)_{ii}h' \ge 1 - \mathrm{DIAG\_BOUND}^2 > 0`. As in the paper's code, :math:`R_1` and
:math:`R_2` share their strictly upper triangular part (:math:`R_1` takes it from a free matrix :math:`A`,
:math:`R_2` from :math:`A^T`).

Three ways to get :math:`Q` (van den Berg et al. 2018):

- **O-SNF** (:class:`OrthogonalSylvester`): a free :math:`D\times M` matrix (:math:`M\le D`), scaled to unit
  Frobenius norm and made orthonormal by the iteration :math:`Q \leftarrow Q(I + (I - Q^TQ)/2)`
  (:func:`orthogonalize`), run until :math:`\|Q^TQ - I\|_F` is below a tolerance.
- **H-SNF** (:class:`HouseholderSylvester`): :math:`Q = H_H\cdots H_1` with Householder reflections
  :math:`H_k = I - 2\mathbf{v}_k\mathbf{v}_k^T/\|\mathbf{v}_k\|^2` (:func:`householder_product`), :math:`M = D`.
- **T-SNF** (:class:`TriangularSylvester`): :math:`Q` a fixed permutation, the identity or the reversal of the
  coordinates (alternate them between steps), :math:`M = D`.

The map itself is :func:`sylvester_transform`, a function of explicit, batched parameters. Every variant has a
non-amortized front end (a :class:`~pyro.distributions.torch_transform.TransformModule` with ``nn.Parameter`` s) and an
amortized one (a :class:`~pyro.distributions.conditional.ConditionalTransformModule` whose ``condition(context)`` emits
the parameters of every data point from a context vector through a hypernetwork, :class:`~guides.transforms.hypernet.ParamHead`).

There is no closed-form inverse: like Pyro's planar flow, a transform caches its last ``(x, y)`` pair, so a value it
has just produced can be scored (``TransformedDistribution.log_prob``), and any other value raises
``NotImplementedError``. The cache is :class:`zoo.transforms.cache.FreshCache`: the pair is used only while the
parameters (of the module, or of the hypernetwork and the context) and the two tensors are unchanged, so a value
produced before an optimiser step is not inverted with the new parameters, and a forward call always computes.

No tensor is created on a fixed device or with a fixed dtype: everything follows the inputs and the parameters, so the
modules work on any device (``meta`` included) and in any floating dtype.

Reference: Rianne van den Berg, Leonard Hasenclever, Jakub M. Tomczak, Max Welling. Sylvester Normalizing Flows for
Variational Inference. UAI 2018. [arXiv:1803.05649]; code: github.com/riannevdberg/sylvester-flows.
"""
import math
import warnings
from functools import partial
from typing import Optional, Sequence, Tuple

import torch
from torch import nn
from torch.distributions import Transform, constraints

from pyro.distributions.conditional import ConditionalTransformModule
from pyro.distributions.torch_transform import TransformModule

from guides.transforms.hypernet import ParamHead
from zoo.transforms.cache import FreshCache

#: Bound on ``|diag(R1)|`` and ``|diag(R2)|`` (``DIAG_BOUND * tanh``); keeps ``1 + r1_ii r2_ii h' >= 1 - DIAG_BOUND**2``.
DIAG_BOUND = 1.0 - 1e-3

__all__ = [
    "DIAG_BOUND",
    "sylvester_transform",
    "orthogonalize",
    "householder_product",
    "triangular_pair",
    "ConditionedSylvester",
    "OrthogonalSylvester",
    "HouseholderSylvester",
    "TriangularSylvester",
    "ConditionalOrthogonalSylvester",
    "ConditionalHouseholderSylvester",
    "ConditionalTriangularSylvester",
    "sylvester_o",
    "sylvester_h",
    "sylvester_t",
    "conditional_sylvester_o",
    "conditional_sylvester_h",
    "conditional_sylvester_t",
]


# ----------------------------------------------------------------------------------------------------------------------
# The map and its pieces, as functions of explicit batched parameters
# ----------------------------------------------------------------------------------------------------------------------
def _matvec(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Batched, broadcasting ``a @ v`` for ``a`` (..., m, n) and ``v`` (..., n)."""
    return torch.matmul(a, v.unsqueeze(-1)).squeeze(-1)


def sylvester_transform(
    z: torch.Tensor,
    r1: torch.Tensor,
    r2: torch.Tensor,
    b: torch.Tensor,
    q: Optional[torch.Tensor] = None,
    reverse: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""
    One Sylvester step :math:`\mathbf{z}' = \mathbf{z} + Q R_1 \tanh(R_2 Q^T \mathbf{z} + \mathbf{b})` and its
    :math:`\log|\det \partial\mathbf{z}'/\partial\mathbf{z}|`.

    All arguments broadcast against each other in their batch dimensions, so parameters of batch shape ``(B,)`` act on
    ``z`` of shape ``(..., B, D)`` (a particle dimension in front, say).

    :param z: points, shape ``(..., D)``.
    :param r1: upper triangular :math:`R_1`, shape ``(..., M, M)``.
    :param r2: upper triangular :math:`R_2`, shape ``(..., M, M)``.
    :param b: bias, shape ``(..., M)``.
    :param q: :math:`Q` with orthonormal columns, shape ``(..., D, M)``; ``None`` means a permutation (``M = D``): the
        identity, or the reversal of the coordinates if ``reverse``.
    :param reverse: with ``q=None``, use the coordinate reversal as :math:`Q` (T-SNF's alternate steps).
    :return: ``(z', log_abs_det)`` with shapes ``(..., D)`` and ``(...)``.

    The log-determinant formula assumes :math:`Q^TQ = I` and that :math:`R_1, R_2` are upper triangular; both hold for
    the parameters built by :func:`orthogonalize` / :func:`householder_product` and :func:`triangular_pair`.
    """
    if q is None:
        zq = z.flip(-1) if reverse else z
        pre = _matvec(r2, zq) + b
        h = torch.tanh(pre)
        delta = _matvec(r1, h)
        if reverse:
            delta = delta.flip(-1)
    else:
        # A = Q R1 (D x M) and B = R2 Q^T (M x D) once per parameter set, then two mat-vecs per point.
        a = torch.matmul(q, r1)
        bq = torch.matmul(r2, q.transpose(-1, -2))
        pre = _matvec(bq, z) + b
        h = torch.tanh(pre)
        delta = _matvec(a, h)
    y = z + delta
    diag = r1.diagonal(dim1=-2, dim2=-1) * r2.diagonal(dim1=-2, dim2=-1)
    log_abs_det = torch.log1p(diag * (1.0 - h * h)).sum(-1)
    return y, log_abs_det


def triangular_pair(
    full: torch.Tensor, diag1: torch.Tensor, diag2: torch.Tensor, bound: float = DIAG_BOUND
) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""
    :math:`R_1 = \mathrm{triu}(A, 1) + \mathrm{diag}(c\tanh \mathbf{d}_1)`,
    :math:`R_2 = \mathrm{triu}(A^T, 1) + \mathrm{diag}(c\tanh \mathbf{d}_2)` with :math:`c` = ``bound``.

    :param full: :math:`A`, shape ``(..., M, M)``; ``None`` when :math:`M = 1` (no strictly triangular part).
    :param diag1: unconstrained :math:`\mathbf{d}_1`, shape ``(..., M)``.
    :param diag2: unconstrained :math:`\mathbf{d}_2`, shape ``(..., M)``.
    """
    r1 = torch.diag_embed(bound * torch.tanh(diag1))
    r2 = torch.diag_embed(bound * torch.tanh(diag2))
    if full is not None:
        r1 = r1 + torch.triu(full, diagonal=1)
        r2 = r2 + torch.triu(full.transpose(-1, -2), diagonal=1)
    return r1, r2


def orthogonalize(q: torch.Tensor, tol: Optional[float] = None, max_iter: int = 100) -> torch.Tensor:
    r"""
    Make the columns of a batch of :math:`D\times M` matrices (:math:`M\le D`) orthonormal by the iteration of
    van den Berg et al. (2018): scale each matrix to unit Frobenius norm (so its singular values lie in (0, 1]), then
    repeat :math:`Q \leftarrow Q\,(I + (I - Q^TQ)/2)`, which converges quadratically to the orthogonal polar factor.
    Gradients flow through the iterations.

    The loop stops once :math:`\max_{\text{batch}}\|Q^TQ - I\|_F \le` ``tol`` and then applies one more step, which
    squares the error down to rounding level (about ``1e-15`` in float64, ``1e-7`` to ``1e-6`` in float32). The
    default ``tol`` is :math:`\sqrt{\epsilon}` of the dtype (``1.5e-8`` in float64, ``3.5e-4`` in float32): a fixed
    ``1e-6`` as in the paper's code is below float32 rounding for :math:`M \gtrsim 64` and would never be met. A warning
    is issued if ``max_iter`` steps do not get there (rank-deficient input). Each step costs one host synchronisation
    for the check; on the ``meta`` device (no values) one step is taken.

    :param q: matrices, shape ``(..., D, M)``.
    :param tol: tolerance on :math:`\|Q^TQ - I\|_F`, per matrix; ``None`` for :math:`\sqrt{\epsilon}`.
    :param max_iter: maximum number of steps.
    :return: the orthonormalised matrices, shape ``(..., D, M)``.
    """
    d, m = q.shape[-2], q.shape[-1]
    if m > d:
        raise ValueError(f"orthogonalize: need M <= D columns, got a {d} x {m} matrix")
    if tol is None:
        tol = math.sqrt(torch.finfo(q.dtype).eps)
    eye = torch.eye(m, dtype=q.dtype, device=q.device)
    norm = torch.linalg.matrix_norm(q, keepdim=True).clamp_min(torch.finfo(q.dtype).tiny)
    q = q / norm
    if q.device.type == "meta" or q.numel() == 0:
        return torch.matmul(q, 1.5 * eye - 0.5 * torch.matmul(q.transpose(-1, -2), q))
    err = float("nan")
    for _ in range(max_iter):
        qtq = torch.matmul(q.transpose(-1, -2), q)
        err = torch.linalg.matrix_norm(qtq - eye).max().item()
        q = torch.matmul(q, 1.5 * eye - 0.5 * qtq)  # = Q (I + (I - Q^T Q) / 2)
        if err <= tol or not math.isfinite(err):
            break  # the step just taken is the final polishing step
    else:
        warnings.warn(
            f"orthogonalize: not converged after {max_iter} steps (max ||Q^T Q - I||_F = {err:.3g} > tol {tol:.3g})",
            RuntimeWarning,
        )
    return q


def householder_product(v: torch.Tensor) -> torch.Tensor:
    r"""
    :math:`Q = H_H \cdots H_2 H_1` with :math:`H_k = I - 2\mathbf{v}_k\mathbf{v}_k^T/\|\mathbf{v}_k\|^2`, an orthogonal
    :math:`D\times D` matrix (the order of the paper's code).

    :param v: reflection vectors, shape ``(..., H, D)``.
    :return: shape ``(..., D, D)``.
    """
    d = v.shape[-1]
    u = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)
    eye = torch.eye(d, dtype=v.dtype, device=v.device)
    q = eye - 2.0 * u[..., 0, :, None] * u[..., 0, None, :]
    for k in range(1, v.shape[-2]):
        uk = u[..., k, :]
        # H_k Q = Q - 2 u_k (u_k^T Q)
        q = q - 2.0 * uk[..., :, None] * torch.matmul(uk.unsqueeze(-2), q)
    return q


# ----------------------------------------------------------------------------------------------------------------------
# Raw (unconstrained) parameters -> explicit parameters, shared by both front ends
# ----------------------------------------------------------------------------------------------------------------------
_KINDS = ("orthogonal", "householder", "triangular")


def _raw_shapes(kind: str, input_dim: int, m: int, num_householder: int):
    r"""Names and shapes of the raw parameters. Only those that reach the map: with :math:`M = 1` the strictly
    triangular parts of :math:`R_1, R_2` are empty (no ``full``), and with :math:`D = 1` the only orthogonal matrices
    are :math:`\pm 1`, a sign the bias absorbs (:math:`x + QR_1\tanh(R_2Qx + b)` with :math:`Q = -1` is the same map as
    with :math:`Q = 1` and :math:`-b`), so O-SNF and H-SNF take :math:`Q = 1` and have no ``q`` / ``v``. A normalised
    1 x 1 ``q`` or ``v`` would be a constant sign, and a masked 1 x 1 ``full`` would be removed entirely: parameters
    that never get a gradient."""
    shapes = [("full", (m, m))] if m > 1 else []
    shapes += [("diag1", (m,)), ("diag2", (m,)), ("b", (m,))]
    if kind == "orthogonal" and input_dim > 1:
        shapes.append(("q", (input_dim, m)))
    elif kind == "householder" and input_dim > 1:
        shapes.append(("v", (num_householder, input_dim)))
    return shapes


def _explicit_params(kind: str, raw: dict, tol: Optional[float], max_iter: int):
    r1, r2 = triangular_pair(raw.get("full"), raw["diag1"], raw["diag2"])
    if "q" in raw:
        q = orthogonalize(raw["q"], tol=tol, max_iter=max_iter)
    elif "v" in raw:
        q = householder_product(raw["v"])
    else:  # T-SNF, or D = 1: the identity (or the reversal, for T-SNF)
        q = None
    return q, r1, r2, raw["b"]


def _check_dims(kind, input_dim, num_ortho_vecs, num_householder):
    input_dim = int(input_dim)
    if input_dim < 1:
        raise ValueError(f"input_dim must be positive, got {input_dim}")
    if kind == "orthogonal":
        m = input_dim if num_ortho_vecs is None else int(num_ortho_vecs)
        if not 1 <= m <= input_dim:
            raise ValueError(f"O-SNF needs 1 <= num_ortho_vecs <= input_dim = {input_dim}, got {m}")
    else:
        m = input_dim
    h = 0
    if kind == "householder":
        h = int(num_householder)
        if h < 1:
            raise ValueError(f"H-SNF needs num_householder >= 1, got {h}")
    return input_dim, m, h


# ----------------------------------------------------------------------------------------------------------------------
# Transforms
# ----------------------------------------------------------------------------------------------------------------------
class ConditionedSylvester(FreshCache, Transform):
    r"""
    A Sylvester step with given parameters (a callable returning ``(q, r1, r2, b)``, or that tuple), as returned by
    ``condition(context)`` of the conditional Sylvester modules; see :func:`sylvester_transform`.

    The parameters are (re)computed at each forward call; the log-determinant of the last call is cached together
    with its ``(x, y)`` pair (``cache_size=1``), so ``log_abs_det_jacobian(x, y)`` right after ``y = t(x)`` costs
    nothing and ``t.inv(y)`` returns ``x`` -- while the parameters' sources (``sources``: the hypernetwork and the
    context; by default the module's own parameters, or the tensors of a given tuple) and the two tensors are
    unchanged (:class:`~zoo.transforms.cache.FreshCache`).
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, params, reverse: bool = False, sources=None):
        super().__init__(cache_size=1)
        self._params = params
        self.reverse = bool(reverse)
        self._cached_logDetJ = None
        if sources is None and not callable(params):
            sources = tuple(p for p in params if p is not None)
        self._cache_sources = sources

    def _call(self, x):
        """
        :param x: the input into the bijection, shape ``(..., D)``
        :type x: torch.Tensor

        Invokes the bijection x => y and caches :math:`\\log|\\det J|`.
        """
        q, r1, r2, b = self._params() if callable(self._params) else self._params
        y, self._cached_logDetJ = sylvester_transform(x, r1, r2, b, q=q, reverse=self.reverse)
        return y

    def _inverse(self, y):
        """
        There is no closed-form inverse. The value ``y`` produced by the last forward call is inverted from the cache
        (by :class:`~torch.distributions.transforms.Transform` itself, before this method is reached); any other
        value raises ``NotImplementedError``.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no analytic inverse: only the output of its most recent forward call can be "
            "inverted (from the cache); sample from the flow and score those samples, or use an invertible flow"
        )

    def log_abs_det_jacobian(self, x, y):
        """
        :math:`\\log|\\det \\partial y/\\partial x|`, shape ``x.shape[:-1]``; from the cache when ``x`` is the input of
        the last forward call, otherwise recomputed from ``x`` (``y`` is not used).
        """
        x_old, _ = self._cached_x_y
        if x is not x_old or self._cached_logDetJ is None:
            self(x)  # updates the (x, y) cache and the log-determinant
        return self._cached_logDetJ


class _SylvesterModule(ConditionedSylvester, TransformModule):
    """Non-amortized front end: learned ``nn.Parameter`` s, parameters rebuilt at every call."""

    kind = None

    def __init__(
        self,
        input_dim: int,
        num_ortho_vecs: Optional[int] = None,
        num_householder: int = 1,
        reverse: bool = False,
        tol: Optional[float] = None,
        max_iter: int = 100,
    ):
        super().__init__(self._params_fn, reverse=reverse)
        self.input_dim, self.num_ortho_vecs, self.num_householder = _check_dims(
            self.kind, input_dim, num_ortho_vecs, num_householder
        )
        self.tol, self.max_iter = tol, int(max_iter)
        self._names = []
        for name, shape in _raw_shapes(self.kind, self.input_dim, self.num_ortho_vecs, self.num_householder):
            self.register_parameter(name, nn.Parameter(torch.empty(shape)))
            self._names.append(name)
        self.reset_parameters()

    def _params_fn(self):
        return _explicit_params(self.kind, {n: getattr(self, n) for n in self._names}, self.tol, self.max_iter)

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.num_ortho_vecs)
        with torch.no_grad():
            for name in self._names:
                if name in ("q", "v"):
                    getattr(self, name).normal_()
                else:
                    getattr(self, name).uniform_(-stdv, stdv)

    def extra_repr(self):
        return f"input_dim={self.input_dim}, kind={self.kind}, M={self.num_ortho_vecs}" + (
            f", H={self.num_householder}" if self.kind == "householder" else ""
        ) + (f", reverse={self.reverse}" if self.kind == "triangular" else "")


class OrthogonalSylvester(_SylvesterModule):
    r"""
    An orthogonal Sylvester flow step (O-SNF) with learned parameters,

        :math:`\mathbf{y} = \mathbf{x} + Q R_1 \tanh(R_2 Q^T \mathbf{x} + \mathbf{b})`

    where :math:`\mathbf{x}` are the inputs, :math:`\mathbf{y}` the outputs, :math:`Q\in\mathbb{R}^{D\times M}`
    (:math:`M\le D`) has orthonormal columns, obtained from a free matrix by the iterative orthogonalisation
    :math:`Q\leftarrow Q(I + (I - Q^TQ)/2)` (:func:`orthogonalize`), :math:`R_1, R_2\in\mathbb{R}^{M\times M}` are upper
    triangular with diagonals :math:`c\tanh(\cdot)` (:math:`c` = :data:`DIAG_BOUND`), which keeps
    :math:`(R_1)_{ii}(R_2)_{ii} > -1` and the map invertible, and :math:`\mathbf{b}\in\mathbb{R}^M`. The log-determinant
    is :math:`\sum_i \log(1 + (R_1)_{ii}(R_2)_{ii}\tanh'((R_2Q^T\mathbf{x}+\mathbf{b})_i))`. With :math:`M = 1` this is a
    planar flow, :math:`R_1, R_2` are scalars and the free matrix behind their off-diagonal parts is not created (it
    would never get a gradient); with :math:`D = 1`, :math:`Q = 1` (a sign the bias absorbs) and nothing is learned
    for it.

    Together with :class:`~pyro.distributions.TransformedDistribution` this provides a way to create richer
    variational approximations.

    Example usage:

    >>> base_dist = dist.Normal(torch.zeros(10), torch.ones(10)).to_event(1)
    >>> transform = OrthogonalSylvester(10, num_ortho_vecs=4)
    >>> flow_dist = dist.TransformedDistribution(base_dist, [transform])
    >>> z = flow_dist.rsample((5,))
    >>> flow_dist.log_prob(z).shape
    torch.Size([5])

    The inverse has no closed form and raises ``NotImplementedError``, but the transform caches its last forward call,
    so samples drawn through it can be scored.

    :param input_dim: the dimension :math:`D` of the input (and output) variable.
    :type input_dim: int
    :param num_ortho_vecs: the number :math:`M\le D` of orthonormal columns of :math:`Q` (default :math:`D`).
    :type num_ortho_vecs: int
    :param tol: tolerance of the orthogonalisation (see :func:`orthogonalize`; default :math:`\sqrt{\epsilon}`).
    :type tol: float
    :param max_iter: maximum number of orthogonalisation steps.
    :type max_iter: int

    References:

    [1] Rianne van den Berg, Leonard Hasenclever, Jakub M. Tomczak, Max Welling. Sylvester Normalizing Flows for
    Variational Inference. UAI 2018. [arXiv:1803.05649]
    """

    kind = "orthogonal"

    def __init__(self, input_dim, num_ortho_vecs=None, tol=None, max_iter=100):
        super().__init__(input_dim, num_ortho_vecs=num_ortho_vecs, tol=tol, max_iter=max_iter)


class HouseholderSylvester(_SylvesterModule):
    r"""
    A Householder Sylvester flow step (H-SNF) with learned parameters,

        :math:`\mathbf{y} = \mathbf{x} + Q R_1 \tanh(R_2 Q^T \mathbf{x} + \mathbf{b})`

    where :math:`Q = H_H\cdots H_1\in\mathbb{R}^{D\times D}` is a product of :math:`H` Householder reflections
    :math:`H_k = I - 2\mathbf{v}_k\mathbf{v}_k^T/\|\mathbf{v}_k\|^2` (orthogonal by construction),
    :math:`R_1, R_2\in\mathbb{R}^{D\times D}` are upper triangular with diagonals :math:`c\tanh(\cdot)`
    (:math:`c` = :data:`DIAG_BOUND`, so :math:`(R_1)_{ii}(R_2)_{ii} > -1`), and :math:`\mathbf{b}\in\mathbb{R}^D`.
    The log-determinant is :math:`\sum_i \log(1 + (R_1)_{ii}(R_2)_{ii}\tanh'((R_2Q^T\mathbf{x}+\mathbf{b})_i))`.

    Unlike :class:`pyro.distributions.transforms.Sylvester`, the log-determinant matches the map at any parameter
    value and no tensor is created on a fixed device. With :math:`D = 1`, :math:`Q = 1` (the only orthogonal 1 x 1
    matrices are :math:`\pm 1`, a sign the bias absorbs) and no reflection vectors are learned.

    Example usage:

    >>> base_dist = dist.Normal(torch.zeros(10), torch.ones(10)).to_event(1)
    >>> transform = HouseholderSylvester(10, num_householder=4)
    >>> flow_dist = dist.TransformedDistribution(base_dist, [transform])
    >>> flow_dist.log_prob(flow_dist.rsample((5,))).shape
    torch.Size([5])

    The inverse has no closed form and raises ``NotImplementedError``, but the transform caches its last forward call,
    so samples drawn through it can be scored.

    :param input_dim: the dimension :math:`D` of the input (and output) variable.
    :type input_dim: int
    :param num_householder: the number :math:`H` of Householder reflections making :math:`Q`.
    :type num_householder: int

    References:

    [1] Rianne van den Berg, Leonard Hasenclever, Jakub M. Tomczak, Max Welling. Sylvester Normalizing Flows for
    Variational Inference. UAI 2018. [arXiv:1803.05649]
    """

    kind = "householder"

    def __init__(self, input_dim, num_householder=8):
        super().__init__(input_dim, num_householder=num_householder)


class TriangularSylvester(_SylvesterModule):
    r"""
    A triangular Sylvester flow step (T-SNF) with learned parameters,

        :math:`\mathbf{y} = \mathbf{x} + P R_1 \tanh(R_2 P^T \mathbf{x} + \mathbf{b})`

    where :math:`P` is a fixed permutation matrix, the identity (``reverse=False``) or the reversal of the coordinates
    (``reverse=True``); alternate the two between steps, as :func:`guides.transforms.make_flow` does.
    :math:`R_1, R_2\in\mathbb{R}^{D\times D}` are upper triangular with diagonals :math:`c\tanh(\cdot)`
    (:math:`c` = :data:`DIAG_BOUND`, so :math:`(R_1)_{ii}(R_2)_{ii} > -1`) and :math:`\mathbf{b}\in\mathbb{R}^D`.
    The log-determinant is :math:`\sum_i \log(1 + (R_1)_{ii}(R_2)_{ii}\tanh'((R_2P^T\mathbf{x}+\mathbf{b})_i))`.
    With :math:`D = 1`, :math:`R_1, R_2` are scalars and have no off-diagonal source matrix.

    Example usage:

    >>> base_dist = dist.Normal(torch.zeros(10), torch.ones(10)).to_event(1)
    >>> flow_dist = dist.TransformedDistribution(base_dist, [TriangularSylvester(10), TriangularSylvester(10, True)])
    >>> flow_dist.log_prob(flow_dist.rsample((5,))).shape
    torch.Size([5])

    The inverse has no closed form and raises ``NotImplementedError``, but the transform caches its last forward call,
    so samples drawn through it can be scored.

    :param input_dim: the dimension :math:`D` of the input (and output) variable.
    :type input_dim: int
    :param reverse: use the coordinate reversal as :math:`P` instead of the identity.
    :type reverse: bool

    References:

    [1] Rianne van den Berg, Leonard Hasenclever, Jakub M. Tomczak, Max Welling. Sylvester Normalizing Flows for
    Variational Inference. UAI 2018. [arXiv:1803.05649]
    """

    kind = "triangular"

    def __init__(self, input_dim, reverse=False):
        super().__init__(input_dim, reverse=reverse)


class _ConditionalSylvester(ConditionalTransformModule):
    """Amortized front end: a hypernetwork emits every raw parameter from the context."""

    kind = None
    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(
        self,
        input_dim: int,
        nn: nn.Module,
        num_ortho_vecs: Optional[int] = None,
        num_householder: int = 1,
        reverse: bool = False,
        tol: Optional[float] = None,
        max_iter: int = 100,
    ):
        super().__init__()
        self.input_dim, self.num_ortho_vecs, self.num_householder = _check_dims(
            self.kind, input_dim, num_ortho_vecs, num_householder
        )
        self.nn = nn
        self.reverse = bool(reverse)
        self.tol, self.max_iter = tol, int(max_iter)
        self._shapes = _raw_shapes(self.kind, self.input_dim, self.num_ortho_vecs, self.num_householder)

    @classmethod
    def param_dims(cls, input_dim: int, num_ortho_vecs: Optional[int] = None, num_householder: int = 1):
        """Sizes of the flat parameter vectors the hypernetwork must emit, in order."""
        d, m, h = _check_dims(cls.kind, input_dim, num_ortho_vecs, num_householder)
        return [math.prod(shape) for _, shape in _raw_shapes(cls.kind, d, m, h)]

    def _params(self, context):
        outputs = self.nn(context)
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        if len(outputs) != len(self._shapes):
            raise ValueError(f"hypernetwork returned {len(outputs)} tensors, expected {len(self._shapes)}")
        raw = {}
        for out, (name, shape) in zip(outputs, self._shapes):
            raw[name] = out.reshape(out.shape[:-1] + shape)
        return _explicit_params(self.kind, raw, self.tol, self.max_iter)

    def condition(self, context):
        """
        :param context: the context :math:`h`, shape ``(..., C)`` (one row per data point).
        :return: a :class:`ConditionedSylvester` whose parameters have batch shape ``context.shape[:-1]`` and that acts
            on ``z`` of shape ``(..., *context.shape[:-1], D)``.
        """
        return ConditionedSylvester(partial(self._params, context), reverse=self.reverse, sources=(self, context))


_COND_DOC = r"""
    A conditional (amortized) {name} Sylvester flow step ({abbr}),

        :math:`\mathbf{{y}} = \mathbf{{x}} + Q R_1 \tanh(R_2 Q^T \mathbf{{x}} + \mathbf{{b}})`

    where every parameter ({what}; see :class:`{plain}`) is the output of a function ``nn`` of a context
    :math:`h\in\mathbb{{R}}^C` (in a guide, the encoder's hidden representation of :math:`x`), so each data point gets
    its own flow. ``condition(context)`` with a context of shape ``(B, C)`` gives a transform whose parameters have
    batch shape ``(B,)`` and which maps ``z`` of shape ``(..., B, D)`` (e.g. a particle dimension in front).

    The diagonals of :math:`R_1, R_2` go through :math:`c\tanh` (:math:`c` = :data:`DIAG_BOUND`) whatever ``nn`` emits,
    so :math:`1 + (R_1)_{{ii}}(R_2)_{{ii}}h' \ge 1 - c^2 > 0` and the map stays invertible.

    Example usage:

    >>> input_dim, context_dim, batch_size = 10, 5, 3
    >>> transform = {helper}(input_dim, context_dim)
    >>> h = torch.randn(batch_size, context_dim)  # one context row per data point
    >>> base_dist = dist.Normal(torch.zeros(input_dim), torch.ones(input_dim)).to_event(1).expand([batch_size])
    >>> flow_dist = dist.ConditionalTransformedDistribution(base_dist, [transform]).condition(h)
    >>> z = flow_dist.rsample(torch.Size([7]))  # 7 particles per data point
    >>> z.shape, flow_dist.log_prob(z).shape
    (torch.Size([7, 3, 10]), torch.Size([7, 3]))

    The inverse has no closed form and raises ``NotImplementedError``, but the conditioned transform caches its last
    forward call, so samples drawn through it can be scored.

    :param input_dim: the dimension :math:`D` of the input (and output) variable.
    :type input_dim: int
    :param nn: a callable taking the context ``(..., C)`` and returning a tuple of flat tensors of sizes
        ``{cls}.param_dims(...)``, in order: :math:`A` (:math:`M^2`, source of the off-diagonal parts; not emitted
        when :math:`M = 1`, where there are none), the raw diagonals of :math:`R_1` and :math:`R_2` (:math:`M` each),
        :math:`\mathbf{{b}}` (:math:`M`){extra}. The helper ``{helper}`` builds a
        :class:`~guides.transforms.hypernet.ParamHead`.
    :type nn: callable
{params}
    References:

    [1] Rianne van den Berg, Leonard Hasenclever, Jakub M. Tomczak, Max Welling. Sylvester Normalizing Flows for
    Variational Inference. UAI 2018. [arXiv:1803.05649]
"""


class ConditionalOrthogonalSylvester(_ConditionalSylvester):
    kind = "orthogonal"

    def __init__(self, input_dim, nn, num_ortho_vecs=None, tol=None, max_iter=100):
        super().__init__(input_dim, nn, num_ortho_vecs=num_ortho_vecs, tol=tol, max_iter=max_iter)


class ConditionalHouseholderSylvester(_ConditionalSylvester):
    kind = "householder"

    def __init__(self, input_dim, nn, num_householder=8):
        super().__init__(input_dim, nn, num_householder=num_householder)


class ConditionalTriangularSylvester(_ConditionalSylvester):
    kind = "triangular"

    def __init__(self, input_dim, nn, reverse=False):
        super().__init__(input_dim, nn, reverse=reverse)


ConditionalOrthogonalSylvester.__doc__ = _COND_DOC.format(
    name="orthogonal",
    abbr="O-SNF",
    what=r"the free :math:`D\times M` matrix orthonormalised into :math:`Q`, :math:`R_1`, :math:`R_2`, "
    r":math:`\mathbf{b}`",
    plain="OrthogonalSylvester",
    helper="conditional_sylvester_o",
    cls="ConditionalOrthogonalSylvester",
    extra=r", the free matrix behind :math:`Q` (:math:`DM`, row-major :math:`D\times M`; not emitted when "
    r":math:`D = 1`, where :math:`Q = 1`)",
    params="    :param num_ortho_vecs: the number :math:`M\\le D` of orthonormal columns of :math:`Q` (default :math:`D`).\n"
    "    :type num_ortho_vecs: int\n"
    "    :param tol: tolerance of the orthogonalisation (:func:`orthogonalize`).\n"
    "    :type tol: float\n"
    "    :param max_iter: maximum number of orthogonalisation steps.\n"
    "    :type max_iter: int\n",
)
ConditionalHouseholderSylvester.__doc__ = _COND_DOC.format(
    name="Householder",
    abbr="H-SNF",
    what=r"the :math:`H` reflection vectors making :math:`Q`, :math:`R_1`, :math:`R_2`, :math:`\mathbf{b}`",
    plain="HouseholderSylvester",
    helper="conditional_sylvester_h",
    cls="ConditionalHouseholderSylvester",
    extra=r", the reflection vectors (:math:`HD`, row-major :math:`H\times D`; not emitted when :math:`D = 1`, "
    r"where :math:`Q = 1`)",
    params="    :param num_householder: the number :math:`H` of Householder reflections making :math:`Q`.\n"
    "    :type num_householder: int\n",
)
ConditionalTriangularSylvester.__doc__ = _COND_DOC.format(
    name="triangular",
    abbr="T-SNF",
    what=r":math:`R_1`, :math:`R_2`, :math:`\mathbf{b}`; :math:`Q` is the fixed identity or reversal",
    plain="TriangularSylvester",
    helper="conditional_sylvester_t",
    cls="ConditionalTriangularSylvester",
    extra="",
    params="    :param reverse: use the coordinate reversal as :math:`Q` instead of the identity.\n"
    "    :type reverse: bool\n",
)


# ----------------------------------------------------------------------------------------------------------------------
# Helpers in the style of pyro.distributions.transforms
# ----------------------------------------------------------------------------------------------------------------------
def sylvester_o(input_dim: int, num_ortho_vecs: Optional[int] = None, **kwargs) -> OrthogonalSylvester:
    """
    A helper function to create an :class:`OrthogonalSylvester` (O-SNF) object.

    :param input_dim: Dimension of input variable
    :type input_dim: int
    :param num_ortho_vecs: number M <= input_dim of orthonormal columns of Q (default input_dim)
    :type num_ortho_vecs: int
    """
    return OrthogonalSylvester(input_dim, num_ortho_vecs=num_ortho_vecs, **kwargs)


def sylvester_h(input_dim: int, num_householder: int = 8) -> HouseholderSylvester:
    """
    A helper function to create a :class:`HouseholderSylvester` (H-SNF) object.

    :param input_dim: Dimension of input variable
    :type input_dim: int
    :param num_householder: number of Householder reflections making Q
    :type num_householder: int
    """
    return HouseholderSylvester(input_dim, num_householder=num_householder)


def sylvester_t(input_dim: int, reverse: bool = False) -> TriangularSylvester:
    """
    A helper function to create a :class:`TriangularSylvester` (T-SNF) object.

    :param input_dim: Dimension of input variable
    :type input_dim: int
    :param reverse: use the coordinate reversal as Q instead of the identity
    :type reverse: bool
    """
    return TriangularSylvester(input_dim, reverse=reverse)


def _head(cls, input_dim, context_dim, hidden_dims, **dims):
    return ParamHead(context_dim, cls.param_dims(input_dim, **dims), hidden_dims=hidden_dims or ())


def conditional_sylvester_o(
    input_dim: int,
    context_dim: int,
    num_ortho_vecs: Optional[int] = None,
    hidden_dims: Sequence[int] = (),
    **kwargs,
) -> ConditionalOrthogonalSylvester:
    """
    A helper function to create a :class:`ConditionalOrthogonalSylvester` (amortized O-SNF) object with a
    :class:`~guides.transforms.hypernet.ParamHead` hypernetwork of the right output sizes.

    :param input_dim: Dimension of input variable
    :type input_dim: int
    :param context_dim: Dimension of context variable
    :type context_dim: int
    :param num_ortho_vecs: number M <= input_dim of orthonormal columns of Q (default input_dim)
    :type num_ortho_vecs: int
    :param hidden_dims: hidden layers of the hypernetwork; none (a linear head, as in the paper) by default
    :type hidden_dims: list[int]
    """
    nn_ = _head(ConditionalOrthogonalSylvester, input_dim, context_dim, hidden_dims, num_ortho_vecs=num_ortho_vecs)
    return ConditionalOrthogonalSylvester(input_dim, nn_, num_ortho_vecs=num_ortho_vecs, **kwargs)


def conditional_sylvester_h(
    input_dim: int, context_dim: int, num_householder: int = 8, hidden_dims: Sequence[int] = ()
) -> ConditionalHouseholderSylvester:
    """
    A helper function to create a :class:`ConditionalHouseholderSylvester` (amortized H-SNF) object with a
    :class:`~guides.transforms.hypernet.ParamHead` hypernetwork of the right output sizes.

    :param input_dim: Dimension of input variable
    :type input_dim: int
    :param context_dim: Dimension of context variable
    :type context_dim: int
    :param num_householder: number of Householder reflections making Q
    :type num_householder: int
    :param hidden_dims: hidden layers of the hypernetwork; none (a linear head, as in the paper) by default
    :type hidden_dims: list[int]
    """
    nn_ = _head(ConditionalHouseholderSylvester, input_dim, context_dim, hidden_dims, num_householder=num_householder)
    return ConditionalHouseholderSylvester(input_dim, nn_, num_householder=num_householder)


def conditional_sylvester_t(
    input_dim: int, context_dim: int, reverse: bool = False, hidden_dims: Sequence[int] = ()
) -> ConditionalTriangularSylvester:
    """
    A helper function to create a :class:`ConditionalTriangularSylvester` (amortized T-SNF) object with a
    :class:`~guides.transforms.hypernet.ParamHead` hypernetwork of the right output sizes.

    :param input_dim: Dimension of input variable
    :type input_dim: int
    :param context_dim: Dimension of context variable
    :type context_dim: int
    :param reverse: use the coordinate reversal as Q instead of the identity
    :type reverse: bool
    :param hidden_dims: hidden layers of the hypernetwork; none (a linear head, as in the paper) by default
    :type hidden_dims: list[int]
    """
    nn_ = _head(ConditionalTriangularSylvester, input_dim, context_dim, hidden_dims)
    return ConditionalTriangularSylvester(input_dim, nn_, reverse=reverse)
