"""PPO's math as small pure torch functions: advantages, the loss, masking, schedules, init and MoE terms.

No environment and no training loop live here (those are `mdl.runtime`'s trainer); every function is a
pure function of tensors (or, for the init and MoE helpers, of a module) and is unit-tested in
`tests/test_ppo.py`. The details follow CleanRL's `ppo.py` ("The 37 Implementation Details of PPO"):
GAE, per-minibatch advantage normalisation, the clipped surrogate, optional value clipping, an entropy
bonus, a global gradient-norm clip, Adam with eps 1e-5, linear lr annealing, an orthogonal-init option,
approx-KL and clip fraction, explained variance and an optional target-KL early stop.

Rollout layout and the gymnasium 1.x autoreset convention
---------------------------------------------------------
A rollout holds T steps of N environments, stored as [T, N] tensors. Row t is one call of
`envs.step(actions[t])`: `values[t]` is V(obs[t]) for the observation the action was taken in, and
`rewards[t]`, `terminations[t]`, `truncations[t]` are what that call returned. `next_value` [N] is
V(obs[T]), the observation returned by the last step.

gymnasium 1.x vector envs default to NEXT_STEP autoreset: the step that ends an episode returns the
episode's *final* observation, and the *next* call to `step` ignores its action, resets that env and
returns the first observation of the new episode with reward 0 and both flags false. So in the rollout

- obs[t + 1] after a done step t is the final observation, and `values[t + 1]` = V(final observation) is
  exactly the value a truncated episode bootstraps from: `compute_gae` needs no `truncation_values`;
- row t + 1 is a *reset step*: its transition (final obs -> first obs, a dummy action) belongs to no
  episode. Mark such rows in `starts` (see `reset_steps`): `compute_gae` gives them advantage 0, return
  V, and carries nothing across them, and the loss must leave them out (`valid = ~starts`; either drop
  those rows from the flattened batch or pass `mask=valid` to `ppo_loss`).

With SAME_STEP autoreset (obs[t + 1] is already the new episode's first observation) pass
`truncation_values[t]` = V(final observation of the truncated episode, from `info["final_obs"]`) and no
`starts` (there are no reset steps).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass(frozen=True, slots=True)
class PPOConfig:
    """Every PPO setting, with CleanRL's Atari/classic-control defaults where `.mdl` has none.

    Each is a `.mdl` `ppo(...)` argument (`mdl.compiler.experiment.PPO_ARGS`, which checks its range
    and holds the same default: tests/test_ppo.py holds the two equal); the comments say why a default
    differs from CleanRL's.
    """

    lr: float = 2.5e-4  # Adam learning rate at the first update; annealed linearly to 0 when anneal_lr
    gamma: float = 0.99  # discount factor: weight of a reward one step later
    gae_lambda: float = 0.95  # GAE lambda: 0 is one-step TD (low variance, biased), 1 is Monte Carlo
    clip: float = 0.2  # surrogate clipping range: the ratio pi/pi_old counts only within [1-clip, 1+clip]
    epochs: int = 4  # passes over each rollout (the K epochs of the PPO paper)
    minibatches: int = 4  # minibatches per epoch; minibatch size = rollout * envs / minibatches
    rollout: int = 128  # steps per environment per update; batch size = rollout * envs
    ent_coef: float = 0.01  # entropy bonus coefficient (exploration); 0 turns it off
    vf_coef: float = 0.5  # value-loss coefficient in the total loss (shared trunk: policy and value)
    max_grad_norm: float = 0.5  # global gradient-norm clip over all parameters, per minibatch step
    norm_adv: bool = True  # normalise advantages to mean 0, std 1 within each minibatch
    # Clip the value update around the rollout's values by `clip` (CleanRL's default). Off, as in SB3: value
    # clipping does not help (Andrychowicz et al. 2021), and with it CartPole's zoo settings reached 450
    # on 1 of 3 seeds at 100k steps, without it on 2 of 3.
    clip_vloss: bool = False
    target_kl: float | None = None  # stop an update's remaining epochs once approx_kl exceeds this; None: never
    anneal_lr: bool = True  # lr falls linearly from `lr` to 0 over the run (`linear_lr`)
    adam_eps: float = 1e-5  # Adam epsilon; 1e-5 rather than torch's 1e-8, as in OpenAI baselines
    # Re-initialise with `orthogonal_init_` (CleanRL's layer_init, SB3's ortho_init) before training.
    # None: the trainer decides by environment: on for gym ids (Acrobot's zoo settings: -500.0 without
    # it, -84.1 with it, issue 12), off for game2048, where fast_2048 at 1.2M steps (seed 1) scored
    # 5,914 (512 in 58%) with torch's default init and 5,152 (512 in 45%) with it.
    orthogonal_init: bool | None = None
    # Divide rewards by the running std of the discounted return (`RewardScaler`, SB3's
    # `VecNormalize(norm_reward=True)`). On everywhere: 2048's merge rewards reach thousands, and on
    # Acrobot (returns near -100) a shared 64-64 trunk reached -491.9 at 200k steps without it and
    # -85.9 with it (seed 1, orthogonal init both times): unscaled value errors swamp the policy
    # gradient through the shared trunk and the global gradient clip.
    norm_reward: bool = True
    # Normalise observations by their running mean and variance (`mdl.runtime.obsnorm`: gymnasium's
    # `NormalizeObservation`, clipped at 10 as SB3's `VecNormalize`). Off, as in CleanRL and SB3; the
    # rl-zoo turns it on per task (MountainCar, LunarLander, ...). Float observations only (E0412).
    norm_obs: bool = False

    @classmethod
    def from_experiment(cls, algo: Mapping[str, Any]) -> PPOConfig:
        """The config for an experiment's resolved `algo` dict (`ExperimentSpec.algo`); missing keys keep defaults."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(algo) - set(fields))
        if unknown:
            raise ValueError(f"unknown ppo setting(s) {', '.join(unknown)}; expected some of {', '.join(fields)}")
        values: dict[str, Any] = {}
        for key, value in algo.items():
            default = fields[key].default
            if value is None or isinstance(default, bool) or default is None:
                values[key] = value
            else:
                values[key] = type(default)(value)  # int settings stay ints, floats become floats
        return cls(**values)

    def batch_size(self, envs: int) -> int:
        """Transitions per update: `rollout` steps of each of `envs` environments."""
        return self.rollout * envs

    def minibatch_size(self, envs: int) -> int:
        """Transitions per gradient step (the last minibatch may be smaller when it does not divide)."""
        return math.ceil(self.batch_size(envs) / self.minibatches)


