"""The Kalman filter: exact log p(x_1..x_L) of a linear-Gaussian state-space model, per sequence, masked.

    z_1 ~ N(0, Q0),   z_t = A z_{t-1} + w_t,  w_t ~ N(0, Q),   x_t = C z_t + b + v_t,  v_t ~ N(0, R)

Kalman 1960; the prediction-error decomposition log p(x_1..x_T) = sum_t log N(x_t; C m_t|t-1 + b, C P_t|t-1 C^T + R)
(e.g. Murphy 2012, "Machine Learning: a Probabilistic Perspective", section 18.3). A step whose mask is False (the
padding of a shorter sequence) is predicted through and never scored. :func:`brute_force_log_likelihood` builds the
joint Gaussian of x_1..x_T instead (the test's reference), and :func:`posterior_moments` the exact posterior of
z_1..z_T given the observed steps.
"""
import torch


def kalman_log_likelihood(x: torch.Tensor, mask: torch.Tensor, A, C, b, Q, R, Q0) -> torch.Tensor:
    """(B,) log p of the steps of x (B, T, D) where ``mask`` (B, T) is True. A (Dz, Dz), C (D, Dz), b (D,);
    Q, R, Q0 covariance matrices (Dz, Dz), (D, D), (Dz, Dz). Values of masked steps are ignored (NaN allowed)."""
    B, T, D = x.shape
    mask = mask.bool()
    x = torch.where(mask.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))
    dz = A.shape[0]
    eye = torch.eye(dz, dtype=x.dtype, device=x.device)
    m = x.new_zeros(B, dz)
    P = Q0.expand(B, dz, dz)
    total = x.new_zeros(B)
    for t in range(T):
        if t:
            m = m @ A.T
            P = A @ P @ A.T + Q
        S = C @ P @ C.T + R
        S = 0.5 * (S + S.transpose(-1, -2))
        innovation = x[:, t] - m @ C.T - b
        ll = torch.distributions.MultivariateNormal(torch.zeros_like(innovation), covariance_matrix=S).log_prob(
            innovation)
        gain = torch.linalg.solve(S, C @ P).transpose(-1, -2)  # P C^T S^-1 (S symmetric)
        m_new = m + (gain @ innovation.unsqueeze(-1)).squeeze(-1)
        left = eye - gain @ C
        P_new = left @ P @ left.transpose(-1, -2) + gain @ R @ gain.transpose(-1, -2)  # Joseph form
        on = mask[:, t]
        total = total + torch.where(on, ll, torch.zeros_like(ll))
        m = torch.where(on.unsqueeze(-1), m_new, m)
        P = torch.where(on.view(B, 1, 1), P_new, P)
    return total


def state_covariances(A, Q, Q0, T: int) -> torch.Tensor:
    """The prior covariance of z_1..z_T stacked, (T Dz, T Dz): Cov(z_t, z_s) = A^{t-s} Sigma_s for t >= s."""
    dz = A.shape[0]
    marginals = [Q0]
    for _ in range(1, T):
        marginals.append(A @ marginals[-1] @ A.T + Q)
    cov = A.new_zeros(T * dz, T * dz)
    for s in range(T):
        block = marginals[s]
        for t in range(s, T):
            cov[t * dz:(t + 1) * dz, s * dz:(s + 1) * dz] = block
            cov[s * dz:(s + 1) * dz, t * dz:(t + 1) * dz] = block.T
            block = A @ block
    return cov


def _observed_joint(A, C, Q, R, Q0, T: int, observed):
    """(prior covariance of z, the rows of I (x) C for the observed steps, the observation noise covariance)."""
    dz, D = A.shape[0], C.shape[0]
    cov_z = state_covariances(A, Q, Q0, T)
    steps = [t for t in range(T) if observed[t]]
    H = A.new_zeros(len(steps) * D, T * dz)
    for i, t in enumerate(steps):
        H[i * D:(i + 1) * D, t * dz:(t + 1) * dz] = C
    noise = torch.block_diag(*([R] * len(steps))) if steps else A.new_zeros(0, 0)
    return cov_z, H, noise, steps


def brute_force_log_likelihood(x: torch.Tensor, A, C, b, Q, R, Q0, observed=None) -> torch.Tensor:
    """log p of one sequence x (T, D) (of its ``observed`` steps, default all) from the joint Gaussian of x:
    N(vec x; 1 (x) b, H Cov(z) H^T + I (x) R)."""
    T = x.shape[0]
    observed = [True] * T if observed is None else [bool(o) for o in observed]
    cov_z, H, noise, steps = _observed_joint(A, C, Q, R, Q0, T, observed)
    cov_x = H @ cov_z @ H.T + noise
    values = (x[steps] - b).reshape(-1)
    return torch.distributions.MultivariateNormal(torch.zeros_like(values), covariance_matrix=cov_x).log_prob(values)


def posterior_moments(x: torch.Tensor, A, C, b, Q, R, Q0, observed=None):
    """(mean (T Dz,), covariance (T Dz, T Dz)) of p(z_1..z_T | the observed steps of x (T, D)), by conditioning the
    joint Gaussian of (z, x) on x."""
    T = x.shape[0]
    observed = [True] * T if observed is None else [bool(o) for o in observed]
    cov_z, H, noise, steps = _observed_joint(A, C, Q, R, Q0, T, observed)
    cov_x = H @ cov_z @ H.T + noise
    cross = cov_z @ H.T
    values = (x[steps] - b).reshape(-1)
    mean = cross @ torch.linalg.solve(cov_x, values)
    cov = cov_z - cross @ torch.linalg.solve(cov_x, cross.T)
    return mean, 0.5 * (cov + cov.T)
