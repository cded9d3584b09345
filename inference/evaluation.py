"""The evaluation protocol, the same for every model (docs/architecture.md, "Evaluation protocol").

For each test point x_i, K importance samples z_ik ~ q(z|x_i) give log-weights log w_ik = log p(x_i, z_ik) - log q(z_ik|x_i),
from which

* log p(x_i) ~= logsumexp_k log w_ik - log K   (the importance-sampled log-likelihood; NLL = its negative),
* ELBO_i = mean_k log w_ik, split into the reconstruction term mean_k log p(x_i|z_ik) and KL_i = mean_k log q - log p(z),
* PSIS k-hat_i from the K log-weights (arviz),
* E_q[z|x_i] (the mean of the z_ik), whose covariance over the test points gives the active units of Burda et al. 2016:
  unit u is active when Cov_x(E_q[z_u|x]) > 0.01,
* the K-sweep: the same estimate from the first k of the K weights, k in (1, 10, 100, 1000, 5000) up to K (so a reader
  sees whether it still moves with K; k = 1 is a one-sample ELBO),
* the first-order jackknife estimate of log p(x) from the same K weights (Nowozin 2018, :mod:`inference.jackknife`):
  bias O(1/K^2) instead of the IWAE estimate's O(1/K), but no longer a bound.

Points are processed in batches and particles in chunks, so memory stays bounded by one chunk of
``points x particles x data dim`` whatever K is: log p(x) is a running logsumexp, and PSIS keeps only the O(sqrt K)
largest log-weights of each point, all that k-hat depends on.
Every reported mean comes with its standard error over test points.
"""
import math
from typing import Optional

import numpy as np
import torch

from inference.enumeration import enumeration_size, weight_terms_for
from inference.jackknife import jackknife_log_px
from inference.psis import pareto_khat_from_top, tail_length
from zoo.networks.precision import autocast

ACTIVE_UNIT_THRESHOLD = 0.01
K_SWEEP = (1, 10, 100, 1000, 5000)


CHUNK_FLOATS = 2 ** 21  # floats in one (particles x points x data dim) chunk on a CPU: 8 MiB, elementwise passes in cache
CHUNK_FLOATS_GPU = 2 ** 25  # 128 MiB on an accelerator: enough particles per launch to fill it


