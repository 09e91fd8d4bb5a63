"""Tests for agm/math/action_matching.py: the AM objective against Gaussian flows whose action is known in
closed form, the action network's head and double backward, the drift, and the trainer in agm.training.loop.train.

For q_t = N(m(t), v(t) I) the particle x = m + √v z moves with velocity m' + (v' / 2v)(x − m), the gradient of

    s*(x, t) = m'(t)·x + v'(t) / (4 v(t)) ‖x − m(t)‖²,

and the objective satisfies L(s* + δ) − L(s*) = ½ ∫ E_{q_t} ‖∇ₓδ‖² dt for every δ.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from helpers import reordered_tol

from agm.math.action_matching import ActionDrift, ActionNet, action_matching_loss
from agm.math.bridge import sample_bridge, schedule_values
from agm.math.solver import euler_maruyama
from agm.training.action_matching_trainer import ActionMatchingTrainer
from agm.training.checkpoints import LATEST, load_checkpoint
from agm.training.loop import train

pytestmark = pytest.mark.usefixtures("one_thread")

Tensor = torch.Tensor
HYPER = dict(sigma_max=0.1, lr_f=1e-3, betas=(0.9, 0.999), weight_decay=0.0, grad_clip=1.0, ema_decay=0.9)


def _sq(x: Tensor) -> Tensor:
    return x.square().flatten(1).sum(1)


def _dot(a: Tensor, x: Tensor) -> Tensor:
    return (a * x).flatten(1).sum(1)


def _col(v: Tensor, like: Tensor) -> Tensor:
    return v.view((-1,) + (1,) * (like.ndim - 1))


@dataclass(frozen=True)
class GaussianFlow:
    """q_t = N(m(t), v(t) I), with m, v and their derivatives as functions of t: (B,)."""

    m: Callable[[Tensor], Tensor]  # (B,) → (B, ...)
    dm: Callable[[Tensor], Tensor]
    v: Callable[[Tensor], Tensor]  # (B,) → (B,)
    dv: Callable[[Tensor], Tensor]

    def action(self, x: Tensor, t: Tensor) -> Tensor:
        """s*(x, t) = m'·x + v'/(4v) ‖x − m‖², differentiable in x and t."""
        return _dot(self.dm(t), x) + self.dv(t) / (4 * self.v(t)) * _sq(x - self.m(t))

    def sample(self, t: Tensor, gen: torch.Generator) -> Tensor:
        m = self.m(t)
        return m + _col(self.v(t).sqrt(), m) * torch.randn(m.shape, generator=gen, dtype=m.dtype)


# a 3-d flow from N(0, I): m = a t + b t², v = exp(k t) (v'/4v = k/4)
A, B_, K = torch.tensor([0.8, -0.4, 0.3]), torch.tensor([-0.5, 0.6, 0.2]), -1.5
POLY = GaussianFlow(
    m=lambda t: t[:, None] * A + t[:, None] ** 2 * B_,
    dm=lambda t: A + 2 * t[:, None] * B_,
    v=lambda t: torch.exp(K * t),
    dv=lambda t: K * torch.exp(K * t),
)


def bridge_flow(mu: Tensor, tau: float, sigma_max: float, schedule: str) -> GaussianFlow:
    """The marginals of agm.math.bridge for data x1 ~ N(μ, τ² I): q_t = N(β μ, (α² + β² τ² + σ²) I)."""

    def sv(t: Tensor):
        return schedule_values(t, sigma_max, schedule)

    def m(t: Tensor) -> Tensor:
        return _col(sv(t).beta, mu[None]) * mu

    def dm(t: Tensor) -> Tensor:
        return _col(sv(t).d_beta, mu[None]) * mu

    def v(t: Tensor) -> Tensor:
        s = sv(t)
        return s.alpha ** 2 + s.beta ** 2 * tau ** 2 + s.sigma ** 2

    def dv(t: Tensor) -> Tensor:
        s = sv(t)
        return 2 * (s.alpha * s.d_alpha + s.beta * s.d_beta * tau ** 2 + s.sigma * s.d_sigma)

    return GaussianFlow(m, dm, v, dv)


def _draws(flow: GaussianFlow, n: int, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Independent samples x0 ~ q_0, x1 ~ q_1, and (x_t ~ q_t, t ~ U[0, 1])."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=gen, dtype=torch.float64)
    x0 = flow.sample(torch.zeros(n, dtype=torch.float64), gen)
    x1 = flow.sample(torch.ones(n, dtype=torch.float64), gen)
    return x0, x1, flow.sample(t, gen), t


def _perturbation(eps: float) -> Callable[[Tensor, Tensor], Tensor]:
    """δ(x, t) = ε [(1 + t) w·x + t ‖x‖² / 2]: differs between t = 0 and 1 and has ∂_t δ ≠ 0."""

    def delta(x: Tensor, t: Tensor) -> Tensor:
        w = torch.linspace(0.5, -1.0, x[0].numel(), dtype=x.dtype).view(x.shape[1:])
        return eps * ((1 + t) * _dot(w, x) + t * _sq(x) / 2)

    return delta


def _grad_x(f: Callable[[Tensor, Tensor], Tensor], x: Tensor, t: Tensor) -> Tensor:
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(f(x, t).sum(), x)[0]


def _check_gap(flow: GaussianFlow, x0: Tensor, x1: Tensor, x_t: Tensor, t: Tensor, eps: float) -> None:
    """ℓ(s* + δ) − ℓ(s*) = ½‖∇δ‖² + (terms of mean 0); the gap itself is clearly positive."""
    delta = _perturbation(eps)
    perturbed = lambda x, t: flow.action(x, t) + delta(x, t)
    gap = (action_matching_loss(perturbed, x0, x1, x_t, t)
           - action_matching_loss(flow.action, x0, x1, x_t, t)).detach()
    half_kinetic = 0.5 * _sq(_grad_x(delta, x_t, t))
    rest = gap - half_kinetic  # δ(x0, 0) − δ(x1, 1) + ∇s*·∇δ + ∂_t δ: mean 0 only at the true action
    se = lambda z: float(z.std() / math.sqrt(len(z)))
    assert abs(float(rest.mean())) < 4 * se(rest), (float(rest.mean()), se(rest))
    assert float(gap.mean()) > 10 * se(gap)
    torch.testing.assert_close(gap.mean(), half_kinetic.mean(), rtol=0.05, atol=0)


# ------------------------------------------------------------------------------------------------
# the objective against closed forms


@pytest.mark.parametrize("eps", [0.3, -0.3])
def test_true_action_minimises_the_loss_and_the_gap_is_half_the_perturbation_energy(eps):
    _check_gap(POLY, *_draws(POLY, 200_000, seed=0), eps)


@pytest.mark.parametrize("schedule", ["cosine", "cosine_squared"])
def test_on_the_bridge_marginals_of_gaussian_data(schedule):
    """x_t from agm.math.bridge.sample_bridge (x0 noise at t = 0, x1 ~ N(μ, τ² I) data at t = 1).

    A point mass at the data end (τ = 0) has v(1) = 0 under both schedules, where s* is singular.
    """
    n, sigma_max, tau = 100_000, 0.1, 0.5
    mu = torch.tensor([[0.6, -0.2], [0.1, 0.9]], dtype=torch.float64)[None]  # one 1×2×2 "image"
    flow = bridge_flow(mu, tau, sigma_max, schedule)
    gen = torch.Generator().manual_seed(1)
    shape = (n, 1, 2, 2)
    x0, eps = (torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(2))
    x1 = mu + tau * torch.randn(shape, generator=gen, dtype=torch.float64)
    t = torch.rand(n, generator=gen, dtype=torch.float64)
    x_t = sample_bridge(x0, x1, t, eps, sigma_max, schedule).x_t
    # the endpoints drawn independently of the bridge's own x0, x1 (the trainer reuses them: same means)
    e0, e1 = torch.randn(shape, generator=gen, dtype=torch.float64), mu + tau * torch.randn(
        shape, generator=gen, dtype=torch.float64)
    _check_gap(flow, e0, e1, x_t, t, eps=0.3)
    _check_gap(flow, x0, x1, x_t, t, eps=0.3)


def test_minimising_over_a_linear_and_quadratic_family_recovers_the_true_action():
    """1-d flow m = a t + b t², v = exp(k t), whose action is
    s* = (k/4) x² + [a + (2b − k a / 2) t − (k b / 2) t²] x + c(t), inside the family
    s_θ = (θ0 + θ1 t + θ2 t²) x + (θ3 + θ4 t) x². The loss is quadratic in θ, so one Newton step from 0
    lands on its minimiser (the Hessian needs create_graph through ∇ₓs). On this family the loss sees
    q_t only through its first two moments, so quadrature points (t on a midpoint grid, z normal
    quantiles rescaled to unit variance) give it without sampling noise."""
    a, b, k = 0.8, -0.5, -1.5
    flow = GaussianFlow(m=lambda t: (a * t + b * t ** 2)[:, None], dm=lambda t: (a + 2 * b * t)[:, None],
                        v=lambda t: torch.exp(k * t), dv=lambda t: k * torch.exp(k * t))
    n_t, n_z = 1000, 64
    z = torch.special.ndtri((torch.arange(n_z, dtype=torch.float64) + 0.5) / n_z)
    z = (z / z.square().mean().sqrt()).repeat(n_t)[:, None]

    def points(t: Tensor) -> Tensor:
        return flow.m(t) + flow.v(t).sqrt()[:, None] * z

    t = ((torch.arange(n_t, dtype=torch.float64) + 0.5) / n_t).repeat_interleave(n_z)
    x0, x1, x_t = points(torch.zeros_like(t)), points(torch.ones_like(t)), points(t)

    def loss(theta: Tensor) -> Tensor:
        def s(x: Tensor, t: Tensor) -> Tensor:
            x = x[:, 0]
            return (theta[0] + theta[1] * t + theta[2] * t ** 2) * x + (theta[3] + theta[4] * t) * x ** 2

        return action_matching_loss(s, x0, x1, x_t, t).mean()

    theta0 = torch.zeros(5, dtype=torch.float64)
    grad = torch.autograd.functional.jacobian(loss, theta0)
    theta = theta0 - torch.linalg.solve(torch.autograd.functional.hessian(loss, theta0), grad)
    expected = torch.tensor([a, 2 * b - k * a / 2, -k * b / 2, k / 4, 0.0], dtype=torch.float64)
    torch.testing.assert_close(theta, expected, rtol=0, atol=1e-4)


def test_action_drift_of_the_true_action_samples_the_data_law():
    """Euler from N(0, I) along ∇ₓs* of the bridge (g = 0) ends at x1's law N(μ, τ² I)."""
    mu = torch.tensor([[0.5, -0.3], [0.2, 0.0]])[None]
    tau, n = 0.1, 4000
    flow = bridge_flow(mu, tau, 0.1, "cosine")
    x = euler_maruyama(ActionDrift(flow.action), (n, 1, 2, 2), nfe=200, g=0.0,
                       generator=torch.Generator().manual_seed(3))  # the model's range, [-1, 1]
    torch.testing.assert_close(x.mean(0), mu, rtol=0, atol=0.01)
    torch.testing.assert_close(x.std(0), torch.full_like(mu, tau), rtol=0.1, atol=0)