# ---------------------------------------------------------------------------------------------------
# Advantages


def reset_steps(terminations: Tensor, truncations: Tensor, first: Tensor | bool = False) -> Tensor:
    """The rows of a NEXT_STEP-autoreset rollout whose transition is a reset step (bool [T, N]).

    Row t is a reset step when step t - 1 ended an episode (terminated or truncated). `first` [N] says
    the same for row 0: whether the last step of the previous rollout ended an episode (False for the
    first rollout after `reset()`). The loss must ignore these rows; `valid = ~reset_steps(...)`.
    """
    done = terminations.bool() | truncations.bool()
    first_row = torch.as_tensor(first, dtype=torch.bool, device=done.device).expand(done.shape[1:])
    return torch.cat([first_row.unsqueeze(0), done[:-1]], dim=0)


def compute_gae(rewards: Tensor, values: Tensor, terminations: Tensor, truncations: Tensor, next_value: Tensor,
                next_termination: Tensor | bool, gamma: float, gae_lambda: float,
                truncation_values: Tensor | None = None, starts: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """GAE(gamma, lambda) advantages and returns for a [T, N] rollout (layout: module docstring).

    For row t, with V' the value of the observation the step returned (values[t + 1], or next_value
    for the last row; truncation_values[t] instead where given and truncations[t]):

        delta[t] = rewards[t] + gamma * V' * (1 - terminations[t]) - values[t]
        adv[t]   = delta[t] + gamma * gae_lambda * (1 - done[t]) * adv[t + 1],  adv[T] = 0

    where done = terminations | truncations. A termination ends the return (no value after a terminal
    state); a truncation bootstraps from the final observation's value but, like a termination, does not
    carry GAE across the episode boundary. `next_termination` [N] (or a bool) marks observation T as
    terminal, so its value is not bootstrapped; it only matters for the last row and may simply be
    `terminations[-1]` (it is OR-ed with it). `starts` [T, N] marks reset steps (`reset_steps`): their
    advantage is 0 and no GAE flows through them. Returns are adv + values (the value targets).

    Inputs may be any float dtype; flags any dtype (nonzero is true). Nothing here needs gradients, so
    the result is computed under no_grad. Returns (advantages, returns), both [T, N] like `values`.
    """
    with torch.no_grad():
        values = values.detach()
        terminated = terminations.bool()
        done = terminated | truncations.bool()
        last_terminal = terminated[-1] | torch.as_tensor(next_termination, dtype=torch.bool, device=values.device)
        terminal = torch.cat([terminated[:-1], last_terminal.unsqueeze(0)], dim=0)
        next_values = torch.cat([values[1:], next_value.detach().reshape(1, -1).to(values.dtype)], dim=0)
        if truncation_values is not None:
            next_values = torch.where(truncations.bool(), truncation_values.detach().to(values.dtype), next_values)
        valid = torch.ones_like(done) if starts is None else ~starts.bool()
        deltas = rewards.to(values.dtype) + gamma * next_values * (~terminal).to(values.dtype) - values
        carry = (~done).to(values.dtype) * (gamma * gae_lambda)
        advantages = torch.zeros_like(values)
        last = torch.zeros_like(values[0])
        for t in reversed(range(values.shape[0])):
            last = torch.where(valid[t], deltas[t] + carry[t] * last, torch.zeros_like(last))
            advantages[t] = last
        return advantages, advantages + values


# ---------------------------------------------------------------------------------------------------
# Reward scaling


class RewardScaler:
    """Rewards divided by a running standard deviation of the discounted return (`norm_reward`).

    The "reward scaling" detail of Engstrom et al. (2020), as gymnasium's `NormalizeReward` and SB3's
    `VecNormalize(norm_reward=True)` do it: per env, G = gamma * G + r; the variance of G over every
    (valid) step seen so far is tracked with Chan's parallel update, and each reward is divided by
    sqrt(var + eps) (no mean is subtracted, so the sign and the optimal policy are unchanged). G restarts
    at 0 after a step that ends an episode. Without it 2048's merge rewards (up to thousands) give value
    losses of 1e4 that swamp the policy gradient under the shared gradient-norm clip.

    `state()` / `load_state()` carry everything (float64 tensors) so a resumed run scales identically.
    """

    def __init__(self, num_envs: int, gamma: float, eps: float = 1e-8):
        self.gamma, self.eps = gamma, eps
        self.returns = torch.zeros(num_envs, dtype=torch.float64)
        self.mean = torch.zeros((), dtype=torch.float64)
        self.var = torch.ones((), dtype=torch.float64)
        self.count = torch.tensor(eps, dtype=torch.float64)  # as gymnasium: no division by 0 at first

    def __call__(self, rewards: Tensor, done: Tensor, valid: Tensor | None = None) -> Tensor:
        """Scale one step's rewards [N] (float32 out); `done` [N] ends episodes after this step;
        `valid` [N] (default all) says which envs' returns update the statistics (not reset steps)."""
        rewards = torch.as_tensor(rewards, dtype=torch.float64)
        self.returns = self.returns * self.gamma + rewards
        batch = self.returns if valid is None else self.returns[torch.as_tensor(valid, dtype=torch.bool)]
        if batch.numel():
            self._update(batch)
        scaled = rewards / torch.sqrt(self.var + self.eps)
        self.returns = torch.where(torch.as_tensor(done, dtype=torch.bool), 0.0, self.returns)
        return scaled.float()

    def _update(self, batch: Tensor) -> None:
        n = float(batch.numel())
        b_mean, b_var = batch.mean(), batch.var(unbiased=False)
        total = self.count + n
        delta = b_mean - self.mean
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + b_var * n + delta**2 * self.count * n / total) / total
        self.count = total

    def state(self) -> dict[str, Tensor]:
        return {"returns": self.returns.clone(), "mean": self.mean.clone(), "var": self.var.clone(),
                "count": self.count.clone()}

    def load_state(self, state: Mapping[str, Tensor]) -> None:
        self.returns, self.mean = state["returns"].double().clone(), state["mean"].double().clone()
        self.var, self.count = state["var"].double().clone(), state["count"].double().clone()


