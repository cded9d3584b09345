"""Figures for the flow density models (:mod:`zoo.flow_models`): samples at several temperatures, 2-D densities on a
grid beside the data, interpolations in z.

Every function takes ``(model, data, path, ...)`` -- a trained flow model, the data (a :class:`zoo.data.Dataset`, whose
test split is drawn, or a tensor of points (N, D)) and the PNG to write -- and returns the path. The model is put in
evaluation mode (fixed dequantization) for the duration of the call.

* :func:`temperature_samples` -- draws f^{-1}(T * eps) for each temperature T, the same eps in every row (images: one
  row per T; 2-D data: one scatter per T over the data); ``model.sample(n, like, temperature=T)`` draws one T;
* :func:`density_grid` -- 2-D data only: the data scatter beside the model density exp(log p(x)) on a grid;
* :func:`interpolation_strips` -- images: rows of f^{-1}((1 - t) f(v_a) + t f(v_b)) between test images;
* :func:`flow_figures` -- the applicable ones into a folder.
"""
import os
from contextlib import contextmanager
from typing import Optional, Sequence

import numpy as np
import torch

from inference.atomic_write import write_atomic

TEMPERATURES = (0.0, 0.5, 0.7, 0.85, 1.0)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _points(data) -> torch.Tensor:
    return data.test.x if hasattr(data, "test") else torch.as_tensor(data)


def _device_like(model, x):
    p = next(iter(model.parameters()), None)
    return x.to(p.device, p.dtype) if p is not None else x


@contextmanager
def _evaluating(model):
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was)


def _save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"))
    _plt().close(fig)
    return path


def temperature_samples(model, data, path, temperatures: Sequence[float] = TEMPERATURES, n: Optional[int] = None,
                        seed: int = 0) -> str:
    """Samples f^{-1}(T eps), eps ~ base, for each T (T = 0: the base mean mapped through the flow); n per
    temperature (default 8 images, 500 points)."""
    if n is None:
        n = 8 if model.image_shape is not None else 500
    plt = _plt()
    x = _device_like(model, _points(data))
    with _evaluating(model):
        torch.manual_seed(seed)
        eps = model.base_dist(x).sample((n,))  # the same eps at every temperature: z = T * eps
        z = torch.cat([t * eps for t in temperatures])
        draws = model.decode(z).cpu().split(n)  # one decoding pass (MAF samples with D sequential passes)
    shape = model.image_shape
    if shape is not None:
        fig, axes = plt.subplots(len(temperatures), n, figsize=(n * 0.9, len(temperatures) * 0.95), squeeze=False)
        for r, (t, s) in enumerate(zip(temperatures, draws)):
            _image_row(axes[r], s, shape, n)
            axes[r, 0].set_ylabel(f"T={t:g}", rotation=0, ha="right", va="center", fontsize=8)
        fig.suptitle(f"{type(model).__name__} samples by temperature", fontsize=9)
        return _save(fig, path)
    if model.data_dim != 2:
        raise ValueError(f"temperature_samples draws images or 2-D points; this model has {model.data_dim} "
                         "dimensions and no image shape")
    pts = x.cpu().numpy()
    fig, axes = plt.subplots(1, len(temperatures), figsize=(2.6 * len(temperatures), 2.6), squeeze=False)
    for ax, t, s in zip(axes[0], temperatures, draws):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c="0.8", label="data")
        ax.scatter(s[:, 0], s[:, 1], s=6, c="C3", label="model")
        ax.set_title(f"T={t:g}", fontsize=9)
        ax.set_aspect("equal")
    return _save(fig, path)


def density_grid(model, data, path, bounds=None, resolution: int = 200, max_points: int = 2000) -> str:
    """2-D data: a scatter of the data beside the model density exp(log p(x)) evaluated on a resolution^2 grid."""
    plt = _plt()
    if model.data_dim != 2:
        raise ValueError(f"density_grid pictures 2-D densities; this model has {model.data_dim} dimensions")
    x = _points(data)[:max_points]
    pts = x.cpu().numpy()
    if bounds is None:
        lo, hi = pts.min(0), pts.max(0)
        pad = 0.15 * (hi - lo)
        bounds = (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])
    x0, x1, y0, y1 = bounds
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid = torch.tensor(np.stack([gx.ravel(), gy.ravel()], -1), dtype=torch.float32)
    grid = _device_like(model, grid)
    with _evaluating(model):
        logp = torch.cat([model.log_prob(g) for g in grid.split(8192)]).cpu().numpy()
    density = np.exp(logp).reshape(resolution, resolution)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    axes[0].scatter(pts[:, 0], pts[:, 1], s=2, c="k")
    axes[0].set_title(f"data ({len(pts)} points)", fontsize=9)
    axes[1].imshow(density, origin="lower", extent=(x0, x1, y0, y1), cmap="viridis", aspect="auto")
    axes[1].set_title(f"{type(model).__name__} density p(x)", fontsize=9)
    for ax in axes:
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
    return _save(fig, path)


def interpolation_strips(model, data, path, pairs: int = 4, steps: int = 8, spherical: bool = False) -> str:
    """Images: for each of ``pairs`` pairs of test images, the flow's interpolation in z in ``steps`` steps."""
    from zoo.flow_models import interpolate

    plt = _plt()
    if model.image_shape is None:
        raise ValueError("interpolation_strips draws images; this model's data are vectors")
    x = _device_like(model, _points(data))
    with _evaluating(model):
        rows = interpolate(model, x[0:2 * pairs:2], x[1:2 * pairs:2], steps=steps, spherical=spherical).cpu()
    fig, axes = plt.subplots(pairs, steps, figsize=(steps * 0.9, pairs * 0.95), squeeze=False)
    for r, row in enumerate(rows):
        _image_row(axes[r], row, model.image_shape, steps)
    fig.suptitle(f"{type(model).__name__}: interpolation in z", fontsize=9)
    return _save(fig, path)


def flow_figures(model, data, out_dir: str) -> list:
    """Every figure that applies to the model's data, written into ``out_dir``; returns the paths."""
    paths = [temperature_samples(model, data, os.path.join(out_dir, "flow_temperatures.png"))] \
        if model.image_shape is not None or model.data_dim == 2 else []
    if model.data_dim == 2:
        paths.append(density_grid(model, data, os.path.join(out_dir, "flow_density.png")))
    if model.image_shape is not None and len(_points(data)) >= 2:
        paths.append(interpolation_strips(model, data, os.path.join(out_dir, "flow_interpolation.png"),
                                          pairs=min(4, len(_points(data)) // 2)))
    return paths


def _image_row(axes_row, flat, shape, n):
    """The first ``n`` images of ``flat`` (n, C*H*W) in [0, 1], one per axis of a figure row, without ticks."""
    c, h, w = shape
    imgs = flat.reshape(-1, c, h, w).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    for j in range(n):
        ax = axes_row[j]
        ax.imshow(imgs[j].squeeze(-1) if c == 1 else imgs[j], cmap="gray" if c == 1 else None, vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
