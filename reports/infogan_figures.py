"""Figures of InfoGAN runs (Chen et al. 2016, Figure 2): what each code of the generator controls.

* :func:`categorical_figure` -- row k holds G(z_j, c = k, c' = 0) for the same n draws z_j in every row, so a row is one
  value of the categorical code and a column one noise draw;
* :func:`continuous_figure` -- one per continuous code: row k is c = k, the columns sweep that code from -2 to 2 (the
  training range is [-1, 1], so the outer columns extrapolate, as in the paper's figure), the noise and the other
  continuous codes fixed (one z for the whole figure, the others at 0);
* :func:`confusion_figure` -- the counts of argmax Q(c | x) against the test labels from eval.json.

Rows are ordered by the digit each code was matched to (eval.json's ``code_matching``) where the evaluation has one,
so row i shows the code matched to label i. :func:`infogan_figures` draws them all for a model with a categorical code
(``is_infogan``) and returns (path, caption) pairs.
"""
import os
from typing import List, Optional, Tuple

import numpy as np
import torch

from reports.figures import _figure, _save, save_grid


def is_infogan(model, guide) -> bool:
    return (hasattr(model, "generator_input") and isinstance(getattr(model, "categorical", None), int)
            and getattr(model, "image_shape", None) is not None)


def _row_order(model, summary: Optional[dict]) -> Tuple[List[int], Optional[List[int]]]:
    """Codes in the order of their matched labels (and those labels), or 0..K-1 without a matching."""
    K = model.categorical
    matching = (summary or {}).get("code_matching")
    if not isinstance(matching, dict) or len(matching) != K:
        return list(range(K)), None
    pairs = sorted(((int(label), int(code)) for code, label in matching.items()))
    return [code for _, code in pairs], [label for label, _ in pairs]


def _like(model):
    p = next(iter(model.parameters()))
    return p.device, p.dtype


@torch.no_grad()
def categorical_figure(model, path: str, n: int = 10, seed: int = 0, order: Optional[List[int]] = None) -> str:
    device, dtype = _like(model)
    model.eval()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    order = order or list(range(model.categorical))
    z = torch.randn(n, model.noise_dim, generator=gen).to(device, dtype)
    rows = len(order)
    c = torch.tensor(order, device=device).repeat_interleave(n)
    c_cont = torch.zeros(rows * n, model.continuous, device=device, dtype=dtype) if model.continuous else None
    images = model.generate(z.repeat(rows, 1), c, c_cont)
    return save_grid(images, model.image_shape, path, nrow=n)


@torch.no_grad()
def continuous_figure(model, index: int, path: str, steps: int = 9, low: float = -2.0, high: float = 2.0,
                      seed: int = 0, order: Optional[List[int]] = None) -> str:
    device, dtype = _like(model)
    model.eval()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    order = order or list(range(model.categorical))
    rows = len(order)
    z = torch.randn(1, model.noise_dim, generator=gen).to(device, dtype).expand(rows * steps, -1)
    c = torch.tensor(order, device=device).repeat_interleave(steps)
    c_cont = torch.zeros(rows * steps, model.continuous, device=device, dtype=dtype)
    c_cont[:, index] = torch.linspace(low, high, steps, device=device, dtype=dtype).repeat(rows)
    images = model.generate(z, c, c_cont)
    return save_grid(images, model.image_shape, path, nrow=steps)


def confusion_figure(confusion, order: List[int], labels: Optional[List[int]], accuracy: Optional[float],
                     path: str) -> str:
    counts = np.asarray(confusion)[order]
    fig = _figure(4.6, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(counts, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xlabel("test label")
    ax.set_ylabel("code c = argmax Q(c|x)")
    ax.set_xticks(range(counts.shape[1]))
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels([str(c) for c in order])
    title = "codes against labels"
    if accuracy is not None:
        title += f" (matched accuracy {100 * accuracy:.1f} %)"
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def infogan_figures(model, summary: Optional[dict], out_dir: str, seed: int = 0) -> List[Tuple[str, str]]:
    """Every InfoGAN figure into ``out_dir``: [(path, caption), ...]."""
    os.makedirs(out_dir, exist_ok=True)
    order, labels = _row_order(model, summary)
    accuracy = ((summary or {}).get("code_accuracy") or {}).get("mean")
    rows = ("rows ordered by the digit each code was matched to (" + ", ".join(
        f"{label}: c={code}" for label, code in zip(labels, order)) + ")") if labels else "row k: c = k"
    acc = ""
    if accuracy is not None:
        se = summary["code_accuracy"].get("se", float("nan"))
        acc = (f" The code matches the test labels with {100 * accuracy:.1f} % ± {100 * se:.1f} accuracy (best "
               f"one-to-one matching of argmax Q(c|x) to the labels, Hungarian algorithm).")
    made = [(categorical_figure(model, os.path.join(out_dir, "infogan_categorical.png"), seed=seed, order=order),
             f"Varying the categorical code c: {rows}; each column one draw of the noise z shared by the rows, "
             f"continuous codes at 0 (Chen et al. 2016, Fig. 2a).{acc}")]
    for j in range(model.continuous):
        name = f"infogan_continuous_{j + 1}.png"
        made.append((continuous_figure(model, j, os.path.join(out_dir, name), seed=seed, order=order),
                     f"Varying continuous code c'_{j + 1} from -2 to 2 (left to right; trained on [-1, 1]) for each "
                     f"categorical value ({rows}); one noise draw z for the whole figure, the other continuous codes "
                     f"at 0 (Chen et al. 2016, Fig. 2c-d)."))
    confusion = (summary or {}).get("code_confusion")
    if confusion is not None:
        made.append((confusion_figure(confusion, order, labels, accuracy, os.path.join(out_dir, "infogan_codes.png")),
                     "Test points by their code argmax Q(c|x) (rows, in the order of the matched labels) and their "
                     "label (columns)." + acc))
    return made
