"""mdl.runtime.ppo: each pure PPO function against a slow reference or a hand-computed case."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mdl.compiler.experiment import PPO_ARGS
from mdl.compiler.ops.moe import MoE
from mdl.runtime.ppo import (
    PPOConfig,
    RewardScaler,
    compute_gae,
    entropy_of,
    explained_variance,
    global_grad_norm_clip,
    linear_lr,
    log_prob_of,
    masked_logits,
    minibatch_indices,
    moe_aux_loss,
    moe_stats,
    normalize_advantages,
    orthogonal_init_,
    policy_log_probs,
    ppo_loss,
    reset_steps,
    sample_actions,
)

# ---------------------------------------------------------------------------------------------------
# PPOConfig


def test_config_defaults_match_the_language() -> None:
    config = PPOConfig()
    for arg in PPO_ARGS:
        assert getattr(config, arg.name) == arg.default, arg.name


def test_config_from_experiment() -> None:
    config = PPOConfig.from_experiment({"lr": 1e-3, "epochs": 20, "minibatches": 1, "gamma": 0.98})
    assert config.lr == 1e-3 and config.epochs == 20 and isinstance(config.epochs, int)
    assert config.gamma == 0.98 and config.clip == 0.2 and config.norm_adv
    assert config.batch_size(8) == 8 * 128 and PPOConfig(rollout=10, minibatches=3).minibatch_size(1) == 4
    with pytest.raises(ValueError, match="unknown ppo setting"):
        PPOConfig.from_experiment({"learning_rate": 1e-3})


# ---------------------------------------------------------------------------------------------------
# compute_gae


def gae_reference(rewards, values, terminations, truncations, next_value, gamma, lam,
                  truncation_values=None, starts=None):
    """Per env, per step: sum_k (gamma * lam)^k * delta[t + k] until the episode (or rollout) ends."""
    t_len, n_envs = rewards.shape
    adv = np.zeros((t_len, n_envs))
    for n in range(n_envs):
        deltas = []
        for t in range(t_len):
            if truncations[t, n] and truncation_values is not None:
                bootstrap = truncation_values[t, n]
            elif t + 1 < t_len:
                bootstrap = values[t + 1, n]
            else:
                bootstrap = next_value[n]
            if terminations[t, n]:
                bootstrap = 0.0
            deltas.append(rewards[t, n] + gamma * bootstrap - values[t, n])
        for t in range(t_len):
            if starts is not None and starts[t, n]:
                continue
            total, weight = 0.0, 1.0
            for k in range(t, t_len):
                if starts is not None and starts[k, n]:
                    break
                total += weight * deltas[k]
                if terminations[k, n] or truncations[k, n]:
                    break
                weight *= gamma * lam
            adv[t, n] = total
    return adv, adv + values


@st.composite
def rollouts(draw):
    t_len = draw(st.integers(1, 12))
    n_envs = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    p_term, p_trunc = draw(st.floats(0, 0.5)), draw(st.floats(0, 0.5))
    terminations = rng.random((t_len, n_envs)) < p_term
    truncations = (rng.random((t_len, n_envs)) < p_trunc) & ~terminations
    return dict(rewards=rng.normal(size=(t_len, n_envs)), values=rng.normal(size=(t_len, n_envs)),
                terminations=terminations, truncations=truncations, next_value=rng.normal(size=n_envs),
                truncation_values=rng.normal(size=(t_len, n_envs)),
                gamma=draw(st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0])),
                lam=draw(st.sampled_from([0.0, 0.8, 0.95, 1.0])))


def _t(x):
    return torch.as_tensor(x)


@settings(max_examples=150, deadline=None)
@given(rollouts(), st.booleans())
def test_gae_matches_reference(r, use_truncation_values) -> None:
    tv = r["truncation_values"] if use_truncation_values else None
    adv, ret = compute_gae(_t(r["rewards"]), _t(r["values"]), _t(r["terminations"]), _t(r["truncations"]),
                           _t(r["next_value"]), False, r["gamma"], r["lam"],
                           truncation_values=None if tv is None else _t(tv))
    ref_adv, ref_ret = gae_reference(r["rewards"], r["values"], r["terminations"], r["truncations"],
                                     r["next_value"], r["gamma"], r["lam"], tv)
    np.testing.assert_allclose(adv.numpy(), ref_adv, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ret.numpy(), ref_ret, rtol=1e-10, atol=1e-10)


@settings(max_examples=100, deadline=None)
@given(rollouts(), st.booleans())
def test_gae_with_reset_steps_matches_reference(r, first) -> None:
    starts = reset_steps(_t(r["terminations"]), _t(r["truncations"]), first).numpy()
    adv, ret = compute_gae(_t(r["rewards"]), _t(r["values"]), _t(r["terminations"]), _t(r["truncations"]),
                           _t(r["next_value"]), False, r["gamma"], r["lam"], starts=_t(starts))
    ref_adv, _ = gae_reference(r["rewards"], r["values"], r["terminations"], r["truncations"],
                               r["next_value"], r["gamma"], r["lam"], starts=starts)
    np.testing.assert_allclose(adv.numpy(), ref_adv, rtol=1e-10, atol=1e-10)
    assert (adv.numpy()[starts] == 0).all()
    np.testing.assert_allclose(ret.numpy()[starts], r["values"][starts])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["step", "term", "trunc"]), min_size=1, max_size=15),
       st.integers(0, 2**31 - 1), st.sampled_from([0.9, 1.0]), st.sampled_from([0.5, 0.95, 1.0]))
def test_next_step_autoreset_equals_same_step_layout(kinds, seed, gamma, lam) -> None:
    """A NEXT_STEP rollout (reset rows after each done) gives on its real rows the advantages of the same
    episodes stored without reset rows, truncations bootstrapping from V(final observation)."""
    rng = np.random.default_rng(seed)
    n = len(kinds)
    rewards, values = rng.normal(size=n), rng.normal(size=n)
    final_values = rng.normal(size=n)  # V(final observation) of each step that ends an episode
    next_value = rng.normal()
    term = np.array([k == "term" for k in kinds])
    trunc = np.array([k == "trunc" for k in kinds])
    # The same steps with a reset row after every done (obs = final obs, reward 0, no flags).
    rows_r, rows_v, rows_term, rows_trunc, real = [], [], [], [], []
    for i in range(n):
        if i > 0 and (term[i - 1] or trunc[i - 1]):
            rows_r.append(0.0)
            rows_v.append(final_values[i - 1])
            rows_term.append(False)
            rows_trunc.append(False)
            real.append(False)
        rows_r.append(rewards[i])
        rows_v.append(values[i])
        rows_term.append(term[i])
        rows_trunc.append(trunc[i])
        real.append(True)
    # After the last step, obs[T] is the final observation when it ended an episode.
    last_next = final_values[-1] if (term[-1] or trunc[-1]) else next_value

    def col(x, dtype=torch.float64):
        return torch.tensor(np.asarray(x), dtype=dtype).reshape(-1, 1)

    rows_term_t, rows_trunc_t = col(rows_term, torch.bool), col(rows_trunc, torch.bool)
    starts = reset_steps(rows_term_t, rows_trunc_t)
    adv_next, _ = compute_gae(col(rows_r), col(rows_v), rows_term_t, rows_trunc_t, col([last_next]).reshape(1),
                              False, gamma, lam, starts=starts)
    truncation_values = col(final_values)
    adv_same, _ = compute_gae(col(rewards), col(values), col(term, torch.bool), col(trunc, torch.bool),
                              col([last_next if (term[-1] or trunc[-1]) else next_value]).reshape(1), False,
                              gamma, lam, truncation_values=truncation_values)
    np.testing.assert_allclose(adv_next[torch.tensor(real)].numpy(), adv_same.numpy(), atol=1e-12)
    assert starts.reshape(-1).tolist() == [not x for x in real]


def test_gae_gamma_one_lambda_one_is_the_sum_of_rewards() -> None:
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [-1.0], [4.0]])
    flags = torch.zeros(3, 1, dtype=torch.bool)
    adv, ret = compute_gae(rewards, values, flags, flags, torch.tensor([10.0]), False, 1.0, 1.0)
    assert ret.reshape(-1).tolist() == [16.0, 15.0, 13.0]  # rewards to go + bootstrap 10
    assert adv.reshape(-1).tolist() == [15.5, 16.0, 9.0]


def test_gae_discounted_returns() -> None:
    rewards = torch.tensor([[1.0], [1.0]])
    flags = torch.zeros(2, 1, dtype=torch.bool)
    _, ret = compute_gae(rewards, torch.zeros(2, 1), flags, flags, torch.tensor([2.0]), False, 0.5, 1.0)
    assert ret.reshape(-1).tolist() == [1 + 0.5 * 1 + 0.25 * 2, 1 + 0.5 * 2]


def test_termination_stops_bootstrapping() -> None:
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.0], [7.0], [0.0]])
    term = torch.tensor([[False], [True], [False]])
    trunc = torch.zeros(3, 1, dtype=torch.bool)
    _, ret = compute_gae(rewards, values, term, trunc, torch.tensor([100.0]), False, 1.0, 1.0)
    assert ret.reshape(-1).tolist() == [3.0, 2.0, 103.0]  # nothing flows past the terminal step 1
    # next_termination: the observation after the rollout is terminal, so next_value is not used.
    _, ret = compute_gae(rewards, values, trunc, trunc, torch.tensor([100.0]), torch.tensor([True]), 1.0, 1.0)
    assert ret.reshape(-1).tolist() == [6.0, 5.0, 3.0]


def test_truncation_bootstraps_with_the_given_value() -> None:
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.0], [7.0], [0.0]])
    term = torch.zeros(3, 1, dtype=torch.bool)
    trunc = torch.tensor([[False], [True], [False]])
    final = torch.tensor([[0.0], [50.0], [0.0]])
    adv, ret = compute_gae(rewards, values, term, trunc, torch.tensor([100.0]), False, 1.0, 1.0,
                           truncation_values=final)
    assert ret.reshape(-1).tolist() == [53.0, 52.0, 103.0]
    # Without truncation_values (NEXT_STEP layout) the bootstrap is the next row's value.
    _, ret = compute_gae(rewards, values, term, trunc, torch.tensor([100.0]), False, 1.0, 1.0)
    assert ret.reshape(-1).tolist() == [3.0, 2.0, 103.0]
    # GAE does not cross the boundary: with lambda 1 and gamma 1, step 0's advantage stops at step 1.
    adv, _ = compute_gae(rewards, values, term, trunc, torch.tensor([100.0]), False, 1.0, 1.0,
                         truncation_values=final)
    assert adv.reshape(-1).tolist() == [53.0, 45.0, 103.0]


def test_reset_steps() -> None:
    term = torch.tensor([[True, False], [False, False], [False, True]])
    trunc = torch.tensor([[False, False], [False, True], [False, False]])
    starts = reset_steps(term, trunc, torch.tensor([False, True]))
    assert starts.tolist() == [[False, True], [True, False], [False, True]]


# ---------------------------------------------------------------------------------------------------
# Masking


def test_masked_policy_matches_torchs_categorical_with_zero_probability_for_illegal_actions() -> None:
    torch.manual_seed(0)
    logits = torch.randn(64, 4, requires_grad=True)
    mask = torch.rand(64, 4) < 0.5
    mask[:, 0] |= ~mask.any(dim=1)  # at least one legal action per row
    log_probs = policy_log_probs(logits, mask)
    probs = log_probs.exp()
    assert (probs[~mask] == 0).all() and torch.isfinite(log_probs).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(64))
    # the reference: torch's Categorical over the legal actions only (-inf logits elsewhere)
    reference = torch.distributions.Categorical(logits=torch.where(mask, logits, -math.inf))
    torch.testing.assert_close(probs, reference.probs)
    actions = sample_actions(log_probs)
    assert mask[torch.arange(64), actions].all()
    torch.testing.assert_close(log_prob_of(log_probs, actions), reference.log_prob(actions))
    entropy = entropy_of(log_probs)
    legal = torch.where(mask, logits, -math.inf).log_softmax(-1)
    torch.testing.assert_close(entropy, -(legal.exp() * torch.where(mask, legal, 0)).sum(-1))
    entropy.sum().backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad[~mask] == 0).all()
    single = policy_log_probs(torch.zeros(1, 4), torch.tensor([[False, False, True, False]]))
    assert entropy_of(single).item() == 0.0 and log_prob_of(single, torch.tensor([2])).item() == 0.0


def test_sampling_follows_the_policy() -> None:
    torch.manual_seed(1)
    log_probs = torch.tensor([[0.1, 0.2, 0.7, 0.0]]).log().expand(20_000, 4)
    counts = torch.bincount(sample_actions(log_probs), minlength=4).float() / 20_000
    torch.testing.assert_close(counts, torch.tensor([0.1, 0.2, 0.7, 0.0]), atol=0.015, rtol=0)


def test_masked_logits_none_is_identity() -> None:
    logits = torch.randn(3, 4)
    assert masked_logits(logits, None) is logits


# ---------------------------------------------------------------------------------------------------
# ppo_loss


def _loss(**overrides):
    base = dict(new_logprob=torch.zeros(4), old_logprob=torch.zeros(4), advantages=torch.tensor([1.0, -2.0, 3.0, 0.5]),
                new_value=torch.zeros(4), old_value=torch.zeros(4), returns=torch.zeros(4),
                entropy=torch.zeros(4), clip=0.2, vf_coef=0.5, ent_coef=0.01, clip_vloss=False, norm_adv=False)
    base.update(overrides)
    return ppo_loss(**base)


def test_ratio_one_policy_loss_is_minus_mean_advantage() -> None:
    out = _loss()
    assert out.policy_loss.item() == pytest.approx(-0.625)
    assert out.approx_kl.item() == 0 and out.clip_fraction.item() == 0
    out = _loss(norm_adv=True)  # normalised advantages have mean 0
    assert out.policy_loss.item() == pytest.approx(0.0, abs=1e-7)


def test_clipping_caps_the_objective() -> None:
    # ratios 1.5 (A>0: capped at 1.2), 0.5 (A>0: not capped, pessimistic), 1.5 (A<0: not capped),
    # 0.5 (A<0: capped at 0.8)
    ratio = torch.tensor([1.5, 0.5, 1.5, 0.5])
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    out = _loss(new_logprob=ratio.log(), advantages=adv)
    assert out.policy_loss.item() == pytest.approx(-(1.2 + 0.5 - 1.5 - 0.8) / 4)
    assert out.clip_fraction.item() == 1.0
    expected_kl = ((ratio - 1) - ratio.log()).mean().item()
    assert out.approx_kl.item() == pytest.approx(expected_kl)
    assert out.old_approx_kl.item() == pytest.approx(-ratio.log().mean().item())


def test_clip_fraction_and_approx_kl_on_known_ratios() -> None:
    ratio = torch.tensor([1.0, 1.1, 1.3, 0.7])
    out = _loss(new_logprob=ratio.log())
    assert out.clip_fraction.item() == 0.5  # 1.3 and 0.7 lie outside [0.8, 1.2]
    r = np.array([1.0, 1.1, 1.3, 0.7])
    assert out.approx_kl.item() == pytest.approx(np.mean(r - 1 - np.log(r)), rel=1e-6)
    assert out.approx_kl.item() >= 0


def test_gradient_of_the_clipped_surrogate_vanishes_when_clipped() -> None:
    new_logprob = torch.tensor([math.log(1.5), math.log(1.1)], requires_grad=True)
    out = ppo_loss(new_logprob, torch.zeros(2), torch.tensor([1.0, 1.0]), torch.zeros(2), torch.zeros(2),
                   torch.zeros(2), torch.zeros(2), 0.2, 0.5, 0.0, False, False)
    out.loss.backward()
    assert new_logprob.grad[0].item() == 0.0 and new_logprob.grad[1].item() == pytest.approx(-1.1 / 2)


def test_value_loss_and_value_clipping() -> None:
    new_value, old_value, returns = torch.tensor([1.0, 0.1]), torch.tensor([0.0, 0.0]), torch.tensor([2.0, 1.0])
    plain = _loss(new_value=new_value, old_value=old_value, returns=returns, clip_vloss=False)
    assert plain.value_loss.item() == pytest.approx(0.5 * (1.0 + 0.81) / 2)
    clipped = _loss(new_value=new_value, old_value=old_value, returns=returns, clip_vloss=True)
    # sample 0: clipped prediction 0.2 has error 1.8 -> max(1, 3.24); sample 1: within the clip range
    assert clipped.value_loss.item() == pytest.approx(0.5 * (3.24 + 0.81) / 2)


def test_total_loss_combines_the_parts() -> None:
    aux = torch.tensor(0.3)
    out = _loss(entropy=torch.full((4,), 1.2), new_value=torch.ones(4), returns=torch.zeros(4), aux_loss=aux)
    expected = out.policy_loss - 0.01 * 1.2 + 0.5 * out.value_loss + 0.3
    assert out.loss.item() == pytest.approx(expected.item())
    assert out.entropy.item() == pytest.approx(1.2) and out.aux_loss.item() == pytest.approx(0.3)
    assert set(out.metrics()) >= {"loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction"}


def test_mask_equals_dropping_samples() -> None:
    torch.manual_seed(1)
    tensors = dict(new_logprob=torch.randn(10) * 0.1, old_logprob=torch.randn(10) * 0.1, advantages=torch.randn(10),
                   new_value=torch.randn(10), old_value=torch.randn(10), returns=torch.randn(10),
                   entropy=torch.rand(10))
    mask = torch.tensor([True, False] * 5)
    tensors["advantages"][~mask] = math.inf  # garbage in masked-out rows must not leak
    masked = ppo_loss(**tensors, clip=0.2, vf_coef=0.5, ent_coef=0.01, clip_vloss=True, norm_adv=True, mask=mask)
    dropped = ppo_loss(**{k: v[mask] for k, v in tensors.items()}, clip=0.2, vf_coef=0.5, ent_coef=0.01,
                       clip_vloss=True, norm_adv=True)
    for key, value in dropped.metrics().items():
        assert masked.metrics()[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key


def cleanrl_loss(newlogprob, b_logprobs, mb_advantages, newvalue, b_values, b_returns, entropy, clip_coef,
                 vf_coef, ent_coef):
    """CleanRL ppo.py's minibatch loss, transcribed line by line (norm_adv and clip_vloss on)."""
    logratio = newlogprob - b_logprobs
    ratio = logratio.exp()
    approx_kl = ((ratio - 1) - logratio).mean()
    clipfrac = ((ratio - 1.0).abs() > clip_coef).float().mean()
    mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
    pg_loss1 = -mb_advantages * ratio
    pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    pg_loss = torch.max(pg_loss1, pg_loss2).mean()
    v_loss_unclipped = (newvalue - b_returns) ** 2
    v_clipped = b_values + torch.clamp(newvalue - b_values, -clip_coef, clip_coef)
    v_loss_clipped = (v_clipped - b_returns) ** 2
    v_loss = 0.5 * torch.max(v_loss_unclipped, v_loss_clipped).mean()
    entropy_loss = entropy.mean()
    loss = pg_loss - ent_coef * entropy_loss + v_loss * vf_coef
    return loss, pg_loss, v_loss, entropy_loss, approx_kl, clipfrac


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 64), st.integers(0, 2**31 - 1), st.sampled_from([0.1, 0.2, 0.3]))
def test_ppo_loss_matches_cleanrl(batch, seed, clip) -> None:
    g = torch.Generator().manual_seed(seed)
    new_logprob, old_logprob = -torch.rand(batch, generator=g) * 2, -torch.rand(batch, generator=g) * 2
    args = (new_logprob, old_logprob, torch.randn(batch, generator=g), torch.randn(batch, generator=g),
            torch.randn(batch, generator=g), torch.randn(batch, generator=g), torch.rand(batch, generator=g))
    ours = ppo_loss(*args, clip=clip, vf_coef=0.5, ent_coef=0.01, clip_vloss=True, norm_adv=True)
    theirs = cleanrl_loss(*args, clip, 0.5, 0.01)
    for name, value in zip(("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction"), theirs,
                           strict=True):
        torch.testing.assert_close(getattr(ours, name), value.detach(), msg=name)


