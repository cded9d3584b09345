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
