"""Figures of the semi-supervised models (Kingma, Rezende, Mohamed & Welling 2014, figs. 1 and 4).

* :func:`conditional_generation_figure` -- fix the class, vary the style: row c holds E[x | y=c, z_j] for the same
  n draws z_j ~ p(z) in every row, so a column is one style written as every digit.
* :func:`analogies_figure` -- infer the style of test digits, z = E_q[z | x, y] with y their argmax q(y|x), and write
  every class in it: column 0 the test digit, then y = 0 .. C-1.

Both take (model, guide, data) -- a class-conditional model such as ``m2`` or ``m1+m2`` with its semi-supervised guide,
and a :class:`zoo.data.Dataset` whose ``image_shape`` says how to fold the vectors back into images -- write a PNG and
return its path. :func:`semi_supervised_figures` draws both and says why when a model has no class-conditional decoder.
"""
import os
from typing import List, Optional, Tuple

import torch

from reports.figures import save_grid


def is_class_conditional(model, guide) -> Tuple[bool, str]:
    if not (hasattr(model, "generate") and hasattr(model, "num_classes")):
        return False, f"{type(model).__name__} has no class-conditional decoder p(x | y, z)"
    if not (hasattr(guide, "classify") and hasattr(guide, "posterior_loc")):
        return False, f"guide {type(guide).__name__} has no q(y|x) and q(z|x,y)"
    if getattr(model, "image_shape", None) is None:
        return False, "the data are not images"
    return True, ""


def _check(model, guide, data):
    ok, why = is_class_conditional(model, guide)
    if not ok:
        raise ValueError(f"semi-supervised figures need a class-conditional model and guide: {why}")
    shape = data.image_shape or model.image_shape
    if shape is None:
        raise ValueError("semi-supervised figures need image data (the data set has no image_shape)")
    return shape


@torch.no_grad()
def conditional_generation_figure(model, guide, data, path: str, n: int = 10, seed: int = 0) -> str:
    """Grid of C rows (classes) x n columns (shared draws z ~ p(z)) of decoder means."""
    shape = _check(model, guide, data)
    model.eval()
    like = data.test.x
    gen = torch.Generator(device="cpu").manual_seed(seed)
    z = torch.randn(n, model.latent_dim, generator=gen).to(like.device, like.dtype)
    C = model.num_classes
    y = torch.arange(C, device=like.device).repeat_interleave(n)  # row c: class c
    images = model.generate(z.repeat(C, 1), y)
    return save_grid(images, shape, path, nrow=n)


@torch.no_grad()
def analogies_figure(model, guide, data, path: str, n: int = 8, seed: int = 0) -> str:
    """n test digits (first column) and their style z = E_q[z|x, argmax q(y|x)] decoded as every class."""
    shape = _check(model, guide, data)
    model.eval()
    guide.eval()
    x = data.test.x
    gen = torch.Generator(device="cpu").manual_seed(seed)
    idx = torch.randperm(x.shape[0], generator=gen)[:n].to(x.device)
    xs = x[idx]
    y_hat = guide.classify(xs).argmax(-1)
    z = guide.posterior_loc(xs, y_hat)
    C = model.num_classes
    rows = []
    for i in range(xs.shape[0]):
        generated = model.generate(z[i:i + 1].expand(C, -1), torch.arange(C, device=x.device))
        original = xs[i:i + 1]
        if original.shape[-1] != generated.shape[-1]:  # not the same space: leave the cell blank
            original = torch.ones_like(generated[:1])
        rows.append(torch.cat([original, generated], dim=0))
    return save_grid(torch.cat(rows), shape, path, nrow=C + 1)


def semi_supervised_figures(model, guide, data, out_dir: str, seed: int = 0) -> Tuple[List[Tuple[str, str]], Optional[str]]:
    """Both figures into ``out_dir``: ([(path, caption), ...], None), or ([], why not) for other models."""
    ok, why = is_class_conditional(model, guide)
    if not ok:
        return [], why
    os.makedirs(out_dir, exist_ok=True)
    figs = [
        (conditional_generation_figure(model, guide, data, os.path.join(out_dir, "conditional_generation.png"),
                                       seed=seed),
         "Conditional generation: row c is y = c, each column one draw z ~ p(z) shared by the rows (decoder means)."),
        (analogies_figure(model, guide, data, os.path.join(out_dir, "analogies.png"), seed=seed),
         "Analogies: a test digit (left), then its style z = E_q[z | x, argmax q(y|x)] decoded with y = 0 .. C-1."),
    ]
    return figs, None