# ---------------------------------------------------------------------------------------------------
# Action masking


def masked_logits(logits: Tensor, action_mask: Tensor | None) -> Tensor:
    """Logits with illegal actions (action_mask false/0) set to the dtype's most negative finite value.

    softmax then gives them probability exactly 0 (exp underflows), and because the value is finite
    rather than -inf, the entropy (sum of p * log p, `entropy_of`) stays finite: 0 * finite = 0, where
    0 * -inf would be nan. Gradients reach only the legal logits. A row with no legal action at all
    becomes uniform over every action (the env should never ask for one). None means all legal.
    """
    if action_mask is None:
        return logits
    return torch.where(action_mask.bool(), logits, torch.finfo(logits.dtype).min)


def policy_log_probs(logits: Tensor, action_mask: Tensor | None = None) -> Tensor:
    """Log-probabilities [B, A] of the categorical policy, illegal actions (action_mask false) having
    probability 0 (their log-probability is a huge negative finite number, never -inf).

    What `torch.distributions.Categorical(logits=masked_logits(...))` computes, without building a
    distribution object (with its argument checks) three times per minibatch: on a small network
    that object costs as much as the network. `sample_actions`, `log_prob_of` and `entropy_of` read it.
    """
    return torch.log_softmax(masked_logits(logits, action_mask), dim=-1)


