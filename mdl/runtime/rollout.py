"""Collecting experience: the experiment's vector env, and `Rollout`, which steps it T times with the
current policy and turns the steps into the flattened `ppo.Batch` an update trains on.

Rollout storage is [T, N, ...] (layout and the NEXT_STEP autoreset convention: `mdl.runtime.ppo`'s
docstring). A row that follows a done step is a reset step: `ppo.reset_steps` marks it, `compute_gae`
skips it and the loss leaves it out (`Batch.valid`). Rewards are scaled before GAE when the run has a
`RewardScaler`; the episode statistics see them unscaled. With `norm_obs` the buffers hold the
observations normalised as they arrived (`TrainState.observe`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mdl.compiler.experiment import EnvSpec
from mdl.runtime import ppo
from mdl.runtime.trainstate import TrainState, action_mask


def make_envs(env: EnvSpec, seed: int):
    """The vector env of an experiment, from its kind's entry point (every kind autoresets NEXT_STEP)."""
    kind = env.definition
    return kind.entry()(env.envs, seed=seed, **({"id": env.id} if kind.takes_id else {}))


def value_of(outputs: dict[str, torch.Tensor]) -> torch.Tensor:
    return outputs["value"].reshape(-1)  # [B, 1] or [B] -> [B]


class Rollout:
    """The rollout buffers of one run, reused every update."""

    def __init__(self, steps: int, state: TrainState, obs_shape: tuple[int, ...]):
        num_envs, dev = state.next_obs.shape[0], state.device
        self.steps, self.num_envs, self.obs_shape = steps, num_envs, obs_shape
        T = steps
        self.obs = torch.zeros((T, num_envs, *obs_shape), dtype=state.obs_dtype, device=dev)
        self.mask = (torch.zeros((T, num_envs, state.actions), dtype=torch.bool, device=dev)
                     if state.masked else None)
        self.actions = torch.zeros((T, num_envs), dtype=torch.long, device=dev)
        self.logprobs = torch.zeros((T, num_envs), device=dev)
        self.rewards = torch.zeros((T, num_envs), device=dev)
        self.terms = torch.zeros((T, num_envs), dtype=torch.bool, device=dev)
        self.truncs = torch.zeros((T, num_envs), dtype=torch.bool, device=dev)
        self.values = torch.zeros((T, num_envs), device=dev)

    def collect(self, state: TrainState, gamma: float, gae_lambda: float) -> ppo.Batch:
        """Step every env `steps` times sampling the masked policy, advance `state` (observation, mask,
        counters, episode statistics), and return the batch with GAE advantages and returns."""
        module, dev = state.module, state.device
        first_done = state.last_done
        reset_row = first_done.cpu().numpy()  # is this step a reset step (per env)?
        module.eval()
        for t in range(self.steps):
            self.obs[t] = state.next_obs
            if self.mask is not None:
                self.mask[t] = state.next_mask
            with torch.no_grad():
                outputs = module(state.next_obs)
                log_probs = ppo.policy_log_probs(outputs["policy"], state.next_mask)
                action = ppo.sample_actions(log_probs)
                self.logprobs[t] = ppo.log_prob_of(log_probs, action)
                self.values[t] = value_of(outputs)
            self.actions[t] = action
            obs, reward, terminated, truncated, infos = state.envs.step(action.cpu().numpy())
            reward = np.asarray(reward, dtype=np.float64)
            done = np.logical_or(terminated, truncated)
            state.stats.record(reward, done, infos)
            self.rewards[t] = self._rewards(state, reward, done, reset_row)
            reset_row = done
            self.terms[t] = torch.as_tensor(np.asarray(terminated, dtype=bool), device=dev)
            self.truncs[t] = torch.as_tensor(np.asarray(truncated, dtype=bool), device=dev)
            state.next_obs = state.observe(obs)
            if self.mask is not None:
                state.next_mask = action_mask(infos, self.num_envs, state.actions, dev)
        state.step += self.steps * self.num_envs
        state.last_done = self.terms[-1] | self.truncs[-1]

        with torch.no_grad():
            next_value = value_of(module(state.next_obs))
        starts = ppo.reset_steps(self.terms, self.truncs, first=first_done)
        advantages, returns = ppo.compute_gae(self.rewards, self.values, self.terms, self.truncs, next_value,
                                              self.terms[-1], gamma, gae_lambda, starts=starts)
        batch = self.steps * self.num_envs
        return ppo.Batch(
            obs=self.obs.reshape(batch, *self.obs_shape),
            mask=self.mask.reshape(batch, -1) if self.mask is not None else None,
            actions=self.actions.reshape(-1), logprobs=self.logprobs.reshape(-1),
            advantages=advantages.reshape(-1), returns=returns.reshape(-1), values=self.values.reshape(-1),
            valid=~starts.reshape(-1))

    @staticmethod
    def _rewards(state: TrainState, reward: np.ndarray, done: np.ndarray, reset_row: Any) -> torch.Tensor:
        if state.scaler is not None:
            return state.scaler(reward, done, valid=~reset_row).to(state.device)
        return torch.as_tensor(reward, dtype=torch.float32, device=state.device)


__all__ = ["Rollout", "make_envs", "value_of"]
