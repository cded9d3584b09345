"""The one adapter between the zoo's per-point importance weights and arviz's ``InferenceData`` (netCDF) format.

A report writes, per run, ``importance.nc``: an ``InferenceData`` with one group ``importance`` holding

* ``log_weights`` (point, sample): log p(x_i, z_ik) - log q(z_ik | x_i) of the evaluation's K samples per test point,
* ``khat`` (point): the PSIS Pareto k-hat of each point's K log-weights (< 0.5 good, 0.5-0.7 usable, > 0.7 unreliable),
* ``labels`` (point), when the data have labels,

and the protocol in the group's attributes (run, data, split, K). Only this module touches arviz's container API
(``InferenceData``, ``to_netcdf``, ``from_netcdf``): when arviz 1.x replaces it (xarray ``DataTree``), this is the one
place to change, and :func:`read_importance` keeps returning plain numpy arrays.
"""
import os
import warnings
from typing import Optional

import numpy as np

from inference.atomic_write import write_atomic

GROUP = "importance"
FILENAME = "importance.nc"


def to_inference_data(log_weights, khat, labels=None, attrs: Optional[dict] = None):
    """An ``arviz.InferenceData`` holding the log-weights (point, sample) and k-hat (point)."""
    import arviz as az
    import xarray as xr

    log_weights = np.asarray(log_weights)
    khat = np.asarray(khat, dtype=np.float64).reshape(-1)
    if log_weights.ndim != 2 or log_weights.shape[0] != khat.shape[0]:
        raise ValueError(f"log_weights must be (points, samples) with one k-hat per point; got "
                         f"{log_weights.shape} and {khat.shape}")
    variables = {"log_weights": (("point", "sample"), log_weights), "khat": (("point",), khat)}
    if labels is not None:
        variables["labels"] = (("point",), np.asarray(labels).reshape(-1))
    clean = {k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in (attrs or {}).items() if v is not None}
    ds = xr.Dataset(variables, coords={"point": np.arange(log_weights.shape[0]),
                                       "sample": np.arange(log_weights.shape[1])}, attrs=clean)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a group outside arviz's schema is allowed; arviz may say so
        if hasattr(az, "InferenceData"):
            return az.InferenceData(**{GROUP: ds})
        return az.from_dict({GROUP: ds})  # pragma: no cover - arviz >= 1.0 (DataTree)


def write_importance(path: str, log_weights, khat, labels=None, attrs: Optional[dict] = None) -> str:
    """Write ``importance.nc`` (netCDF through arviz); returns the path."""
    idata = to_inference_data(log_weights, khat, labels, attrs)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomic(path, lambda tmp: idata.to_netcdf(tmp))
    return path


def read_importance(path: str) -> dict:
    """``{"log_weights": (B, K), "khat": (B,), "labels": (B,) or None, "attrs": {...}}`` from ``importance.nc``."""
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = az.from_netcdf(path)
    ds = idata[GROUP] if not hasattr(idata, GROUP) else getattr(idata, GROUP)
    return {"log_weights": np.asarray(ds["log_weights"].values), "khat": np.asarray(ds["khat"].values),
            "labels": np.asarray(ds["labels"].values) if "labels" in ds else None, "attrs": dict(ds.attrs)}
