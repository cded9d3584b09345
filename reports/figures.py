"""The report's figures, each one PNG file (matplotlib's Agg canvas, no pyplot state; torchvision image grids).

Model-dependent pictures go through the model contract only (docs/architecture.md): ``model.sample(n, like)`` for samples,
poutine trace/replay of the guide into the model for reconstructions (:func:`reconstruct`), and
``poutine.condition(model, data={site: z})`` for decoding chosen latents (:func:`decode_latents`). Everything else is
drawn from a run's files: ``metrics.jsonl`` (curves) and ``eval_points.pt`` (per-point NLL, k-hat, posterior means).
"""
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pyro.poutine as poutine
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from inference.atomic_write import write_atomic

DPI = 100
MIN_CELL = 28  # small images (8x8 digits) are enlarged to about this many pixels, nearest neighbour


def _figure(width=5.2, height=3.4):
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=DPI, format=os.path.splitext(path)[1][1:] or "png"))
    return path


# ------------------------------------------------------------------------------------------------------------------
# image grids


def save_grid(x: torch.Tensor, image_shape: Sequence[int], path: str, nrow: int) -> str:
    """Save flattened images x (n, D) as a grid PNG, enlarged (nearest neighbour) when they are tiny."""
    import torchvision.utils as vutils

    c, h, w = image_shape
    images = x.detach().float().reshape(-1, c, h, w).clamp(0, 1).cpu()
    scale = max(1, int(math.ceil(MIN_CELL / max(h, w))))
    if scale > 1:
        images = torch.nn.functional.interpolate(images, scale_factor=scale, mode="nearest")
    write_atomic(path, lambda tmp: vutils.save_image(images, tmp, nrow=nrow, padding=2, pad_value=1.0, format="PNG"))
    return path


@torch.no_grad()
def reconstruct(model, guide, x: torch.Tensor) -> torch.Tensor:
    """E[x | z] with z ~ q(z|x): run the guide on x, replay its latents in the model, take the observed site's mean.

    Works for any zoo model/guide pair (any number of latent sites); the model's ``decode_mean`` picks the mean of
    its observed site ``"x"``."""
    guide_trace = poutine.trace(guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x)
    if hasattr(model, "decode_mean"):
        return model.decode_mean(model_trace.nodes)
    return model_trace.nodes["x"]["fn"].mean


def single_latent_site(model) -> Tuple[Optional[str], str]:
    """The name of the model's one continuous latent site, or None and why not."""
    try:
        sites = list(model.latent_sites())
    except Exception as e:  # a model outside the contract
        return None, f"the model does not declare its latent sites ({e})"
    if len(sites) != 1:
        return None, (f"the model has {len(sites)} latent sites ({', '.join(s.name for s in sites)}); "
                      "interpolation is drawn only for models with one latent site")
    site = sites[0]
    if getattr(site, "support", "real") != "real":
        return None, f"the latent site {site.name!r} is {site.support}, not real-valued"
    return site.name, ""


@torch.no_grad()
def decode_latents(model, site: str, z: torch.Tensor, data_dim: int) -> torch.Tensor:
    """E[x | z] for given values z (n, d) of the latent ``site``: the model conditioned on them and traced on a
    placeholder x; the mean of its ``"x"`` site."""
    placeholder = z.new_zeros(z.shape[0], data_dim)
    trace = poutine.trace(poutine.condition(model, data={site: z})).get_trace(placeholder)
    return trace.nodes["x"]["fn"].mean


def samples_figure(model, like: torch.Tensor, image_shape, path: str, n: int = 64, seed: int = 0) -> str:
    torch.manual_seed(seed)
    with torch.no_grad():
        x = model.sample(n, like)
    return save_grid(x, image_shape, path, nrow=int(math.ceil(math.sqrt(n))))


def reconstructions_figure(model, guide, x: torch.Tensor, image_shape, path: str, per_row: int = 8,
                           seed: int = 0) -> str:
    """Rows of originals, each followed by the row of their reconstructions."""
    torch.manual_seed(seed)
    recon = reconstruct(model, guide, x)
    rows = []
    for start in range(0, x.shape[0], per_row):
        rows += [x[start:start + per_row], recon[start:start + per_row].to(x.dtype)]
    return save_grid(torch.cat(rows), image_shape, path, nrow=per_row)