def _chunk_sizes(batch: int, num_samples: int, data_dim: int, budget: int = CHUNK_FLOATS):
    per_particle = max(1, batch * max(data_dim, 1))
    chunk = max(1, min(num_samples, budget // per_particle))
    return chunk


@torch.no_grad()
def importance_sample(model, guide, x, y=None, num_samples=5000, batch_size=100, budget=None,
                      keep_log_weights=False, progress=None, precision="fp32"):
    """Run the protocol's sampling over the points of ``x``; returns a dict of per-point numpy arrays.

    ``budget`` bounds the number of floats in one (particles x points x data dim) chunk (default: CHUNK_FLOATS on a
    CPU, CHUNK_FLOATS_GPU elsewhere). Nothing of size K is held: log p(x) is a running float64 logsumexp over chunks,
    and PSIS keeps only the M+1 = O(sqrt K) largest log-weights of each point (all that k-hat depends on,
    :func:`inference.psis.pareto_khat_from_top`), so memory is one chunk whatever K is, unless ``keep_log_weights``
    asks for all (points, K) log-weights (the report's arviz export).
    ``precision="bf16"`` runs the networks under bfloat16 autocast; log-densities and weights stay float32."""
    out = {k: [] for k in ("log_px", "elbo", "recon", "kl", "khat", "log_px_jackknife")}
    sweep = [k for k in K_SWEEP if k < num_samples] + [num_samples]
    sweep_parts = {k: [] for k in sweep}
    means, logw_all = [], []
    n = x.shape[0]
    terms_fn = weight_terms_for(model)  # models with a categorical latent: y summed out inside the weights
    keep = min(num_samples, tail_length(num_samples) + 1)
    if budget is None:
        budget = CHUNK_FLOATS if x.device.type == "cpu" else CHUNK_FLOATS_GPU
    for start in range(0, n, batch_size):
        xb = x[start:start + batch_size]
        yb = None if y is None else y[start:start + batch_size]
        chunk = _chunk_sizes(xb.shape[0], num_samples, x.shape[1] * enumeration_size(model), budget)
        lse, top, finite = None, None, None
        full = x.new_empty((num_samples, xb.shape[0]))  # the batch's (K, b) log-weights: for the jackknife
        elbo_sum, log_obs, kl, zsum = 0.0, 0.0, 0.0, {}
        done = 0
        with autocast(precision, xb.device.type):  # one context a batch: the weights are cast to bf16 once
            while done < num_samples:
                k = min(chunk, num_samples - done)
                t = terms_fn(model, guide, xb, yb, k)
                log_w = t.log_w
                ok = torch.isfinite(log_w).all(0)
                finite = ok if finite is None else finite & ok
                for s_k in sweep:  # the running estimate at each sweep point inside this chunk
                    if done < s_k < done + k:
                        head = torch.logsumexp(log_w[:s_k - done].double(), 0)
                        sweep_parts[s_k].append(((head if lse is None else torch.logaddexp(lse, head))
                                                 - math.log(s_k)).cpu())
                part = torch.logsumexp(log_w.double(), 0)
                lse = part if lse is None else torch.logaddexp(lse, part)
                if done + k in sweep_parts:
                    sweep_parts[done + k].append((lse - math.log(done + k)).cpu())
                pool = log_w if top is None else torch.cat([top, log_w])
                top = pool if pool.shape[0] <= keep else torch.topk(pool, keep, dim=0, sorted=False).values
                full[done:done + k] = log_w
                elbo_sum = elbo_sum + getattr(t, "elbo", log_w).double().sum(0)
                log_obs = log_obs + t.log_obs.sum(0)
                kl = kl + (t.log_q - t.log_prior).sum(0)
                for name, z in t.latents.items():
                    if z.is_floating_point():
                        zsum[name] = zsum.get(name, 0.0) + z.reshape(k, xb.shape[0], -1).sum(0)
                done += k
                if progress is not None:
                    progress.update(k * xb.shape[0])
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise FloatingPointError(f"{bad} test points have non-finite importance weights; the model or guide "
                                     "produced NaN/inf log-densities (nothing is dropped from the estimate)")
        out["log_px"].append((lse - math.log(num_samples)).cpu())
        out["elbo"].append((elbo_sum / num_samples).cpu())
        out["recon"].append((log_obs / num_samples).double().cpu())
        out["kl"].append((kl / num_samples).double().cpu())
        out["khat"].append(_khat(top, num_samples))
        out["log_px_jackknife"].append(jackknife_log_px(full.double()).cpu() if num_samples >= 2
                                       else torch.full((xb.shape[0],), float("nan"), dtype=torch.float64))
        if zsum:
            means.append(torch.cat([zsum[k] / num_samples for k in sorted(zsum)], dim=-1).double().cpu())
        if keep_log_weights:
            logw_all.append(full.T.float().cpu())
    result = {k: torch.cat(v).numpy() for k, v in out.items()}
    result["posterior_means"] = torch.cat(means).numpy() if means else None
    result["log_px_sweep"] = {k: torch.cat(v).numpy() for k, v in sweep_parts.items()}
    if keep_log_weights:
        result["log_weights"] = torch.cat(logw_all).numpy()
    return result


def _khat(top: torch.Tensor, num_samples: int) -> torch.Tensor:
    """PSIS k-hat per point (column) from the (M+1, b) largest log-weights of each point."""
    if num_samples < 5:
        return torch.full((top.shape[1],), float("nan"), dtype=torch.float64)
    return torch.from_numpy(pareto_khat_from_top(top.T.double().cpu().numpy(), num_samples))


def mean_se(values: np.ndarray) -> dict:
    values = np.asarray(values, dtype=np.float64)
    se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")
    return {"mean": float(values.mean()), "se": se}


def active_units(posterior_means: Optional[np.ndarray], threshold: float = ACTIVE_UNIT_THRESHOLD):
    if posterior_means is None or posterior_means.shape[0] < 2:
        return None, None
    var = posterior_means.var(axis=0, ddof=1)
    return int((var > threshold).sum()), int(var.shape[0])


def summarize(samples: dict, num_samples: int, data_dim: int, pixels: bool,
              dequantization_bins: Optional[int] = None) -> dict:
    """The numbers of eval.json from :func:`importance_sample`'s per-point arrays.

    bits/dim = NLL / (D ln 2) for discrete (binary) pixel data; for a model of 8-bit data dequantized to [0, 1]
    (``dequantization_bins=256``: the flow density models) the NLL is that of a density on [0, 1]^D and
    bits/dim = NLL / (D ln 2) + log2(256), the 8-bit data's bits/dim (:func:`zoo.transforms.bits_per_dim`)."""
    nll = -samples["log_px"]
    khat = samples["khat"]
    au, au_of = active_units(samples["posterior_means"])
    finite_k = khat[np.isfinite(khat)]
    summary = {
        "nll": mean_se(nll),
        "neg_elbo": mean_se(-samples["elbo"]),
        "recon": mean_se(samples["recon"]),
        "kl": mean_se(samples["kl"]),
        "active_units": au,
        "latent_units": au_of,
        "psis": {
            "share_khat_above_0.7": float((finite_k > 0.7).mean()) if finite_k.size else None,
            "share_khat_above_0.5": float((finite_k > 0.5).mean()) if finite_k.size else None,
            "median_khat": float(np.median(finite_k)) if finite_k.size else None,
            "max_khat": float(finite_k.max()) if finite_k.size else None,
        },
    }
    sweep = samples.get("log_px_sweep") or {}
    if len(sweep) > 1:  # the estimate from the first k weights: does it still move with K?
        summary["k_sweep"] = [{"K": int(k), "nll": mean_se(-v)} for k, v in sorted(sweep.items())]
    jk = samples.get("log_px_jackknife")
    if jk is not None and num_samples >= 2 and np.isfinite(jk).all():
        summary["nll_jackknife"] = mean_se(-jk)
    if pixels or dequantization_bins:
        to_bits = 1.0 / (data_dim * math.log(2.0))
        shift = math.log2(dequantization_bins) if dequantization_bins else 0.0
        summary["bits_per_dim"] = {"mean": summary["nll"]["mean"] * to_bits + shift,
                                   "se": summary["nll"]["se"] * to_bits}
    return summary
