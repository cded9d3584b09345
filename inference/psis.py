"""The one adapter between the zoo and arviz's Pareto-smoothed importance sampling (Vehtari et al. 2015/2024).

k-hat < 0.5: reliable; 0.5-0.7: usable; > 0.7: the importance-sampled estimate of log p(x) is unreliable for that point.
arviz 0.x exposes ``az.psislw(log_w, reff)`` (last axis = samples); arviz 1.x moved it to arviz-stats: keep every
call behind :func:`pareto_khat`.
"""
import warnings

import numpy as np


def pareto_khat(log_w: np.ndarray) -> np.ndarray:
    """One Pareto k-hat per row of ``log_w`` (B, K)."""
    log_w = np.asarray(log_w, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import arviz as az

            if hasattr(az, "psislw"):
                _, khat = az.psislw(log_w, reff=1.0)
                return np.asarray(khat, dtype=np.float64).reshape(log_w.shape[0])
        except ImportError:  # pragma: no cover - arviz is a core dependency
            pass
        from arviz_stats.base import array_stats  # arviz >= 1.0 (pragma: no cover)

        _, khat = array_stats.psislw(-log_w, r_eff=1.0)  # negated input in arviz-stats
        return np.asarray(khat, dtype=np.float64).reshape(log_w.shape[0])


def tail_length(num_samples: int) -> int:
    """M, the number of largest log-weights PSIS fits its generalized Pareto tail to (r_eff = 1):
    M = ceil(min(K / 5, 3 sqrt(K))). The tail is the weights above the (M+1)-th largest."""
    return int(np.ceil(min(num_samples / 5.0, 3.0 * num_samples ** 0.5)))


def pareto_khat_from_top(top: np.ndarray, num_samples: int, block_floats: int = 2 ** 18) -> np.ndarray:
    """k-hat per row from only the M+1 largest log-weights of each row of K (``top``: (B, >= M+1), any order).

    k-hat depends on the K weights only through the tail (the M largest) and the cutoff (the (M+1)-th largest), so
    each row is rebuilt as the kept values followed by K - m copies of the smallest kept one: same cutoff, same tail,
    the same k-hat as from all K weights (a test compares the two), while the evaluation keeps O(sqrt K) values a point.
    Rows are rebuilt a few at a time so the rebuilt block stays under ``block_floats`` floats."""
    top = np.asarray(top, dtype=np.float64)
    b, m = top.shape
    if m < min(num_samples, tail_length(num_samples) + 1):
        raise ValueError(f"k-hat needs the {tail_length(num_samples) + 1} largest log-weights of {num_samples}, got {m}")
    rows = max(1, block_floats // max(num_samples, 1))
    out = []
    for i in range(0, b, rows):
        part = top[i:i + rows]
        full = np.repeat(part.min(axis=1, keepdims=True), num_samples, axis=1)
        full[:, :m] = part
        out.append(pareto_khat(full))
    return np.concatenate(out) if out else np.zeros(0)