def test_gae_accepts_float_flags_and_float32() -> None:
    torch.manual_seed(0)
    rewards, values, next_value = torch.randn(5, 3), torch.randn(5, 3), torch.randn(3)
    term = torch.rand(5, 3) < 0.3
    trunc = (torch.rand(5, 3) < 0.3) & ~term
    adv, ret = compute_gae(rewards, values, term.float(), trunc.float(), next_value, torch.zeros(3), 0.99, 0.95)
    assert adv.dtype == ret.dtype == torch.float32 and adv.shape == (5, 3)
    ref_adv, _ = compute_gae(rewards.double(), values.double(), term, trunc, next_value.double(), False, 0.99, 0.95)
    torch.testing.assert_close(adv, ref_adv.float())


def test_normalize_advantages() -> None:
    adv = torch.tensor([1.0, 2.0, 3.0, 6.0])
    normed = normalize_advantages(adv)
    assert normed.mean().item() == pytest.approx(0.0, abs=1e-7)
    assert normed.std().item() == pytest.approx(1.0, rel=1e-6)
    assert normalize_advantages(torch.tensor([5.0])).tolist() == [0.0]
    masked = normalize_advantages(torch.tensor([1.0, 100.0, 3.0]), torch.tensor([True, False, True]))
    assert masked[[0, 2]].tolist() == pytest.approx([-1 / (math.sqrt(2) + 1e-8), 1 / (math.sqrt(2) + 1e-8)])
    single = normalize_advantages(torch.tensor([4.0, 7.0]), torch.tensor([False, True]))
    assert single[1].item() == 0.0


