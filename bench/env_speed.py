"""How fast is the 2048 environment, and does masked-random play match the measured baseline?

Issue 4's env benchmark:

1. steps/s of the single `mdl.runtime.envs.Game2048Env` and of `Game2048VectorEnv` at 1, 64 and
   1,024 envs, playing uniformly random legal moves (from ``info["action_mask"]``), side by side with ``gymnasium-2048`` (its single env,
   and ``gymnasium.vector.SyncVectorEnv`` of it for 64 and 1,024) when that package imports; the
   goal is 1M steps/s at 1,024 envs;
2. the masked-random baseline over 10,000 games (one game per env, so long games are not
   under-counted): mean final score (measured baseline 1,081) and the share of games whose largest
   tile reaches 256 (7.4%), 512, 1024 and 2048.

    python bench/env_speed.py                   # all of it
    python bench/env_speed.py --seconds 1 --games 2000

Only the ``step`` calls are timed (choosing the actions is not). Exit status 0 when 1,024 envs reach
the goal, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from mdl.runtime.envs import Game2048Env, make_game2048

GOAL = 1_000_000
BASELINE_SCORE = 1081
BASELINE_256 = 0.074


def mdl_steps_per_second(num_envs: int, seconds: float, seed: int = 0) -> float:
    env = make_game2048(num_envs, seed=seed)
    _, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(20):  # warm-up
        _, _, _, _, info = env.step(np.argmax(rng.random((num_envs, 4)) * info["action_mask"], axis=1))
    steps = 0
    stepping = 0.0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        actions = np.argmax(rng.random((num_envs, 4)) * info["action_mask"], axis=1)
        t = time.perf_counter()
        _, _, _, _, info = env.step(actions)
        stepping += time.perf_counter() - t
        steps += num_envs
    return steps / stepping


def single_env_steps_per_second(seconds: float, seed: int = 0) -> float:
    """`Game2048Env` (``mdl/Game2048-v0``), one game, random legal moves; resets are timed too."""
    env = Game2048Env()
    _, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    steps = 0
    stepping = 0.0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        legal = np.flatnonzero(info["action_mask"])
        a = int(legal[rng.integers(len(legal))])
        t = time.perf_counter()
        _, _, term, _, info = env.step(a)
        if term:
            _, info = env.reset()
        stepping += time.perf_counter() - t
        steps += 1
    return steps / stepping


def load_gymnasium_2048():
    """The gymnasium-2048 env class, or the reason it is unavailable."""
    try:
        import os

        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        from gymnasium_2048.envs import TwentyFortyEightEnv
    except Exception as exc:  # not installed, or pygame missing
        return None, f"{type(exc).__name__}: {exc}"
    return TwentyFortyEightEnv, ""


def g2048_steps_per_second(env_cls, num_envs: int, seconds: float, seed: int = 0) -> float:
    """gymnasium-2048 has no action mask; it plays uniformly random moves (an illegal one is a no-op)."""
    import gymnasium

    rng = np.random.default_rng(seed)
    if num_envs == 1:
        env = env_cls()
        env.reset(seed=seed)
        steps = 0
        stepping = 0.0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            a = int(rng.integers(4))
            t = time.perf_counter()
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()
            stepping += time.perf_counter() - t
            steps += 1
        return steps / stepping
    venv = gymnasium.vector.SyncVectorEnv([env_cls for _ in range(num_envs)])
    venv.reset(seed=seed)
    steps = 0
    stepping = 0.0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        actions = rng.integers(0, 4, size=num_envs)
        t = time.perf_counter()
        venv.step(actions)
        stepping += time.perf_counter() - t
        steps += num_envs
    venv.close()
    return steps / stepping


def masked_random_baseline(games: int, seed: int) -> dict[str, float]:
    env = make_game2048(games, seed=seed)
    _, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed + 1)
    scores = np.zeros(games, dtype=np.int64)
    tiles = np.zeros(games, dtype=np.int64)
    lengths = np.zeros(games, dtype=np.int64)
    finished = np.zeros(games, dtype=bool)
    start = time.perf_counter()
    while not finished.all():
        actions = np.argmax(rng.random((games, 4)) * info["action_mask"], axis=1)
        _, _, term, _, info = env.step(actions)
        first = term & ~finished
        scores[first] = info["episode_score"][first]
        tiles[first] = info["episode_max_tile"][first]
        lengths[first] = info["episode_length"][first]
        finished |= term
    out = {
        "games": games,
        "seconds": time.perf_counter() - start,
        "mean_score": float(scores.mean()),
        "score_sem": float(scores.std(ddof=1) / np.sqrt(games)),
        "mean_length": float(lengths.mean()),
    }
    for tile in (256, 512, 1024, 2048):
        out[f"tile_{tile}"] = float((tiles >= tile).mean())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per figure (default 2)")
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--games", type=int, default=10_000, help="masked-random games (default 10,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-baseline", action="store_true", help="skip the masked-random baseline")
    args = parser.parse_args(argv)

    env_cls, why = load_gymnasium_2048()
    print("2048 env steps/s (random legal moves; only env.step timed)")
    if env_cls is None:
        print(f"  gymnasium-2048: skipped ({why})")
    header = f"  {'envs':>22}  {'mdl steps/s':>12}"
    if env_cls is not None:
        header += f"  {'gymnasium-2048':>15}  {'ratio':>8}"
    print(header)
    rows = [("1 (Game2048Env)", 1, lambda: single_env_steps_per_second(args.seconds, args.seed))]
    rows += [
        (f"{n:,} (VectorEnv)", n, lambda n=n: mdl_steps_per_second(n, args.seconds, args.seed))
        for n in args.envs
    ]
    theirs_by_n: dict[int, float] = {}
    at_goal = None
    for label, n, measure in rows:
        ours = measure()
        line = f"  {label:>22}  {ours:>12,.0f}"
        if env_cls is not None:
            if n not in theirs_by_n:
                theirs_by_n[n] = g2048_steps_per_second(env_cls, n, args.seconds, args.seed)
            theirs = theirs_by_n[n]
            line += f"  {theirs:>15,.0f}  {ours / theirs:>7,.1f}x"
        print(line, flush=True)
        if n == 1024:
            at_goal = ours >= GOAL
    if at_goal is not None:
        print(f"  1,024 envs: {'meets' if at_goal else 'BELOW'} the goal of {GOAL:,} steps/s")

    if not args.no_baseline:
        b = masked_random_baseline(args.games, args.seed + 2048)
        print(f"\nmasked-random baseline: {b['games']:,} games in {b['seconds']:.1f} s")
        print(
            f"  mean score {b['mean_score']:,.0f} ± {b['score_sem']:.0f} (s.e.)  (measured baseline {BASELINE_SCORE:,})"
        )
        print(f"  mean length {b['mean_length']:.1f} moves")
        for tile in (256, 512, 1024, 2048):
            extra = f"  (measured baseline {BASELINE_256:.1%})" if tile == 256 else ""
            print(f"  max tile >= {tile:>4}: {b[f'tile_{tile}']:.2%}{extra}")
    return 0 if at_goal in (None, True) else 1


if __name__ == "__main__":
    sys.exit(main())