def sample_actions(log_probs: Tensor) -> Tensor:
    """One action per row [B], drawn from the policy (`torch.multinomial` on the probabilities)."""
    return torch.multinomial(log_probs.exp(), 1).squeeze(-1)


def log_prob_of(log_probs: Tensor, actions: Tensor) -> Tensor:
    """log pi(action) of each row [B]."""
    return log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def entropy_of(log_probs: Tensor) -> Tensor:
    """The policy's entropy in each row [B]; illegal actions add exactly 0 (p = 0 times a finite log p)."""
    return -(log_probs.exp() * log_probs).sum(-1)


# ---------------------------------------------------------------------------------------------------
# The loss


@dataclass(frozen=True, slots=True)
class PPOLoss:
    """`ppo_loss`'s result: `loss` carries gradients; the rest are detached scalars for logging."""

    loss: Tensor  # policy_loss - ent_coef * entropy + vf_coef * value_loss + aux_loss
    policy_loss: Tensor  # clipped surrogate, negated (minimised)
    value_loss: Tensor  # 0.5 * (clipped) squared error to the returns
    entropy: Tensor  # mean policy entropy
    approx_kl: Tensor  # mean of (ratio - 1) - log ratio: unbiased, non-negative estimate of KL(old || new)
    old_approx_kl: Tensor  # mean of -log ratio: the naive estimator, logged by CleanRL for comparison
    clip_fraction: Tensor  # fraction of samples whose ratio lies outside [1 - clip, 1 + clip]
    aux_loss: Tensor  # the MoE balance loss that was added (0 without MoE)

    def metrics(self) -> dict[str, float]:
        """The parts as Python floats (one device sync per value), named as in metrics.jsonl."""
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _mean(x: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return x.mean()
    mask = mask.bool()  # where, not a product: a masked-out entry may hold inf or nan
    return torch.where(mask, x, 0).sum() / mask.sum().clamp(min=1).to(x.dtype)


def normalize_advantages(advantages: Tensor, mask: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """(adv - mean) / (std + eps) over the (masked) entries, std unbiased as in CleanRL.

    With fewer than two entries there is no spread to divide by, so the advantages are only centred.
    """
    if mask is None:  # no host sync here: the loop stays asynchronous on a GPU
        if advantages.numel() < 2:
            return advantages - advantages.mean()
        return (advantages - advantages.mean()) / (advantages.std() + eps)
    mask = mask.bool()
    count = mask.sum()
    centred = advantages - torch.where(mask, advantages, 0).sum() / count.clamp(min=1)
    spread = torch.where(mask, centred, 0).square().sum() / (count - 1).clamp(min=1)
    std = torch.where(count >= 2, spread.sqrt() + eps, torch.ones_like(spread))  # < 2 entries: only centred
    return centred / std


def ppo_loss(new_logprob: Tensor, old_logprob: Tensor, advantages: Tensor, new_value: Tensor, old_value: Tensor,
             returns: Tensor, entropy: Tensor, clip: float, vf_coef: float, ent_coef: float, clip_vloss: bool,
             norm_adv: bool, aux_loss: Tensor | float = 0.0, mask: Tensor | None = None) -> PPOLoss:
    """CleanRL's PPO loss on one minibatch of B samples (every tensor argument is [B]).

    ratio = exp(new_logprob - old_logprob); with A the advantages (normalised per minibatch when
    `norm_adv`), policy_loss = mean(max(-A * ratio, -A * clamp(ratio, 1 - clip, 1 + clip))).
    value_loss = 0.5 * mean((new_value - returns)^2), or when `clip_vloss` the elementwise max of that
    and the error of old_value + clamp(new_value - old_value, -clip, clip). The total is
    policy_loss - ent_coef * mean(entropy) + vf_coef * value_loss + aux_loss, where `aux_loss` is the MoE
    balance loss (`moe_aux_loss`, already scaled by the design's `balance`). `mask` [B] (optional)
    leaves samples out of every mean, e.g. the reset steps of a NEXT_STEP rollout.
    """
    new_value, old_value, returns = new_value.reshape(-1), old_value.reshape(-1), returns.reshape(-1)
    log_ratio = new_logprob - old_logprob
    ratio = log_ratio.exp()
    if norm_adv:
        advantages = normalize_advantages(advantages, mask)
    policy_loss = _mean(torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip, 1 + clip)), mask)

    squared_error = (new_value - returns).square()
    if clip_vloss:
        clipped_value = old_value + (new_value - old_value).clamp(-clip, clip)
        squared_error = torch.max(squared_error, (clipped_value - returns).square())
    value_loss = 0.5 * _mean(squared_error, mask)

    entropy_mean = _mean(entropy, mask)
    aux = torch.as_tensor(aux_loss, dtype=policy_loss.dtype, device=policy_loss.device)
    loss = policy_loss - ent_coef * entropy_mean + vf_coef * value_loss + aux
    with torch.no_grad():
        approx_kl = _mean((ratio - 1) - log_ratio, mask)
        old_approx_kl = _mean(-log_ratio, mask)
        clip_fraction = _mean(((ratio - 1).abs() > clip).to(ratio.dtype), mask)
    return PPOLoss(loss, policy_loss.detach(), value_loss.detach(), entropy_mean.detach(), approx_kl,
                   old_approx_kl, clip_fraction, aux.detach())