# ---------------------------------------------------------------------------------------------------
# Helpers


def test_explained_variance() -> None:
    returns = torch.tensor([1.0, 2.0, 5.0, -3.0])
    assert explained_variance(returns.clone(), returns) == pytest.approx(1.0)
    assert explained_variance(torch.full((4,), 7.0), returns) == pytest.approx(0.0)
    assert math.isnan(explained_variance(torch.zeros(3), torch.ones(3)))


def test_linear_lr_endpoints() -> None:
    assert linear_lr(0, 100, 3e-4) == 3e-4
    assert linear_lr(50, 100, 3e-4) == pytest.approx(1.5e-4)
    assert linear_lr(99, 100, 3e-4) == pytest.approx(3e-6)
    assert linear_lr(100, 100, 3e-4) == 0.0 and linear_lr(150, 100, 3e-4) == 0.0


def assert_gain(weight: torch.Tensor, gain: float) -> None:
    """An orthogonal matrix times `gain` has every singular value equal to `gain`."""
    singular_values = torch.linalg.svdvals(weight.detach().double())
    torch.testing.assert_close(singular_values, torch.full_like(singular_values, gain), rtol=1e-5, atol=1e-7)


def test_orthogonal_init_gains_by_name() -> None:
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16))
            self.policy = nn.Linear(16, 4)
            self.value = nn.Linear(16, 1)

    net = orthogonal_init_(Net())
    for layer in (net.trunk[0], net.trunk[2]):
        assert_gain(layer.weight, math.sqrt(2))
        assert (layer.bias == 0).all()
    assert_gain(net.policy.weight, 0.01)
    assert_gain(net.value.weight, 1.0)
    assert (net.policy.bias == 0).all() and (net.value.bias == 0).all()