# ------------------------------------------------------------------------------------------------
# the action network and its drift


def _randomised(net: ActionNet, seed: int = 0) -> ActionNet:
    """Give the zero-initialised output conv random weights, so s is not identically 0."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.u.conv_out.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return net


def test_action_net_is_zero_at_init_and_at_the_origin(tiny_unet_kwargs):
    torch.manual_seed(0)
    net = ActionNet(**tiny_unet_kwargs)
    x, t = torch.randn(5, 1, 8, 8), torch.rand(5)
    assert torch.equal(net(x, t), torch.zeros(5))
    _randomised(net)
    s = net(x, t)
    assert s.shape == (5,) and s.abs().min() > 0
    assert torch.equal(net(torch.zeros_like(x), t), torch.zeros(5))  # s(0, t) = 0: no free c(t)
    with pytest.raises(ValueError, match="time_scale"):
        ActionNet(time_scale=0.0, **tiny_unet_kwargs)


def test_action_drift_is_the_gradient_of_s(tiny_unet_kwargs):
    """⟨ActionDrift(x, t), v⟩ against central differences of s along random directions v (float64)."""
    torch.manual_seed(0)
    net = _randomised(ActionNet(**tiny_unet_kwargs)).double().eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(4)
    x, v = (torch.randn(3, 1, 8, 8, generator=gen, dtype=torch.float64) for _ in range(2))
    t = torch.rand(3, generator=gen, dtype=torch.float64)
    with torch.no_grad():  # as inside the sampler
        drift = ActionDrift(net)(x, t)
        h = 1e-5
        fd = (net(x + h * v, t) - net(x - h * v, t)) / (2 * h)
    assert drift.shape == x.shape and not drift.requires_grad
    torch.testing.assert_close(_dot(drift, v), fd, rtol=1e-6, atol=1e-8)
    assert float(_sq(drift).min()) > 0


def test_second_derivatives_through_attention(tiny_unet_kwargs):
    """The loss differentiates ∇ₓs in θ: double backward through the U-Net's attention must exist and
    be right (gradgradcheck in x), and every parameter gets a finite gradient."""
    torch.manual_seed(0)
    net = _randomised(ActionNet(**{**tiny_unet_kwargs, "attn_resolutions": (8,)}))
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    t = torch.rand(1, dtype=torch.float64)
    net64 = copy.deepcopy(net).double()
    assert torch.autograd.gradgradcheck(lambda x: net64(x, t), (x,), fast_mode=True)
    gen = torch.Generator().manual_seed(5)
    x0, x1, eps = (torch.randn(4, 1, 8, 8, generator=gen) for _ in range(3))
    tt = torch.rand(4, generator=gen)
    action_matching_loss(net, x0, x1, sample_bridge(x0, x1, tt, eps, 0.1).x_t, tt).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert float(net.u.conv_in.weight.grad.abs().sum()) > 0


def test_double_backward_where_a_fused_attention_kernel_would_be_picked(tiny_unet_kwargs, monkeypatch):
    """Given contiguous q, k, v (as SelfAttention lays them out) the CPU's SDPA picks the flash kernel, whose
    backward has no derivative. ActionNet forces the math backend."""
    sdpa = F.scaled_dot_product_attention

    def contiguous_sdpa(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return sdpa(q.contiguous(), k.contiguous(), v.contiguous())

    monkeypatch.setattr(F, "scaled_dot_product_attention", contiguous_sdpa)
    torch.manual_seed(0)
    net = _randomised(ActionNet(**tiny_unet_kwargs))
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    t = torch.rand(2)
    ds_dx = torch.autograd.grad(_dot(net.u(x, t), x).sum(), x, create_graph=True)[0]
    try:
        ds_dx.square().sum().backward()  # the bare U-Net: the fused kernel's double backward
    except RuntimeError as exc:
        assert "not implemented" in str(exc)
    else:
        pytest.skip("this torch has a double backward for the fused CPU attention kernel")
    net.zero_grad()
    ds_dx = torch.autograd.grad(net(x, t).sum(), x, create_graph=True)[0]
    ds_dx.square().sum().backward()
    assert torch.isfinite(net.u.conv_in.weight.grad).all()


# ------------------------------------------------------------------------------------------------
# the trainer


def _inputs(seed: int = 0, b: int = 8):
    gen = torch.Generator().manual_seed(seed)
    shape = (b, 1, 8, 8)
    x1 = torch.rand(shape, generator=gen) * 2 - 1
    x0, eps, z = (torch.randn(shape, generator=gen) for _ in range(3))
    return x1, x0, eps, torch.rand(b, generator=gen), z


def _make(kwargs: dict, seed: int = 0, **hyper) -> ActionMatchingTrainer:
    torch.manual_seed(seed)
    return ActionMatchingTrainer(_randomised(ActionNet(**kwargs)), **{**HYPER, **hyper})


def test_step_is_one_clipped_adamw_step_on_the_loss_then_ema(tiny_unet_kwargs):
    trainer = _make(tiny_unet_kwargs)
    s0 = copy.deepcopy(trainer.f)
    x1, x0, eps, t, z = _inputs()
    stats = trainer.step(x1, x0, eps, t, z)

    ref = copy.deepcopy(s0)
    opt = torch.optim.AdamW(ref.parameters(), lr=HYPER["lr_f"], betas=HYPER["betas"], weight_decay=0.0)
    x_t = sample_bridge(x0, x1, t, eps, HYPER["sigma_max"]).x_t
    loss = action_matching_loss(ref, x0, x1, x_t, t).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(ref.parameters(), HYPER["grad_clip"])
    opt.step()
    # the trainer runs these same operations on the same shapes in this process: bitwise
    assert torch.equal(stats.action_loss, loss.detach())
    assert float(stats.action_loss) != 0.0
    for p, q in zip(trainer.f.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q)
    d = HYPER["ema_decay"]  # the EMA's lerp against d·θ₀ + (1 − d)·θ₁: 3 roundings each (tests/helpers.py)
    for p_ema, p0, p1 in zip(trainer.ema.model.parameters(), s0.parameters(), ref.parameters(), strict=True):
        scale = float(p0.detach().abs().max() + p1.detach().abs().max())
        torch.testing.assert_close(p_ema, d * p0 + (1 - d) * p1, rtol=0.0,
                                   atol=reordered_tol(p0.dtype, terms=3, scale=scale))
    assert set(vars(stats)) == {"action_loss"} and trainer.V is None


def test_zero_initialised_action_has_zero_loss_and_still_learns(tiny_unet_kwargs):
    torch.manual_seed(0)
    trainer = ActionMatchingTrainer(ActionNet(**tiny_unet_kwargs), **HYPER)
    first = trainer.step(*_inputs(0))
    assert float(first.action_loss) == 0.0  # s ≡ 0
    assert float(trainer.f.u.conv_out.weight.detach().abs().sum()) > 0  # the output conv moved off zero
    assert float(trainer.step(*_inputs(1)).action_loss) != 0.0


def test_state_dict_round_trip_continues_identically(tiny_unet_kwargs):
    a = _make(tiny_unet_kwargs)
    for seed in range(2):
        a.step(*_inputs(seed))
    b = _make(tiny_unet_kwargs, seed=7)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    sa, sb = a.step(*_inputs(2)), b.step(*_inputs(2))
    assert torch.equal(sa.action_loss, sb.action_loss)
    for m, n in ((a.f, b.f), (a.ema.model, b.ema.model)):
        for p, q in zip(m.parameters(), n.parameters(), strict=True):
            assert torch.equal(p, q)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_steps_run_on_cpu(tiny_unet_kwargs, amp):
    if not torch.amp.is_autocast_available("cpu"):
        pytest.skip("this torch build has no CPU autocast")
    trainer = _make(tiny_unet_kwargs, amp=amp)
    assert trainer.scaler.is_enabled() == (amp == "fp16")
    for seed in range(2):
        assert torch.isfinite(trainer.step(*_inputs(seed)).action_loss)


def test_runs_in_the_training_loop_and_resumes(tiny_unet_kwargs, toy_data, tmp_path):
    """agm.training.loop.train drives the trainer; a run stopped at step 3 and resumed equals a straight run."""
    loop = dict(batch_size=8, seed=3, config={"run": "am"}, checkpoint_every=3, log_every=1)
    straight = train(_make(tiny_unet_kwargs), toy_data, steps=5, checkpoint_dir=tmp_path / "a", **loop)
    train(_make(tiny_unet_kwargs), toy_data, steps=3, checkpoint_dir=tmp_path / "b", **loop)
    resumed = train(_make(tiny_unet_kwargs), toy_data, steps=5, checkpoint_dir=tmp_path / "b", **loop)
    assert resumed.resumed_from == 3 and straight.step == resumed.step == 5
    strip = lambda h: [{k: v for k, v in r.items() if k != "step_time_s"} for r in h]
    assert strip(straight.history) == strip(resumed.history)
    assert all(set(r) == {"step", "action_loss", "step_time_s"} and math.isfinite(r["action_loss"])
               for r in straight.history)  # its own quantity, no drift loss or unit-weight statistics
    a, b = (load_checkpoint(tmp_path / run / LATEST)["trainer"] for run in ("a", "b"))
    for key in ("f", "ema"):
        assert a[key].keys() == b[key].keys() and all(torch.equal(a[key][k], b[key][k]) for k in a[key])