def explained_variance(values: Tensor, returns: Tensor) -> float:
    """1 - Var(returns - values) / Var(returns): 1 is a perfect critic, 0 no better than a constant.

    nan when the returns have no variance (as CleanRL). Population variances over all entries.
    """
    values, returns = values.detach().double().reshape(-1), returns.detach().double().reshape(-1)
    var_returns = returns.var(unbiased=False)
    if var_returns == 0:
        return math.nan
    return float(1 - (returns - values).var(unbiased=False) / var_returns)


# ---------------------------------------------------------------------------------------------------
# Optimisation helpers


def linear_lr(update: int, total_updates: int, lr: float) -> float:
    """The learning rate for update number `update` (0-based) of `total_updates`, falling linearly to 0.

    update 0 uses `lr`, update k uses lr * (1 - k / total_updates), so the last one (total_updates - 1)
    uses lr / total_updates and the schedule would reach 0 one update later (CleanRL's schedule).
    Set it before each update: `for group in optimizer.param_groups: group["lr"] = linear_lr(...)`.
    """
    if total_updates <= 0:
        return lr
    return lr * max(0.0, 1.0 - update / total_updates)


def _last_layer(module: nn.Module) -> nn.Module | None:
    layers = [m for m in module.modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)]
    return layers[-1] if layers else None