def test_orthogonal_init_heads_as_arguments() -> None:
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 3)), nn.Linear(8, 1))
    orthogonal_init_(net, policy=net[2], value=net[3])
    assert_gain(net[2][1].weight, 0.01)  # a container head: its last linear layer
    assert_gain(net[2][0].weight, math.sqrt(2))
    assert_gain(net[3].weight, 1.0)


@pytest.mark.parametrize(("batch", "minibatches"), [(16, 4), (10, 3), (7, 7), (5, 1)])
def test_minibatch_indices_partition_the_batch(batch, minibatches) -> None:
    parts = minibatch_indices(batch, minibatches, torch.Generator().manual_seed(0))
    assert len(parts) == minibatches
    assert sorted(torch.cat(parts).tolist()) == list(range(batch))
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1
    again = minibatch_indices(batch, minibatches, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(parts, again, strict=True))
    with pytest.raises(ValueError):
        minibatch_indices(4, 5)


def test_global_grad_norm_clip() -> None:
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
    norm = global_grad_norm_clip([a, b], 1.0)
    assert norm.item() == pytest.approx(5.0)
    total = torch.cat([a.grad, b.grad]).norm().item()
    assert total == pytest.approx(1.0, rel=1e-5)


# ---------------------------------------------------------------------------------------------------
# MoE terms


