"""Annealed importance sampling (AIS) of log p(x) for any zoo model with real-valued latents, and its reverse run for
bidirectional Monte Carlo (BDMC).

AIS (Neal 2001), as Wu, Burda, Salakhutdinov & Grosse 2017 ("On the quantitative analysis of decoder-based generative
models") apply it to decoder-based models: a geometric path of unnormalised densities from a normalised start f_0 to
the joint p(x, z) of one data point x,

    gamma_t(z) = f_0(z)^(1 - beta_t) p(x, z)^beta_t,     0 = beta_0 < beta_1 < ... < beta_T = 1,

with f_0 = q(z | x) (the guide: ``start="guide"``) or f_0 = p(z) (the prior: ``start="prior"``; then
gamma_t = p(z) p(x | z)^beta_t). A chain starts at z_0 ~ f_0, and at each step t it adds
(beta_t - beta_(t-1)) [log p(x, z) - log f_0(z)] at its current z to its log-weight, then moves z by a Hamiltonian
Monte Carlo transition that leaves gamma_t invariant (``leapfrog`` steps, identity mass, a step size per chain and
point adapted towards the acceptance rate ``target_accept``, as Wu et al. do). E[w] = p(x), so

    log p(x) ~= log (1/C) sum_c w_c      (a stochastic lower bound: E[log of it] <= log p(x)).

Reverse AIS (Grosse, Ghahramani & Adams 2015, "Sandwiching the marginal likelihood using bidirectional Monte Carlo"):
on data simulated from the model, (x, z*) ~ p(x, z), z* is an exact sample of p(z | x) = gamma_T / p(x); running the
schedule backwards from z* gives weights with E[w_rev] = 1 / p(x), hence the stochastic upper bound
-log (1/C) sum_c w_rev,c (:meth:`AnnealedImportanceSampler.bdmc`). The gap between the two bounds on simulated data
says how far AIS with that T can be off for this model; it shrinks to 0 as T grows.

Everything is written on Pyro traces: log p(x, z) is the model conditioned on the chains' latents
(``poutine.condition``) under a plate of C chains left of the model's plates, log q(z | x) the guide conditioned the
same way; points are processed in batches, so memory is C x batch x the model's size whatever T is.
"""
import copy
import math
from typing import Dict, NamedTuple, Optional

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample
from torch.distributions import constraints

from inference.importance import _site_log_prob
from zoo.errors import ConfigError


def sigmoid_schedule(num_steps: int, radius: float = 4.0) -> torch.Tensor:
    """beta_0 = 0 < ... < beta_T = 1 along a sigmoid (Grosse et al. 2015's schedule): small steps at both ends,
    where the intermediate distributions change fastest. Float64, length T + 1."""
    if num_steps < 1:
        raise ConfigError(f"AIS needs T >= 1 intermediate distributions, got {num_steps}")
    if num_steps == 1:
        return torch.tensor([0.0, 1.0], dtype=torch.float64)
    t = torch.linspace(-radius, radius, num_steps + 1, dtype=torch.float64)
    s = torch.sigmoid(t)
    return (s - s[0]) / (s[-1] - s[0])


def _analytic(fn) -> bool:
    """A Gaussian (possibly made Independent) guide site: its log q at any z is exact and cheap."""
    while isinstance(fn, torch.distributions.Independent):
        fn = fn.base_dist
    return isinstance(fn, torch.distributions.Normal)


def _is_real(support) -> bool:
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return support is constraints.real


class _Joint(NamedTuple):
    log_start: torch.Tensor   # (C, B) log f_0(z)
    log_joint: torch.Tensor   # (C, B) log p(x, z)


