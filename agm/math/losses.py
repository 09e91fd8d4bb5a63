"""AGM's three losses, per sample; the caller reduces them in plain sight (docs/spec.md §2-§4).

    L_V = mean_i relu(m - V(x_t,i)) + mean_i relu(m + V(z_i)) + μ mean_i [V(x_t,i)² + V(z_i)²]   (10)
    s_i = λ · sigmoid(sg(V(x_t,i))),   w_i = clamp( exp(s_i) / ((1/B) Σ_j exp(s_j)), w_min, w_max ) (11)
    L_f = (1/B) Σ_i w_i ‖f_θ(x_t,i, t_i) − v_t,i‖²                                                  (13)

‖·‖² is the mean over pixels (chosen; docs/spec.md §4).
"""

from __future__ import annotations

import torch


def potential_loss(v_bridge: torch.Tensor, v_noise: torch.Tensor, margin: float, mu: float) -> torch.Tensor:
    """Per-sample terms of Eq. (10); ``.mean()`` of the result is L_V.

    Args:
        v_bridge: V(x_t) on bridge samples of real data, (B,).
        v_noise: V(z) on pure Gaussian noise z, (B,).
        margin: hinge margin m (paper: 1.0).
        mu: L2 regulariser μ on V's outputs (chosen: 0.01).

    Returns:
        (B,) per-sample loss relu(m - V(x_t)) + relu(m + V(z)) + μ (V(x_t)² + V(z)²).
    """
    hinge = torch.relu(margin - v_bridge) + torch.relu(margin + v_noise)
    return hinge + mu * (v_bridge.square() + v_noise.square())


def importance_weights(
    v: torch.Tensor, lam: float, clamp: tuple[float, float], detach: bool = True
) -> torch.Tensor:
    """Eq. (11): w = clamp(B · softmax(λ · sigmoid(sg V)), w_min, w_max), shape (B,).

    Unit batch mean before the clamp. The pipeline calls it with λ > 0 only: a run at λ = 0 has no V and
    unit weights (agm.variants decides that, in one place).

    Args:
        v: potential values V(x_t), (B,).
        lam: strength λ > 0 (paper: 0.1).
        clamp: (w_min, w_max) (chosen: (0.1, 10)).
        detach: the stop-gradient sg(·). ``False`` only reproduces the paper's collapse ablation (§4.4),
            where gradients of L_f reach V through the weights (Eq. 12).
    """
    s = lam * torch.sigmoid((v.detach() if detach else v).float())
    w = s.shape[0] * torch.softmax(s, dim=0)
    return w.clamp(clamp[0], clamp[1])


def drift_loss(f_out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample bridge-matching error ‖f_θ(x_t, t) − v_t‖² (mean over pixels), (B,).

    L_f of Eq. (13) is ``(w * drift_loss(f_out, target)).mean()``.
    """
    return (f_out.float() - target.float()).square().flatten(1).mean(1)
