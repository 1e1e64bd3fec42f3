"""Does mdl's PPO learn what Stable-Baselines3's learns? Final returns side by side, 3 seeds each.

The issue's quality benchmark (12): every experiment of `bench/ppo_quality.mdl` (CartPole-v1, Acrobot-v1,
MountainCar-v0 and, where Box2D installs, LunarLander-v3, at the rl-zoo's settings) is trained by
`mdl.runtime.train.train` and by SB3's `PPO` at matched settings, for each seed. The SB3 settings are
derived from the mdl experiment itself (`sb3_settings`), so the two cannot drift apart:

- the network: SB3's MlpPolicy with `net_arch=dict(pi=[64, 64], vf=[64, 64])`, tanh, orthogonal init
  (`ortho_init=True`), which is the file's `Separate` design (parameter counts compared and printed);
- n_envs, n_steps (`rollout`), batch_size (`rollout * envs / minibatches`), n_epochs, lr (linear to 0
  when `anneal_lr`, else constant), gamma, gae_lambda, clip_range, ent_coef, vf_coef, max_grad_norm,
  normalize_advantage, clip_range_vf (when `clip_vloss`), target_kl, Adam eps;
- `VecNormalize(norm_obs, norm_reward, clip_obs=10, gamma)` from `norm_obs` / `norm_reward` (the zoo's
  `normalize: true` is both);
- the budget (the experiment's, or `--budget-scale` times it): both stop at the first whole update past it.

The score of a run is the mean undiscounted return of its last 100 training episodes (mdl's
`mean_return_last100`, SB3's `ep_info_buffer`, both from the raw env rewards), the measure CleanRL
reports. Runs go two at a time (`--jobs`), each in its own process with one torch thread, an mdl run
beside the SB3 run of the same task and seed, so steps/s compare under the same load.

    python bench/ppo_quality.py                    # every task at the zoo's budgets (about 35 min on 2 cores)
    python bench/ppo_quality.py --tasks cartpole acrobot --budget-scale 0.25
    python bench/ppo_quality.py --quick            # a smoke run: CartPole, 2 seeds, 20k steps (under a minute)

SB3 and Box2D are benchmark-only dependencies: `pip install -e ".[bench]"`. Exit status 0 when mdl's mean
is within SB3's seed spread (between its worst and best seed, or above its mean) on every task; 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT / "bench" / "ppo_quality.mdl"
# Published figures, each from its own protocol: rl-baselines3-zoo's benchmark.md (one trained agent,
# deterministic evaluation; mean +- std over evaluation episodes; the zoo budget) and CleanRL's ppo.py
# docs (3 seeds, training episodes, 500k steps, CleanRL's own settings, not the zoo's).
PUBLISHED = {
    "cartpole": ("500.0 +- 0.0 (100k)", "492.4 +- 13.1"),
    "acrobot": ("-73.5 +- 18.2 (1M)", "-89.9 +- 6.3"),
    "mountaincar": ("-110.4 +- 19.5 (1M)", "-200.0 +- 0.0"),
    "lunarlander": ("242.1 +- 31.8 (1M, v2)", "—"),
}


def load_experiments() -> dict[str, Any]:
    from mdl.compiler.check import analyze

    analysis = analyze(DESIGN.read_text(encoding="utf-8"), str(DESIGN))
    if not analysis.ok:
        raise SystemExit(f"{DESIGN} has errors; run `mdlc check {DESIGN}`")
    return analysis.experiments


def resolved_config(spec: Any):
    """The PPOConfig mdl trains `spec` with (orthogonal init resolved as the trainer does for gym ids)."""
    from mdl.runtime.ppo import PPOConfig

    cfg = PPOConfig.from_experiment(spec.algo)
    if cfg.orthogonal_init is None:
        cfg = dataclasses.replace(cfg, orthogonal_init=spec.env.kind != "game2048")
    return cfg


def sb3_settings(spec: Any) -> dict[str, Any]:
    """SB3's PPO keyword arguments and VecNormalize settings equal to the mdl experiment's."""
    cfg = resolved_config(spec)
    envs = spec.env.envs
    return {
        "env_id": spec.env.id, "n_envs": envs,
        "ppo": {"n_steps": cfg.rollout, "batch_size": cfg.minibatch_size(envs), "n_epochs": cfg.epochs,
                "gamma": cfg.gamma, "gae_lambda": cfg.gae_lambda, "clip_range": cfg.clip,
                "clip_range_vf": cfg.clip if cfg.clip_vloss else None, "normalize_advantage": cfg.norm_adv,
                "ent_coef": cfg.ent_coef, "vf_coef": cfg.vf_coef, "max_grad_norm": cfg.max_grad_norm,
                "target_kl": cfg.target_kl},
        "lr": cfg.lr, "anneal_lr": cfg.anneal_lr, "adam_eps": cfg.adam_eps, "ortho_init": cfg.orthogonal_init,
        "normalize": {"norm_obs": cfg.norm_obs, "norm_reward": cfg.norm_reward, "gamma": cfg.gamma,
                      "clip_obs": 10.0} if cfg.norm_obs or cfg.norm_reward else None,
    }


# ---------------------------------------------------------------------------------------------------
# One run, in a worker process


def run_mdl(task: str, seed: int, steps: int) -> dict[str, Any]:
    from mdl.runtime.train import train

    spec = load_experiments()[task]
    with tempfile.TemporaryDirectory(prefix="mdl-quality-") as out:
        summary = train(spec, DESIGN.read_text(encoding="utf-8"), DESIGN, out_dir=out, seed=seed,
                        budget_steps=steps, device="cpu")
    return {"ret": summary.get("mean_return_last100"), "steps": summary["steps"],
            "seconds": summary["wall_seconds"], "sps": summary["steps_per_second"], "params": spec.graph.params}


def run_sb3(task: str, seed: int, steps: int) -> dict[str, Any]:
    import numpy as np
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    s = sb3_settings(load_experiments()[task])
    env = make_vec_env(s["env_id"], n_envs=s["n_envs"], seed=seed)
    if s["normalize"] is not None:
        env = VecNormalize(env, **s["normalize"])
    lr = s["lr"]
    model = PPO("MlpPolicy", env, **s["ppo"], learning_rate=(lambda remaining: lr * remaining) if s["anneal_lr"] else lr,
                policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh,
                                   ortho_init=s["ortho_init"], optimizer_kwargs=dict(eps=s["adam_eps"])),
                device="cpu", seed=seed, verbose=0)
    t = time.perf_counter()
    model.learn(total_timesteps=steps)
    seconds = time.perf_counter() - t
    returns = [info["r"] for info in model.ep_info_buffer]  # Monitor's: raw rewards, before VecNormalize
    env.close()
    return {"ret": float(np.mean(returns)) if returns else None, "steps": model.num_timesteps,
            "seconds": seconds, "sps": model.num_timesteps / seconds,
            "params": sum(p.numel() for p in model.policy.parameters())}


def _job(job: tuple[str, str, int, int]) -> tuple[tuple[str, str, int, int], dict[str, Any]]:
    framework, task, seed, steps = job
    import torch

    torch.set_num_threads(1)
    try:
        result = (run_mdl if framework == "mdl" else run_sb3)(task, seed, steps)
    except Exception as exc:  # a run that fails is reported in its row, the others go on
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result["load"] = os.getloadavg()[0]
    return job, result


# ---------------------------------------------------------------------------------------------------
# Report


def _missing(task: str, experiments: dict[str, Any], sb3: bool) -> str | None:
    """Why a task cannot run here (None: it can)."""
    if sb3:
        try:
            import stable_baselines3  # noqa: F401
        except ImportError:
            return 'Stable-Baselines3 is not installed: pip install -e ".[bench]"'
    try:
        import gymnasium

        gymnasium.make(experiments[task].env.id).close()
    except Exception as exc:
        return f"{experiments[task].env.id} does not start here ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    return None


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} +- {spread:.1f}"


def verdict(mdl: list[float], sb3: list[float]) -> str:
    """"ok" when mdl's mean lies within SB3's seed spread [worst, best] or above SB3's mean."""
    if not mdl or not sb3:
        return "n/a"
    mean = statistics.mean(mdl)
    return "ok" if mean >= statistics.mean(sb3) or min(sb3) <= mean <= max(sb3) else "BELOW"


