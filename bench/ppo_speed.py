"""How fast is mdl's PPO: steps/s on CartPole against Stable-Baselines3, and on the 2048 designs.

The issue's PPO benchmark:

1. CartPole-v1: `mdl.runtime.train.train` on `examples/cartpole_mlp.mdl`'s `cartpole_ppo` against
   Stable-Baselines3's `PPO` with the same network (a shared tanh trunk of 64, 64 and two linear heads,
   torch's default init) and the same hyperparameters (the RL zoo's: 8 envs, rollout 32, one minibatch
   of 256, 20 epochs, lr 1e-3 annealed linearly, gamma 0.98, lambda 0.8, no entropy bonus, clip 0.2,
   vf_coef 0.5, grad-norm clip 0.5), over the same number of steps, in one process, with the same
   torch threads, interleaved (A, B, B, A, ...), medians. The goal is mdl/SB3 >= 2x.
2. 2048 (mdl only; nothing else trains these designs): `fast_2048` (examples/fast_2048.mdl, the
   README's main command) and `moe_2048` (examples/moe_2048.mdl, LANGUAGE.md's MoE transformer).

Each row splits the wall time into rollout (acting and env stepping, GAE included) and update
(the epochs of minibatch steps, logging and the final checkpoint included), with the env.step share;
the split comes from wrapping the lowered module's train()/eval() switches and the env's step from
outside, mdl.runtime is not changed.

    python bench/ppo_speed.py                # about 2 minutes on 2 CPU cores
    python bench/ppo_speed.py --quick        # a smoke run, under 30 s
    python bench/ppo_speed.py --threads 1    # steadier on a busy machine

SB3 is a benchmark-only dependency: `pip install -e ".[bench]"`. Without it the mdl rows still run.
Exit status 0; 1 when the CartPole ratio is below the goal.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
GOAL = 2.0
CARTPOLE = ("examples/cartpole_mlp.mdl", "cartpole_ppo")
DESIGNS = {"fast_2048": "examples/fast_2048.mdl", "moe_2048": "examples/moe_2048.mdl"}


def load() -> str:
    return "  ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------------------------------
# mdl


class _Phases:
    """Rollout/update wall time of one `train()` run, from the module's eval()/train() switches.

    The loop calls `module.eval()` before each rollout and `module.train()` before each update, so the
    time from an eval() to the next train() is rollout (+ GAE) and the rest is update (+ logging). Env
    stepping is timed by wrapping the vector env's `step`.
    """

    def __init__(self) -> None:
        self.mode: bool | None = None
        self.since = 0.0
        self.rollout = 0.0
        self.update = 0.0
        self.env_step = 0.0

    def switch(self, training: bool) -> None:
        now = time.perf_counter()
        if self.mode is not None and training != self.mode:
            if self.mode:
                self.update += now - self.since
            else:
                self.rollout += now - self.since
        if self.mode is None or training != self.mode:
            self.mode, self.since = training, now

    def finish(self) -> None:
        self.switch(not self.mode if self.mode is not None else False)


class _TimedEnvs:
    def __init__(self, envs: Any, phases: _Phases) -> None:
        self._envs, self._phases = envs, phases

    def step(self, actions):
        t = time.perf_counter()
        try:
            return self._envs.step(actions)
        finally:
            self._phases.env_step += time.perf_counter() - t

    def __getattr__(self, name: str) -> Any:
        return getattr(self._envs, name)


def _instrument(phases: _Phases):
    """Patch `lower` and `make_envs` as `train()` looks them up; returns the undo, or None."""
    import mdl.compiler.lower as lower_mod
    import mdl.runtime.train as train_mod

    if not hasattr(train_mod, "make_envs") or not hasattr(lower_mod, "lower"):
        return None
    orig_lower, orig_make_envs = lower_mod.lower, train_mod.make_envs

    def lower(*args, **kwargs):
        module = orig_lower(*args, **kwargs)
        cls_train = type(module).train

        def train(mode: bool = True):
            phases.switch(bool(mode))
            return cls_train(module, mode)

        module.train = train  # instance attribute: eval() calls self.train(False)
        return module

    lower_mod.lower = lower
    train_mod.make_envs = lambda *a, **k: _TimedEnvs(orig_make_envs(*a, **k), phases)

    def undo() -> None:
        lower_mod.lower, train_mod.make_envs = orig_lower, orig_make_envs

    return undo


def run_mdl(path: str, experiment: str, steps: int, seed: int) -> dict[str, Any]:
    from mdl.compiler.check import analyze
    from mdl.runtime.train import train

    text = (ROOT / path).read_text(encoding="utf-8")
    spec = analyze(text, str(ROOT / path)).experiments[experiment]
    phases = _Phases()
    undo = _instrument(phases)
    try:
        with tempfile.TemporaryDirectory(prefix="mdl-bench-") as out:
            t = time.perf_counter()
            summary = train(spec, text, ROOT / path, out_dir=out, seed=seed, budget_steps=steps,
                            device="cpu")
            outer = time.perf_counter() - t
    finally:
        if undo is not None:
            undo()
    phases.finish()
    split = undo is not None and phases.rollout > 0
    return {
        "steps": summary["steps"], "seconds": summary["wall_seconds"], "sps": summary["steps_per_second"],
        "outer": outer, "ret": summary.get("mean_return_last100"), "score": summary.get("mean_score_last100"),
        "rollout": phases.rollout if split else None, "update": phases.update if split else None,
        "env": phases.env_step if split else None,
    }


# ---------------------------------------------------------------------------------------------------
# Stable-Baselines3


def sb3_missing() -> str | None:
    try:
        import stable_baselines3  # noqa: F401
    except ImportError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def run_sb3(steps: int, seed: int) -> dict[str, Any]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class Trunk(BaseFeaturesExtractor):
        """mdl's shared trunk: linear 64, tanh, linear 64, tanh; the heads come from net_arch=[]."""

        def __init__(self, observation_space, width: int = 64):
            super().__init__(observation_space, features_dim=width)
            n = int(np.prod(observation_space.shape))
            self.net = torch.nn.Sequential(torch.nn.Linear(n, width), torch.nn.Tanh(),
                                           torch.nn.Linear(width, width), torch.nn.Tanh())

        def forward(self, obs):
            return self.net(obs.flatten(1))

    class Phases(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.rollout, self.since = 0.0, 0.0

        def _on_rollout_start(self) -> None:
            self.since = time.perf_counter()

        def _on_rollout_end(self) -> None:
            self.rollout += time.perf_counter() - self.since

        def _on_step(self) -> bool:
            return True

    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = PPO(
        "MlpPolicy", env, n_steps=32, batch_size=256, n_epochs=20,
        learning_rate=lambda progress_remaining: 1e-3 * progress_remaining,
        gamma=0.98, gae_lambda=0.8, ent_coef=0.0, clip_range=0.2, vf_coef=0.5, max_grad_norm=0.5,
        policy_kwargs=dict(features_extractor_class=Trunk, share_features_extractor=True,
                           net_arch=dict(pi=[], vf=[]), activation_fn=torch.nn.Tanh, ortho_init=False),
        device="cpu", seed=seed, verbose=0,
    )
    phases = Phases()
    t = time.perf_counter()
    model.learn(total_timesteps=steps, callback=phases)
    seconds = time.perf_counter() - t
    episodes = [info["r"] for info in model.ep_info_buffer]
    env.close()
    return {
        "steps": model.num_timesteps, "seconds": seconds, "sps": model.num_timesteps / seconds,
        "ret": float(np.mean(episodes)) if episodes else None,
        "rollout": phases.rollout, "update": seconds - phases.rollout, "env": None,
        "params": sum(p.numel() for p in model.policy.parameters()),
    }


# ---------------------------------------------------------------------------------------------------
# Report


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def _split(runs: list[dict[str, Any]]) -> str:
    rollout, update, env, seconds = (_median(runs, k) for k in ("rollout", "update", "env", "seconds"))
    if rollout is None or update is None:
        return "n/a"
    text = f"{rollout / seconds:>4.0%} / {update / seconds:>4.0%}"
    return text + (f"  (env.step {env / seconds:.0%})" if env is not None else "")


def _fmt(x: float | None, spec: str = ",.1f") -> str:
    return "—" if x is None else format(x, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000, help="CartPole steps per run (default 50,000)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each, interleaved; medians (default 2)")
    parser.add_argument("--fast-steps", type=int, default=32_768,
                        help="fast_2048 steps per run (default 32,768: 8 updates of 32 x 128)")
    parser.add_argument("--moe-steps", type=int, default=8_192,
                        help="moe_2048 steps per run (default 8,192: one update of 64 x 128, the least a run "
                             "can do; 0 skips it)")
    parser.add_argument("--design-repeats", type=int, default=1,
                        help="runs of each 2048 design, interleaved; medians (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for every run (default torch's)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-sb3", action="store_true", help="skip Stable-Baselines3")
    parser.add_argument("--no-2048", action="store_true", help="skip the 2048 designs")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run (under 30 s): 20,480 CartPole steps, one run each, 8,192 fast_2048 steps, no moe_2048")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.fast_steps, args.moe_steps = 20_480, 1, 8_192, 0
        args.design_repeats = 1
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    missing = None if args.no_sb3 else sb3_missing()
    use_sb3 = not args.no_sb3 and missing is None
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"load average {load()} (1, 5, 15 min)")
    if os.getloadavg()[0] > (os.cpu_count() or 1) - 0.5 and torch.get_num_threads() > 1:
        print("  note: the machine is busy and torch runs several threads; a stalled OpenMP thread slows every "
              "step, so the figures swing: --threads 1 keeps them steady")
    if missing is not None:
        print(f"  Stable-Baselines3: skipped ({missing}); install it with  pip install -e \".[bench]\"")

    # Warm-up (untimed): lazy imports, lowering, first kernels.
    run_mdl(*CARTPOLE, steps=256, seed=args.seed)
    if use_sb3:
        run_sb3(256, args.seed)

    print(f"\nCartPole-v1 PPO, {args.steps:,} steps per run, {args.repeats} run(s) each, interleaved")
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    for r in range(args.repeats):
        order = ["mdl", "sb3"] if r % 2 == 0 else ["sb3", "mdl"]
        for who in order:
            if who == "sb3" and not use_sb3:
                continue
            before = load()
            res = run_mdl(*CARTPOLE, steps=args.steps, seed=args.seed + r) if who == "mdl" else \
                run_sb3(args.steps, args.seed + r)
            (ours if who == "mdl" else theirs).append(res)
            print(f"  run {r + 1} {who:>4}: {res['sps']:>8,.0f} steps/s  {res['seconds']:6.1f} s  "
                  f"{res['steps']:,} steps  return {_fmt(res['ret'])}  load {before}", flush=True)

    print(f"\n  {'':<22}  {'steps/s':>9}  {'seconds':>8}  {'return':>7}  {'rollout / update':<32}")
    for name, runs in (("mdl (cartpole_ppo)", ours), ("SB3 PPO", theirs)):
        if runs:
            print(f"  {name:<22}  {_median(runs, 'sps'):>9,.0f}  {_median(runs, 'seconds'):>8.1f}  "
                  f"{_fmt(_median(runs, 'ret')):>7}  {_split(runs)}")
    status = 0
    if theirs:
        pairs = [a["sps"] / b["sps"] for a, b in zip(ours, theirs, strict=False)]
        ratio = statistics.median(pairs)
        spread = f" (per-pair {min(pairs):.2f}-{max(pairs):.2f})" if len(pairs) > 1 else ""
        met = ratio >= GOAL
        print(f"  mdl / SB3: {ratio:.2f}x{spread}; goal >= {GOAL:.0f}x: {'met' if met else 'NOT met'}")
        print(f"  parameters: mdl {_cartpole_params():,}, SB3 {theirs[0]['params']:,}")
        status = 0 if met else 1

    if not args.no_2048:
        steps = {"fast_2048": args.fast_steps, "moe_2048": args.moe_steps}
        names = [name for name in DESIGNS if steps[name] > 0]
        print(f"\n2048 designs, mdl only, {args.design_repeats} run(s) each, interleaved")
        rows: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for r in range(args.design_repeats):
            for name in (names if r % 2 == 0 else names[::-1]):
                before = load()
                res = run_mdl(DESIGNS[name], name, steps=steps[name], seed=args.seed + r)
                rows[name].append(res)
                print(f"  run {r + 1} {name}: {res['sps']:>8,.0f} steps/s  {res['seconds']:6.1f} s  "
                      f"{res['steps']:,} steps  load {before}", flush=True)
        print(f"\n  {'':<22}  {'steps/s':>9}  {'seconds':>8}  {'steps':>7}  {'rollout / update':<32}")
        for name, runs in rows.items():
            print(f"  {name:<22}  {_median(runs, 'sps'):>9,.0f}  {_median(runs, 'seconds'):>8.1f}  "
                  f"{runs[0]['steps']:>7,}  {_split(runs)}")
    print(f"\nload average at the end: {load()}")
    return status


def _cartpole_params() -> int:
    from mdl.compiler.check import analyze

    text = (ROOT / CARTPOLE[0]).read_text(encoding="utf-8")
    return analyze(text, str(ROOT / CARTPOLE[0])).experiments[CARTPOLE[1]].graph.params


if __name__ == "__main__":
    raise SystemExit(main())
