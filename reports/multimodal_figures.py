"""Figures of a multimodal run (mvae, zoo/multimodal.py): cross-modal generation and joint samples.

* ``cross_<a>_to_<b>.png`` -- for 8 test points (one per column): modality a (the input), then E[x_b | z] with
  z ~ q(z | x_a) (every other modality masked out, the same path as a missing modality), then the true x_b;
* ``joint_samples.png`` -- z ~ p(z) decoded into every image modality (one row per modality, same z per column).

A categorical modality is drawn as a row of its one-hot (input) or its probabilities (generated), 10 pixels high;
grey images are shown with three equal channels beside colour ones.
"""
import os
from typing import List, Tuple

import pyro.poutine as poutine
import torch

from reports.figures import save_grid
from zoo.multimodal import keep_only, split

CELL = 28


def is_multimodal(model) -> bool:
    return bool(getattr(model, "is_multimodal_model", False))


def _as_rgb(values: torch.Tensor, modality) -> torch.Tensor:
    """(n, 3, 28, 28) pictures of a modality's values (n, D_m)."""
    n = values.shape[0]
    if modality.shape is not None and len(modality.shape) == 3:
        c, h, w = modality.shape
        img = values.reshape(n, c, h, w).float()
        img = img.expand(n, 3, h, w) if c == 1 else img[:, :3]
        if (h, w) != (CELL, CELL):
            img = torch.nn.functional.interpolate(img, size=(CELL, CELL), mode="nearest")
        return img
    # vectors and one-hot labels: a bar of D values stretched to the cell's width
    bar = values.float().reshape(n, 1, 1, -1)
    bar = torch.nn.functional.interpolate(bar, size=(CELL, CELL), mode="nearest")
    return bar.expand(n, 3, CELL, CELL)


@torch.no_grad()
def cross_modal(model, guide, x: torch.Tensor, source: int, target: int, seed: int = 0) -> torch.Tensor:
    """E[x_target | z], z ~ q(z | x_source) (the other modalities masked out) for the rows x."""
    torch.manual_seed(seed)
    xs = keep_only(x, model.modalities, [source])
    trace = poutine.trace(poutine.block(guide, hide_types=["param"])).get_trace(xs)
    return model.decode(trace.nodes["z"]["value"], target)


def multimodal_figures(model, guide, data, folder: str, n: int = 8) -> List[Tuple[str, str]]:
    """The PNGs written to ``folder`` with their captions."""
    mods = model.modalities
    test = data.test.x
    everything = torch.isfinite(test).all(-1).nonzero().flatten()
    idx = everything[torch.linspace(0, len(everything) - 1, min(n, len(everything))).round().long()]
    x = test[idx]
    parts = split(x, mods)
    made = []
    for a, ma in enumerate(mods):
        for b, mb in enumerate(mods):
            if a == b:
                continue
            generated = cross_modal(model, guide, x, a, b)
            grid = torch.cat([_as_rgb(parts[a], ma), _as_rgb(generated, mb), _as_rgb(parts[b], mb)])
            png = os.path.join(folder, f"cross_{ma.name}_to_{mb.name}.png")
            save_grid(grid.reshape(grid.shape[0], -1), (3, CELL, CELL), png, nrow=len(idx))
            made.append((png, f"Cross-modal generation {ma.name} -> {mb.name}: test inputs x_{ma.name} (top row), "
                              f"E[x_{mb.name} | z] with z ~ q(z | x_{ma.name}) alone (middle), the true "
                              f"x_{mb.name} (bottom)"))
    torch.manual_seed(0)
    z = torch.randn(n, model.latent_dim, dtype=test.dtype, device=test.device)
    with torch.no_grad():
        rows = [_as_rgb(model.decode(z, i), m) for i, m in enumerate(mods)]
    png = os.path.join(folder, "joint_samples.png")
    grid = torch.cat(rows)
    save_grid(grid.reshape(grid.shape[0], -1), (3, CELL, CELL), png, nrow=n)
    made.append((png, "Joint samples: z ~ p(z) decoded into every modality (one row per modality: "
                      f"{', '.join(m.name for m in mods)}; same z in each column)"))
    return made