def main(argv: list[str] | None = None) -> int:
    experiments = load_experiments()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=list(experiments), default=list(experiments))
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: each experiment's (1 2 3)")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="times each experiment's budget (default 1)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="runs at a time (default 2)")
    parser.add_argument("--no-sb3", action="store_true", help="mdl only")
    parser.add_argument("--quick", action="store_true", help="CartPole, seeds 1 2, 20k steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.seeds, args.budget_scale = ["cartpole"], [1, 2], 0.2

    print(f"mdl vs Stable-Baselines3, {DESIGN.relative_to(ROOT)}; {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.2f}; {args.jobs} runs at a time, 1 torch thread each", flush=True)
    jobs, skipped = [], {}
    for task in args.tasks:
        why = _missing(task, experiments, not args.no_sb3)
        if why is not None:
            skipped[task] = why
            continue
        spec = experiments[task]
        steps = max(1, int(spec.budget_steps * args.budget_scale))
        for seed in args.seeds or spec.seeds:
            jobs += [("mdl", task, seed, steps)] + ([] if args.no_sb3 else [("sb3", task, seed, steps)])
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
        for (framework, task, seed, _steps), result in pool.imap(_job, jobs):
            results.setdefault((framework, task), []).append(result)
            if "error" in result:
                print(f"  {task:<12} {framework:<4} seed {seed}: FAILED {result['error']}", flush=True)
                continue
            ret = "—" if result["ret"] is None else f"{result['ret']:.1f}"
            print(f"  {task:<12} {framework:<4} seed {seed}: return {ret:>7} after {result['steps']:,} steps, "
                  f"{result['sps']:,.0f} steps/s, {result['seconds']:.0f} s (load {result['load']:.1f})", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s in all\n")

    header = ("| task | steps | mdl (mean +- std over seeds) | SB3 (mean +- std) | SB3 seeds | within | "
              "rl-zoo published | CleanRL ppo.py | steps/s mdl; SB3 | params mdl; SB3 |")
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    failed = False
    for task in args.tasks:
        if task in skipped:
            print(f"| {task} | skipped: {skipped[task]} |")
            continue
        ours = [r for r in results.get(("mdl", task), []) if "error" not in r]
        theirs = [r for r in results.get(("sb3", task), []) if "error" not in r]
        mdl_ret = [r["ret"] for r in ours if r["ret"] is not None]
        sb3_ret = [r["ret"] for r in theirs if r["ret"] is not None]
        within = verdict(mdl_ret, sb3_ret)
        failed |= within == "BELOW" or len(ours) < len(results.get(("mdl", task), []))
        sps = f"{statistics.median(r['sps'] for r in ours):,.0f}" if ours else "—"
        sps += f"; {statistics.median(r['sps'] for r in theirs):,.0f}" if theirs else ""
        params = f"{ours[0]['params']:,}" if ours else "—"
        params += f"; {theirs[0]['params']:,}" if theirs else ""
        seeds = ", ".join(f"{v:.1f}" for v in sb3_ret) or "—"
        steps = max((r["steps"] for r in ours), default=0)
        zoo, cleanrl = PUBLISHED.get(task, ("—", "—"))
        print(f"| {experiments[task].env.id} | {steps:,} | {_mean_std(mdl_ret)} | {_mean_std(sb3_ret)} | {seeds} | "
              f"{within} | {zoo} | {cleanrl} | {sps} | {params} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