def _init_layer(layer: nn.Module, gain: float) -> None:
    nn.init.orthogonal_(layer.weight, gain)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)


def orthogonal_init_(module: nn.Module, policy: nn.Module | None = None, value: nn.Module | None = None,
                     gain: float = math.sqrt(2), policy_gain: float = 0.01, value_gain: float = 1.0) -> nn.Module:
    """CleanRL's `layer_init` over a whole network, in place; returns `module`.

    Every nn.Linear / Conv1d / Conv2d gets orthogonal weights with gain sqrt(2) and zero biases; then
    the policy head gets gain 0.01 (near-uniform initial policy) and the value head gain 1. The heads
    are the given modules, else the submodules named `policy` and `value` (the `.mdl` outputs); a head
    that is a container has its last linear layer initialised. Other parameters (embeddings, norms,
    attention in-projections, MoE expert weights) keep their initialisation.
    """
    with torch.no_grad():
        named = dict(module.named_modules())
        policy = policy if policy is not None else named.get("policy")
        value = value if value is not None else named.get("value")
        for layer in module.modules():
            if isinstance(layer, nn.Linear | nn.Conv1d | nn.Conv2d):
                _init_layer(layer, gain)
        for head, head_gain in ((policy, policy_gain), (value, value_gain)):
            layer = _last_layer(head) if head is not None else None
            if layer is not None:
                _init_layer(layer, head_gain)
    return module


def minibatch_indices(batch_size: int, minibatches: int, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> list[Tensor]:
    """A random permutation of range(batch_size) split into `minibatches` index tensors.

    The pieces partition the batch; when `minibatches` does not divide `batch_size` the first pieces
    are one longer (`torch.tensor_split`). Draw a fresh split each epoch; pass a seeded `generator`
    for reproducibility.
    """
    if not 1 <= minibatches <= max(batch_size, 1):
        raise ValueError(f"minibatches={minibatches} must be between 1 and the batch size {batch_size}")
    permutation = torch.randperm(batch_size, generator=generator)
    if device is not None:
        permutation = permutation.to(device)
    return list(torch.tensor_split(permutation, minibatches))


def global_grad_norm_clip(parameters: Iterable[Tensor], max_norm: float) -> Tensor:
    """Scale all gradients together so that their global L2 norm is at most `max_norm`, in place.

    A thin wrapper over `torch.nn.utils.clip_grad_norm_`; returns the norm before clipping (log it).
    Call between `loss.backward()` and `optimizer.step()`.
    """
    return nn.utils.clip_grad_norm_(parameters, max_norm, foreach=True)


UPDATE_LOGGED = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "aux_loss")