class TwoMoE(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = MoE(8, experts=4, hidden=16, top_k=2, balance=0.01)
        self.second = nn.Sequential(nn.Linear(8, 8), MoE(8, experts=2, hidden=8, top_k=1, balance=0.1))
        self.policy = nn.Linear(8, 3)

    def forward(self, x):
        return self.policy(self.second(self.first(x)))


def test_moe_aux_loss_sums_the_layers() -> None:
    torch.manual_seed(0)
    net = TwoMoE()
    net(torch.randn(5, 8)).sum()
    total = moe_aux_loss(net)
    assert total.item() > 0
    torch.testing.assert_close(total, net.first.aux_loss + net.second[1].aux_loss)
    total.backward()
    assert net.first.router.weight.grad is not None and net.first.router.weight.grad.abs().sum() > 0
    assert moe_aux_loss(nn.Linear(2, 2)).item() == 0.0


def test_moe_stats_per_layer_token_fractions() -> None:
    torch.manual_seed(0)
    net = TwoMoE()
    assert moe_stats(net) == {}
    net(torch.randn(6, 8))
    stats = moe_stats(net)
    assert set(stats) == {"first", "second.1"}
    assert len(stats["first"]) == 4 and len(stats["second.1"]) == 2
    for fractions in stats.values():
        assert sum(fractions) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------------
# RewardScaler


def test_reward_scaler_divides_by_the_std_of_every_discounted_return_seen() -> None:
    rng = np.random.default_rng(0)
    gamma, n_envs = 0.9, 3
    scaler = RewardScaler(n_envs, gamma)
    running, seen = np.zeros(n_envs), []
    for _ in range(200):
        rewards = rng.exponential(50.0, size=n_envs)
        done = rng.random(n_envs) < 0.1
        scaled = scaler(torch.as_tensor(rewards), torch.as_tensor(done))
        running = running * gamma + rewards  # the reference: plain numpy over every return so far
        seen.extend(running)
        std = np.std(seen)  # population std; the scaler's eps-sized prior count is negligible
        np.testing.assert_allclose(scaled.numpy(), rewards / std, rtol=1e-5)
        running[done] = 0.0
    assert scaled.dtype == torch.float32


def test_reward_scaler_leaves_invalid_rows_out_and_round_trips_its_state() -> None:
    scaler = RewardScaler(2, 0.99)
    scaler(torch.tensor([1.0, 100.0]), torch.tensor([False, False]), valid=torch.tensor([True, False]))
    assert float(scaler.mean) == pytest.approx(1.0)  # only env 0's return entered the statistics
    twin = RewardScaler(2, 0.99)
    twin.load_state(scaler.state())
    rewards, done = torch.tensor([3.0, 4.0]), torch.tensor([True, False])
    assert torch.equal(scaler(rewards, done), twin(rewards, done))
    assert torch.equal(scaler.returns, twin.returns) and scaler.returns[0] == 0  # done resets G


def test_orthogonal_init_is_decided_by_the_environment() -> None:
    assert PPOConfig().orthogonal_init is None  # the trainer: on for gym ids, off for game2048
    assert PPOConfig.from_experiment({"orthogonal_init": True}).orthogonal_init is True


def test_reward_scaling_is_on_by_default() -> None:
    assert PPOConfig().norm_reward is True
    assert PPOConfig.from_experiment({"lr": 1e-3}).norm_reward is True
    assert PPOConfig.from_experiment({"norm_reward": False}).norm_reward is False