def interpolation_pairs(labels: Optional[np.ndarray], n_points: int, pairs: int) -> List[Tuple[int, int]]:
    """Pairs of test points to interpolate between: of different classes when there are labels."""
    if labels is None:
        idx = list(range(min(n_points, 2 * pairs)))
        return [(idx[2 * i], idx[2 * i + 1]) for i in range(len(idx) // 2)]
    labels = np.asarray(labels)
    first = {}
    for i, c in enumerate(labels.tolist()):
        first.setdefault(c, i)
    classes = sorted(first)
    out = []
    for i in range(pairs):
        if len(classes) < 2:
            break
        a, b = classes[(2 * i) % len(classes)], classes[(2 * i + 1) % len(classes)]
        if a != b:
            out.append((first[a], first[b]))
    return out


def interpolation_figure(model, site: str, posterior_means: np.ndarray, labels, image_shape, data_dim: int,
                         like: torch.Tensor, path: str, steps: int = 10, pairs: int = 4) -> str:
    """Linear paths in z between the posterior means of pairs of test points, decoded (one row per pair)."""
    means = torch.as_tensor(posterior_means, dtype=like.dtype, device=like.device)
    chosen = interpolation_pairs(labels, means.shape[0], pairs)
    t = torch.linspace(0, 1, steps, dtype=like.dtype, device=like.device).unsqueeze(-1)
    z = torch.cat([(1 - t) * means[a] + t * means[b] for a, b in chosen])
    x = decode_latents(model, site, z, data_dim)
    return save_grid(x, image_shape, path, nrow=steps)


# ------------------------------------------------------------------------------------------------------------------
# plots


def curves_figure(runs: Dict[str, List[dict]], path: str) -> str:
    """Training (solid) and validation (dashed) loss per epoch of every run, on one plot; the test error per epoch
    (dotted, right axis) of runs that record one (models that classify)."""
    fig = _figure(6.4, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    colors = [f"C{i % 10}" for i in range(len(runs))]
    drawn = False
    for color, (name, rows) in zip(colors, runs.items()):
        epochs = [r["epoch"] + 1 for r in rows]
        for key, style, what in (("train_loss", "-", "train"), ("valid_loss", "--", "valid")):
            pts = [(e, r.get(key)) for e, r in zip(epochs, rows)
                   if r.get(key) is not None and math.isfinite(float(r.get(key)))]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=color, marker="o", markersize=3,
                        label=f"{name} ({what})")
                drawn = True
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (nats per data point)")
    ax.set_title("training (solid) and validation (dashed) loss")
    # models that classify (m2, m1+m2) record the test error per epoch: dotted, on a second axis
    err_ax = None
    for color, (name, rows) in zip(colors, runs.items()):
        pts = [(r["epoch"] + 1, 100.0 * float(r["test_error"])) for r in rows
               if r.get("test_error") is not None and math.isfinite(float(r["test_error"]))]
        if pts:
            if err_ax is None:
                err_ax = ax.twinx()
                err_ax.set_ylabel("test error % (dotted)")
                ax.set_title("loss: training (solid), validation (dashed); test error (dotted)")
            err_ax.plot([p[0] for p in pts], [p[1] for p in pts], ":", color=color, marker="s", markersize=3,
                        label=f"{name} (test error)")
    if drawn:
        handles, labels = ax.get_legend_handles_labels()
        if err_ax is not None:
            more = err_ax.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        ax.legend(handles, labels, fontsize=7, loc="upper right")
    else:
        ax.text(0.5, 0.5, "no metrics recorded", ha="center", va="center", transform=ax.transAxes)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def pca_2d(values: np.ndarray) -> Tuple[np.ndarray, str]:
    """(N, d) -> (N, 2): the values themselves for d = 2 (d = 1 padded), else the first two principal components."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[1] == 2:
        return values, "z"
    if values.shape[1] == 1:
        return np.concatenate([values, np.zeros_like(values)], axis=1), "z (1-D)"
    centred = values - values.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    explained = (s ** 2) / max((s ** 2).sum(), 1e-300)
    return centred @ vt[:2].T, f"PCA of E[z|x] ({100 * explained[:2].sum():.0f}% of variance)"


def latent_figure(posterior_means: np.ndarray, labels, path: str) -> str:
    proj, how = pca_2d(posterior_means)
    fig = _figure(5.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    if labels is not None:
        labels = np.asarray(labels)
        sc = ax.scatter(proj[:, 0], proj[:, 1], c=labels, cmap="tab10", s=6, alpha=0.8,
                        vmin=labels.min() - 0.5, vmax=labels.max() + 0.5)
        cb = fig.colorbar(sc, ax=ax, ticks=np.unique(labels)[:20])
        cb.set_label("label")
    else:
        ax.scatter(proj[:, 0], proj[:, 1], s=6, alpha=0.8)
    dim = posterior_means.shape[1]
    ax.set_title(f"test set in latent space: {how}" if dim > 2 else "test set in latent space (E[z|x])", fontsize=9)
    ax.set_xlabel("component 1" if dim > 2 else "z1")
    ax.set_ylabel("component 2" if dim > 2 else "z2")
    return _save(fig, path)


def nll_hist_figure(nll: np.ndarray, num_samples: int, path: str) -> str:
    nll = np.asarray(nll, dtype=np.float64)
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(nll, bins=min(50, max(10, len(nll) // 10)), color="C0", alpha=0.85)
    ax.axvline(nll.mean(), color="k", linestyle="--", label=f"mean {nll.mean():.2f}")
    ax.set_xlabel(f"-log p(x) per test point (nats, K={num_samples})")
    ax.set_ylabel("test points")
    ax.legend(fontsize=8)
    return _save(fig, path)


def khat_figure(khat: np.ndarray, path: str) -> str:
    khat = np.asarray(khat, dtype=np.float64)
    finite = khat[np.isfinite(khat)]
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    if finite.size:
        ax.hist(finite, bins=40, color="C2", alpha=0.85)
    ax.axvline(0.5, color="orange", linestyle="--", label="0.5 (good below)")
    ax.axvline(0.7, color="red", linestyle="--", label="0.7 (unreliable above)")
    share = float((finite > 0.7).mean()) if finite.size else float("nan")
    ax.set_title(f"PSIS k-hat per test point; {100 * share:.1f}% above 0.7", fontsize=9)
    ax.set_xlabel("Pareto k-hat")
    ax.set_ylabel("test points")
    ax.legend(fontsize=8)
    return _save(fig, path)