@dataclass(frozen=True, slots=True)
class Batch:
    """One rollout flattened to B = T * N samples for the update (`mdl.runtime.rollout` builds it)."""

    obs: Tensor  # [B, *obs]
    mask: Tensor | None  # [B, actions] legal actions, or None when the env has no mask
    actions: Tensor  # [B]
    logprobs: Tensor  # [B] log pi_old(action)
    advantages: Tensor  # [B]
    returns: Tensor  # [B]
    values: Tensor  # [B] V_old(obs)
    valid: Tensor  # [B] False on the reset steps of a NEXT_STEP rollout (left out of every mean)


def update(module: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch, cfg: PPOConfig,
           generator: torch.Generator, value_of: Any, moe: bool = False) -> dict[str, float]:
    """`cfg.epochs` passes of `cfg.minibatches` clipped-surrogate steps over `batch` (CleanRL's inner
    loop): a fresh shuffle per epoch from `generator`, the global grad-norm clip, and the target-KL
    early stop after an epoch. `value_of(outputs)` reads the value head as [B]; `moe` adds the MoE
    balance loss. Returns the mean of each `UPDATE_LOGGED` term over the minibatch steps taken. Raises
    FloatingPointError before the optimizer step when a loss is not finite."""
    module.train()
    sums = dict.fromkeys(UPDATE_LOGGED, 0.0)
    count = 0
    device = batch.actions.device
    for _epoch in range(cfg.epochs):
        for idx in minibatch_indices(batch.actions.shape[0], cfg.minibatches, generator, device=device):
            outputs = module(batch.obs[idx])
            log_probs = policy_log_probs(outputs["policy"], batch.mask[idx] if batch.mask is not None else None)
            result = ppo_loss(
                log_prob_of(log_probs, batch.actions[idx]), batch.logprobs[idx], batch.advantages[idx],
                value_of(outputs), batch.values[idx], batch.returns[idx], entropy_of(log_probs), cfg.clip,
                cfg.vf_coef, cfg.ent_coef, cfg.clip_vloss, cfg.norm_adv,
                aux_loss=moe_aux_loss(module) if moe else 0.0, mask=batch.valid[idx])
            if not torch.isfinite(result.loss):
                raise FloatingPointError(f"the loss became {float(result.loss.detach())}")
            optimizer.zero_grad(set_to_none=True)
            result.loss.backward()
            global_grad_norm_clip(module.parameters(), cfg.max_grad_norm)
            optimizer.step()
            for key in UPDATE_LOGGED:
                sums[key] += float(getattr(result, key))
            count += 1
        if cfg.target_kl is not None and float(result.approx_kl) > cfg.target_kl:
            break
    return {k: v / count for k, v in sums.items()}


# ---------------------------------------------------------------------------------------------------
# Mixture-of-experts terms


def _moe_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in module.named_modules() if isinstance(getattr(m, "aux_loss", None), Tensor)]


def moe_aux_loss(module: nn.Module) -> Tensor:
    """The sum of `aux_loss` over every submodule that has one (the MoE layers), from their last forward.

    Each MoE layer's `aux_loss` is already its `balance` coefficient times the Switch balance loss, so
    add the sum to the PPO loss as it is. Call it right after the minibatch's forward pass. A module
    without MoE layers gives 0.
    """
    total: Tensor | None = None
    for _, layer in _moe_layers(module):
        total = layer.aux_loss if total is None else total + layer.aux_loss
    if total is None:
        parameter = next(module.parameters(), None)
        return torch.zeros((), device=parameter.device if parameter is not None else None)
    return total


def moe_stats(module: nn.Module) -> dict[str, list[float]]:
    """Per-layer expert usage from the last forward: module name -> token_fraction per expert.

    token_fraction[e] is the share of routing assignments that chose expert e (before capacity drops);
    uniform routing gives 1 / experts each. Layers that have not run a forward yet are left out.
    """
    stats: dict[str, list[float]] = {}
    for name, layer in _moe_layers(module):
        fraction = getattr(layer, "stats", {}).get("token_fraction")
        if fraction is not None:
            stats[name] = [float(f) for f in fraction.detach().cpu()]
    return stats