class AnnealedImportanceSampler:
    """AIS over the latents of ``model`` for data points x, with ``guide`` as the start (or the prior).

    Example::

        ais = AnnealedImportanceSampler(model, guide, num_steps=500, num_chains=16)
        log_px = ais.log_likelihood(x)["log_px"]          # (B,), float64
    """

    def __init__(self, model, guide=None, num_steps: int = 500, num_chains: int = 16, leapfrog: int = 10,
                 start: str = "auto", target_accept: float = 0.65, initial_step_size: float = 0.05):
        self.model, self.guide = model, guide
        self.betas = sigmoid_schedule(int(num_steps))
        self.num_steps, self.num_chains, self.leapfrog = int(num_steps), int(num_chains), int(leapfrog)
        if self.num_chains < 1 or self.leapfrog < 1:
            raise ConfigError(f"AIS needs at least one chain and one leapfrog step, got {num_chains} and {leapfrog}")
        self.target_accept, self.initial_step_size = float(target_accept), float(initial_step_size)
        self.start = self._choose_start(start)
        self.adapt_rate = 1.02  # step-size factor per transition while adapting

    # ------------------------------------------------------------------------------------------------ traces
    def _model_trace(self, x, y, latents: Optional[Dict[str, torch.Tensor]], C: int, uncondition=False):
        program = self.model
        if latents is not None:
            program = poutine.condition(program, data=latents)
        if uncondition:
            program = poutine.uncondition(program)
        with pyro.plate("ais_chains", C, dim=-(self.model.max_plate_nesting + 1)):
            return poutine.trace(program).get_trace(x, y)

    def _guide_trace(self, x, y, latents: Optional[Dict[str, torch.Tensor]], C: int):
        program = self.guide if latents is None else poutine.condition(self.guide, data=latents)
        with pyro.plate("ais_chains", C, dim=-(getattr(self.guide, "max_plate_nesting", 1) + 1)):
            return poutine.trace(program).get_trace(x, y)

    @staticmethod
    def _latent_sites(trace):
        return [(name, site) for name, site in trace.nodes.items()
                if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)
                and not site["infer"].get("was_observed")]  # an observed site that poutine.uncondition sampled

    def _choose_start(self, start: str) -> str:
        if start not in ("auto", "guide", "prior"):
            raise ConfigError(f"AIS start must be auto, guide or prior, got {start!r}")
        if start == "prior" or self.guide is None:
            return "prior"
        if start == "guide":
            return "guide"
        return "guide_if_analytic"

    def _check(self, x, y):
        """Real-valued latents only: HMC moves in R^n (a discrete or constrained latent is refused in one line).
        ``start="auto"`` settles here: the guide when its density can be evaluated at any z in closed form (diagonal
        Gaussian sites), else the prior (a flow's inverse may not be analytic)."""
        if self.start == "guide_if_analytic":
            gtrace = self._guide_trace(x[:1], None if y is None else y[:1], None, 1)
            self.start = "guide" if all(_analytic(site["fn"]) for _, site in self._latent_sites(gtrace)) else "prior"
        trace = self._model_trace(x[:1], None if y is None else y[:1], None, 1)
        sites = self._latent_sites(trace)
        if not sites:
            raise ConfigError("AIS needs latent variables; this model has none (its log-likelihood is exact: use "
                              "the default estimator)")
        for name, site in sites:
            fn = site["fn"]
            if getattr(fn, "has_enumerate_support", False) and site["infer"].get("enumerate") or \
                    fn.support.is_discrete:
                raise ConfigError(f"AIS moves continuous latents by Hamiltonian Monte Carlo; latent {name!r} is "
                                  f"discrete: use the default importance-sampling estimator for this model")
            if not _is_real(fn.support):
                raise ConfigError(f"AIS moves latents in R^n; latent {name!r} lives on {fn.support} (e.g. a "
                                  f"sphere): use the default importance-sampling estimator for this model")

    def _terms(self, x, y, latents, C) -> _Joint:
        shape = (C, x.shape[0])
        trace = self._model_trace(x, y, latents, C)
        log_joint, log_prior = x.new_zeros(shape), x.new_zeros(shape)
        for name, site in trace.nodes.items():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            lp = _site_log_prob(site, shape)
            log_joint = log_joint + lp
            if name in latents:  # conditioned on the chains' values, so Pyro marks them observed
                log_prior = log_prior + lp
        if self.start == "prior":
            return _Joint(log_prior, log_joint)
        gtrace = self._guide_trace(x, y, latents, C)
        log_q = x.new_zeros(shape)
        for name, site in gtrace.nodes.items():
            if site["type"] == "sample" and name in latents:
                log_q = log_q + _site_log_prob(site, shape)
        return _Joint(log_q, log_joint)

    def _initial(self, x, y, C) -> Dict[str, torch.Tensor]:
        if self.start == "prior":
            trace = self._model_trace(x, y, None, C)
        else:
            trace = self._guide_trace(x, y, None, C)
        return {name: site["value"].detach() for name, site in self._latent_sites(trace)}

    def _log_gamma(self, x, y, z, beta, C):
        """(log gamma_beta(z), its gradient in z, and the two terms), all (C, B) / like z."""
        with torch.enable_grad():
            zs = {k: v.detach().requires_grad_(True) for k, v in z.items()}
            terms = self._terms(x, y, zs, C)
            beta = terms.log_joint.new_tensor(float(beta))
            log_gamma = (1 - beta) * terms.log_start + beta * terms.log_joint
            grads = torch.autograd.grad(log_gamma.sum(), list(zs.values()))
        return log_gamma.detach(), dict(zip(zs, grads)), _Joint(terms.log_start.detach(), terms.log_joint.detach())

    # ------------------------------------------------------------------------------------------------ HMC
    def _hmc(self, x, y, z, beta, eps, C):
        """One HMC transition leaving gamma_beta invariant, per (chain, point); returns z, accepted, terms."""
        log_gamma0, grad, terms0 = self._log_gamma(x, y, z, beta, C)
        p = {k: torch.randn_like(v) for k, v in z.items()}

        def scaled(step, like):
            return step.reshape(step.shape + (1,) * (like.dim() - step.dim()))

        kinetic0 = sum((v ** 2).reshape(C, x.shape[0], -1).sum(-1) for v in p.values()) / 2
        z_new = dict(z)
        p = {k: p[k] + scaled(eps, p[k]) / 2 * grad[k] for k in p}
        for step in range(self.leapfrog):
            z_new = {k: z_new[k] + scaled(eps, p[k]) * p[k] for k in z_new}
            log_gamma, grad, terms = self._log_gamma(x, y, z_new, beta, C)
            if step < self.leapfrog - 1:
                p = {k: p[k] + scaled(eps, p[k]) * grad[k] for k in p}
        p = {k: p[k] + scaled(eps, p[k]) / 2 * grad[k] for k in p}
        kinetic = sum((v ** 2).reshape(C, x.shape[0], -1).sum(-1) for v in p.values()) / 2
        log_accept = (log_gamma - kinetic) - (log_gamma0 - kinetic0)
        accept = torch.log(torch.rand_like(log_accept)) < log_accept  # NaN compares False: rejected
        out = {k: torch.where(scaled(accept, z[k]), z_new[k], z[k]) for k in z}
        kept = _Joint(torch.where(accept, terms.log_start, terms0.log_start),
                      torch.where(accept, terms.log_joint, terms0.log_joint))
        return out, accept, kept

    @torch.no_grad()
    def run(self, x, y=None, reverse_from: Optional[Dict[str, torch.Tensor]] = None, progress=None,
            step_sizes: Optional[torch.Tensor] = None, num_chains: Optional[int] = None) -> dict:
        """AIS log-weights for the points x: ``{"log_w": (C, B), "acceptance": (B,), "step_sizes": (T + 1, B)}``;
        forward from f_0, or, with ``reverse_from`` (latents (C, B, ...) exact posterior samples), the reverse run
        from beta = 1 to 0.

        ``step_sizes`` (T + 1, B): the HMC step size of each point at each beta_j, fixed (the transitions then leave
        each gamma_j invariant whatever the chain did before, so E[w] = p(x) holds exactly). Without it the step sizes
        adapt during the run towards ``target_accept`` and are returned per beta (geometric mean over chains): a
        step size chosen from the chain's own past acceptances makes the kernel depend on the states it moves, and the
        invariance argument behind E[w] = p(x) no longer holds exactly, so :meth:`log_likelihood` and :meth:`bdmc`
        adapt in a pilot run (a quarter of the chains) and then run with the pilot's schedule fixed."""
        if self.start == "guide_if_analytic":
            self._check(x, y)
        C, B = num_chains or self.num_chains, x.shape[0]
        z = self._initial(x, y, C) if reverse_from is None else {k: v.detach().clone() for k, v in reverse_from.items()}
        T = len(self.betas) - 1
        index = list(range(T + 1)) if reverse_from is None else list(range(T, -1, -1))
        betas = [float(self.betas[j]) for j in index]
        adapt = step_sizes is None
        eps = x.new_full((C, B), self.initial_step_size)
        schedule = x.new_empty((T + 1, B))
        accept_rate = x.new_full((C, B), self.target_accept)
        accepted = x.new_zeros((C, B))
        log_w = x.new_zeros((C, B), dtype=torch.float64)
        _, _, terms = self._log_gamma(x, y, z, betas[0], C)
        for t in range(1, len(betas)):
            log_w += (betas[t] - betas[t - 1]) * (terms.log_joint - terms.log_start).double()
            if not adapt:
                eps = step_sizes[index[t]].to(x.dtype).expand(C, B)
            schedule[index[t]] = eps.log().mean(0).exp()
            z, accept, terms = self._hmc(x, y, z, betas[t], eps, C)
            a = accept.to(eps.dtype)
            accepted += a
            if adapt:
                accept_rate = 0.9 * accept_rate + 0.1 * a
                eps = (eps * torch.where(accept_rate > self.target_accept, self.adapt_rate, 1 / self.adapt_rate)
                       ).clamp(1e-4, 1.0)
            if progress is not None:
                progress.update(B * C // self.num_chains)
        schedule[index[0]] = schedule[index[1]] if T >= 1 else self.initial_step_size
        return {"log_w": log_w, "acceptance": (accepted / (len(betas) - 1)).mean(0), "step_sizes": schedule}

    @property
    def pilot_chains(self) -> int:
        """Chains of the pilot run that adapts the step sizes (a quarter of the chains, at least one)."""
        return max(1, self.num_chains // 4)

    def adapt_step_sizes(self, x, y=None, progress=None) -> torch.Tensor:
        """The pilot: a forward run over max(50, ceil(T / 5)) steps (at most T) of the same kind of schedule with step sizes adapted per
        point towards ``target_accept`` (the adaptation rate raised to match: per unit of beta, as many doublings as
        the full run would make), its log step sizes then interpolated in beta onto the T + 1 betas; that schedule
        is used fixed by the runs whose weights count. Cost: about (1/5) (1/4) of the main run's."""
        T = len(self.betas) - 1
        pilot = copy.copy(self)
        pilot_steps = min(T, max(50, math.ceil(T / 5)))  # at least 50 transitions to adapt in
        pilot.betas = sigmoid_schedule(pilot_steps)
        pilot.adapt_rate = self.adapt_rate ** (T / pilot_steps)
        short = pilot.run(x, y, num_chains=self.pilot_chains)["step_sizes"]  # (pilot_steps + 1, B)
        if progress is not None:
            progress.update(x.shape[0] * pilot_steps * self.pilot_chains // self.num_chains)
        pb = pilot.betas.to(x.device)
        full = self.betas.to(x.device)
        hi = torch.searchsorted(pb, full).clamp(1, pilot_steps)
        w = ((full - pb[hi - 1]) / (pb[hi] - pb[hi - 1])).to(x.dtype).unsqueeze(-1)
        log_eps = short.log()
        return ((1 - w) * log_eps[hi - 1] + w * log_eps[hi]).exp()

    def log_likelihood(self, x, y=None, progress=None) -> dict:
        """Forward AIS: per point, log p(x) ~= logmeanexp over chains (a stochastic lower bound), with the step sizes
        of a pilot run held fixed."""
        self._check(x, y)
        schedule = self.adapt_step_sizes(x, y, progress)
        out = self.run(x, y, progress=progress, step_sizes=schedule)
        return {"log_px": _log_mean_exp(out["log_w"]), "acceptance": out["acceptance"]}


    def simulate(self, n: int, like: torch.Tensor):
        """(x, z*) ~ p(x, z): n data points drawn from the model with their exact latents (z* repeated for the C
        chains); ``like`` is a batch of real data that gives the shapes."""
        like = like[:n] if like.shape[0] >= n else like[:1].expand(n, *like.shape[1:])
        trace = self._model_trace(like, None, None, 1, uncondition=True)
        x = trace.nodes["x"]["value"].detach().reshape(like.shape).clone()
        latents = {name: site["value"].detach().expand((self.num_chains,) + site["value"].shape[1:]).clone()
                   for name, site in self._latent_sites(trace)}
        return x, latents

    def bdmc(self, n: int, like: torch.Tensor, progress=None) -> dict:
        """Bidirectional Monte Carlo on n points simulated from the model: per point the forward AIS lower bound,
        the reverse AIS upper bound and their gap (>= 0 up to Monte Carlo error, -> 0 as T grows)."""
        self._check(like, None)
        x, latents = self.simulate(n, like)
        schedule = self.adapt_step_sizes(x, None, progress)  # one fixed schedule for both directions
        forward = self.run(x, None, progress=progress, step_sizes=schedule)
        reverse = self.run(x, None, reverse_from=latents, progress=progress, step_sizes=schedule)
        lower, upper = _log_mean_exp(forward["log_w"]), -_log_mean_exp(reverse["log_w"])
        return {"x": x, "lower": lower, "upper": upper, "gap": upper - lower,
                "acceptance": (forward["acceptance"] + reverse["acceptance"]) / 2}


def _log_mean_exp(log_w: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


def parse_estimator(spec: str):
    """``is`` -> None; ``ais:T`` -> T (a positive integer); anything else is a one-line ConfigError."""
    if spec in (None, "", "is"):
        return None
    name, _, steps = str(spec).partition(":")
    if name == "ais" and steps.isdigit() and int(steps) >= 1:
        return int(steps)
    raise ConfigError(f"--estimator must be is or ais:T with T >= 1 annealing steps (e.g. ais:500), got {spec!r}")


def evaluate_ais(model, guide, x, y=None, num_steps: int = 500, num_chains: int = 16, leapfrog: int = 10,
                 batch_size: int = 100, bdmc_points: int = 0, progress=None) -> tuple:
    """AIS over the points of ``x`` in batches (memory: chains x batch x the model), and BDMC on ``bdmc_points``
    points simulated from the model; returns (the eval.json part, per-point AIS log p(x) as numpy)."""
    import time

    import numpy as np

    from inference.evaluation import mean_se

    sampler = AnnealedImportanceSampler(model, guide, num_steps, num_chains, leapfrog)
    t0 = time.perf_counter()
    log_px, acceptance = [], []
    for start in range(0, x.shape[0], batch_size):
        out = sampler.log_likelihood(x[start:start + batch_size], None if y is None else y[start:start + batch_size],
                                     progress=progress)
        log_px.append(out["log_px"].cpu())
        acceptance.append(out["acceptance"].double().cpu())
    log_px = torch.cat(log_px).numpy()
    part = {"estimator": f"AIS, T = {num_steps} geometric-path steps (sigmoid schedule) from "
                         f"{'q(z|x)' if sampler.start == 'guide' else 'p(z)'} to p(x, z), {num_chains} chains per "
                         f"point, HMC with {leapfrog} leapfrog steps, step size adapted to "
                         f"{sampler.target_accept:.2f} acceptance; log p(x) ~= logmeanexp over chains (a stochastic "
                         f"lower bound)",
            "steps": num_steps, "chains": num_chains, "leapfrog": leapfrog, "start": sampler.start,
            "nll": mean_se(-log_px), "acceptance": float(torch.cat(acceptance).mean()),
            "seconds": time.perf_counter() - t0}
    if bdmc_points:
        t1 = time.perf_counter()
        b = sampler.bdmc(int(bdmc_points), x, progress=progress)
        part["bdmc"] = {"points": int(bdmc_points), "data": "simulated from the model, (x, z*) ~ p(x, z)",
                        "lower": mean_se(b["lower"].cpu().numpy()), "upper": mean_se(b["upper"].cpu().numpy()),
                        "gap": mean_se(b["gap"].cpu().numpy()), "seconds": time.perf_counter() - t1,
                        "gap_per_point": [float(v) for v in b["gap"].cpu()]}
    return part, np.asarray(log_px)
