"""The 2048 environment (issue 4, item 1): move rules against an independent pure-Python reference,
spawns, masks, termination, NEXT_STEP autoreset, check_env, seeding, checkpoints, and the
masked-random baseline."""

from __future__ import annotations

import pickle
import subprocess
import sys

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from mdl.runtime.envs import GAME2048_ID, Game2048Env, Game2048VectorEnv, make_game2048, register_envs
from mdl.runtime.envs.game2048 import (
    boards_from_exponents,
    exponents_from_boards,
    legal_moves,
    move_boards,
)

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3


# -- an independent, slow, obviously correct reference ---------------------------------------------
def ref_slide_left(line: list[int]) -> tuple[list[int], int]:
    """Slide one line of exponents towards index 0, merging equal neighbours once."""
    tiles = [t for t in line if t]
    out: list[int] = []
    reward = 0
    i = 0
    while i < len(tiles):
        if i + 1 < len(tiles) and tiles[i] == tiles[i + 1] and tiles[i] < 15:
            out.append(tiles[i] + 1)
            reward += 2 ** (tiles[i] + 1)
            i += 2
        else:
            out.append(tiles[i])
            i += 1
    return out + [0] * (len(line) - len(out)), reward


def ref_move(board: list[list[int]], action: int) -> tuple[list[list[int]], int]:
    """Move a 4x4 board (row 0 on top): 0 up, 1 right, 2 down, 3 left."""
    new = [[0] * 4 for _ in range(4)]
    total = 0
    for k in range(4):
        if action == LEFT:
            cells = [(k, c) for c in range(4)]
        elif action == RIGHT:
            cells = [(k, c) for c in reversed(range(4))]
        elif action == UP:
            cells = [(r, k) for r in range(4)]
        else:
            cells = [(r, k) for r in reversed(range(4))]
        line, reward = ref_slide_left([board[r][c] for r, c in cells])
        total += reward
        for (r, c), v in zip(cells, line, strict=True):
            new[r][c] = v
    return new, total


def move1(board, action):
    new, reward = move_boards(boards_from_exponents(np.array(board)).reshape(1), np.array([action]))
    return exponents_from_boards(new)[0].tolist(), int(reward[0])


def random_boards(rng: np.random.Generator, n: int) -> np.ndarray:
    """Boards with a mix of empties, equal neighbours and large tiles."""
    boards = np.zeros((n, 4, 4), dtype=np.int64)
    for i in range(n):
        kind = i % 4
        if kind == 0:
            boards[i] = rng.integers(0, 16, size=(4, 4))
        elif kind == 1:
            boards[i] = rng.integers(0, 4, size=(4, 4))  # many equal neighbours and empties
        elif kind == 2:
            boards[i] = rng.integers(1, 3, size=(4, 4))  # full board, dense merges
        else:
            b = rng.integers(1, 12, size=(4, 4))
            b[rng.random((4, 4)) < 0.5] = 0
            boards[i] = b
    return boards


# -- move rules --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("row", "expected", "reward"),
    [
        ([1, 1, 1, 1], [2, 2, 0, 0], 8),
        ([2, 2, 1, 1], [3, 2, 0, 0], 12),
        ([1, 0, 1, 2], [2, 2, 0, 0], 4),
        ([2, 1, 1, 0], [2, 2, 0, 0], 4),  # no double merge: the new 4 does not merge with the 4
        ([1, 1, 2, 0], [2, 2, 0, 0], 4),
        ([0, 0, 0, 1], [1, 0, 0, 0], 0),
        ([1, 2, 3, 4], [1, 2, 3, 4], 0),
        ([3, 3, 3, 0], [4, 3, 0, 0], 16),
        ([0, 0, 0, 0], [0, 0, 0, 0], 0),
        ([15, 15, 1, 1], [15, 15, 2, 0], 4),  # 32768 is the largest tile: no merge
    ],
)
def test_left_rows(row, expected, reward):
    board = [row, [0] * 4, [0] * 4, [0] * 4]
    new, r = move1(board, LEFT)
    assert new[0] == expected
    assert r == reward


def test_all_directions_on_a_hand_written_board():
    board = [[1, 1, 1, 1], [2, 2, 1, 1], [1, 0, 1, 2], [0, 0, 0, 3]]
    assert move1(board, LEFT) == ([[2, 2, 0, 0], [3, 2, 0, 0], [2, 2, 0, 0], [3, 0, 0, 0]], 24)
    assert move1(board, RIGHT) == ([[0, 0, 2, 2], [0, 0, 3, 2], [0, 0, 2, 2], [0, 0, 0, 3]], 24)
    assert move1(board, UP) == ([[1, 1, 2, 2], [2, 2, 1, 2], [1, 0, 0, 3], [0, 0, 0, 0]], 8)
    assert move1(board, DOWN) == ([[0, 0, 0, 0], [1, 0, 0, 2], [2, 1, 1, 2], [1, 2, 2, 3]], 8)


def test_400_random_boards_times_4_moves_match_the_reference():
    rng = np.random.default_rng(2048)
    boards = random_boards(rng, 400)
    bits = boards_from_exponents(boards)
    assert (exponents_from_boards(bits) == boards).all()
    for action in range(4):
        new, rewards = move_boards(bits, np.full(400, action))
        new = exponents_from_boards(new)
        mask = legal_moves(bits)
        for i in range(400):
            ref, ref_reward = ref_move(boards[i].tolist(), action)
            assert new[i].tolist() == ref, (boards[i].tolist(), action)
            assert int(rewards[i]) == ref_reward
            assert bool(mask[i, action]) == (ref != boards[i].tolist())


def test_mixed_actions_in_one_batch():
    rng = np.random.default_rng(7)
    boards = random_boards(rng, 200)
    actions = rng.integers(0, 4, size=200)
    new, rewards = move_boards(boards_from_exponents(boards), actions)
    new = exponents_from_boards(new)
    for i in range(200):
        ref, ref_reward = ref_move(boards[i].tolist(), int(actions[i]))
        assert new[i].tolist() == ref
        assert rewards[i] == ref_reward


# -- spawns, masks, termination -----------------------------------------------------------------
def test_spawn_exactly_one_tile_after_a_changing_move_and_none_otherwise():
    n = 512
    env = make_game2048(n, seed=3)
    obs, info = env.reset(seed=3)
    rng = np.random.default_rng(0)
    fours = spawns = 0
    for _ in range(40):
        actions = rng.integers(0, 4, size=n)
        boards = obs.tolist()
        done_before = ~info["action_mask"].any(axis=1)
        obs, rewards, _term, trunc, info = env.step(actions)
        assert not trunc.any()
        for i in range(n):
            if done_before[i]:
                continue  # autoreset step
            ref, ref_reward = ref_move(boards[i], int(actions[i]))
            assert rewards[i] == ref_reward
            diff = [(r, c) for r in range(4) for c in range(4) if obs[i, r, c] != ref[r][c]]
            if ref == boards[i]:
                assert diff == []
                assert rewards[i] == 0
            else:
                assert len(diff) == 1
                r, c = diff[0]
                assert ref[r][c] == 0
                assert obs[i, r, c] in (1, 2)
                spawns += 1
                fours += int(obs[i, r, c] == 2)
    assert spawns > 10_000
    p = fours / spawns
    assert abs(p - 0.1) < 4 * np.sqrt(0.09 / spawns)


def test_spawn_cell_is_uniform_over_empty_cells():
    n = 20_000
    env = make_game2048(n, seed=5)
    board = [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    env.reset(options={"board": board})
    obs, *_ = env.step(np.full(n, RIGHT))  # the 2 moves to (0, 3); 15 empty cells
    assert (obs[:, 0, 3] == 1).all()
    flat = obs.reshape(n, 16).copy()
    flat[:, 3] = 0
    pos = flat.argmax(axis=1)
    counts = np.bincount(pos, minlength=16)
    assert counts[3] == 0
    expected = n / 15
    assert np.all(np.abs(counts[np.arange(16) != 3] - expected) < 5 * np.sqrt(expected))


def test_new_games_have_two_tiles():
    env = make_game2048(2000, seed=1)
    obs, info = env.reset()
    nonzero = (obs > 0).sum(axis=(1, 2))
    assert (nonzero == 2).all()
    assert set(np.unique(obs[obs > 0]).tolist()) == {1, 2}
    assert (info["score"] == 0).all()
    assert info["action_mask"].any(axis=1).all()


def test_action_mask_is_does_the_move_change_the_board():
    env = make_game2048(256, seed=11)
    obs, info = env.reset()
    rng = np.random.default_rng(1)
    for _ in range(30):
        for i in range(256):
            for a in range(4):
                changed = ref_move(obs[i].tolist(), a)[0] != obs[i].tolist()
                assert info["action_mask"][i, a] == changed
        obs, _, _, _, info = env.step(rng.integers(0, 4, size=256))


def test_infos_score_and_max_tile():
    env = make_game2048(2, seed=0)
    board = [[7, 7, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    _, info = env.reset(options={"board": board})
    assert info["max_tile"].tolist() == [128, 128]
    assert info["score"].tolist() == [0, 0]
    _obs, rewards, *_, info = env.step(np.array([LEFT, UP]))
    assert rewards.tolist() == [256.0, 0.0]
    assert info["score"].tolist() == [256, 0]
    assert info["max_tile"].tolist() == [256, 128]
    assert info["action_mask"].dtype == bool and info["action_mask"].shape == (2, 4)


def test_termination_exactly_when_no_legal_move_and_next_step_autoreset():
    # a full checkerboard: no move changes it
    stuck = [[1, 2, 1, 2], [2, 1, 2, 1], [1, 2, 1, 2], [2, 1, 2, 1]]
    env = make_game2048(3, seed=4)
    obs, info = env.reset(options={"board": stuck})
    assert not info["action_mask"].any()
    obs, rewards, term, trunc, info = env.step(np.array([0, 1, 2]))
    assert term.all() and not trunc.any()
    assert rewards.tolist() == [0.0, 0.0, 0.0]
    assert info["_episode_score"].all() and info["_episode_max_tile"].all()
    assert info["episode_max_tile"].tolist() == [4, 4, 4]
    # NEXT_STEP: the following step ignores the action and starts new games with reward 0
    obs, rewards, term, trunc, info = env.step(np.array([0, 1, 2]))
    assert not term.any() and rewards.tolist() == [0.0, 0.0, 0.0]
    assert ((obs > 0).sum(axis=(1, 2)) == 2).all()
    assert (info["score"] == 0).all() and not info["_episode_score"].any()
    assert info["action_mask"].any(axis=1).all()


def test_termination_matches_reference_during_play():
    n = 64
    env = make_game2048(n, seed=9)
    obs, info = env.reset()
    rng = np.random.default_rng(9)
    ended = 0
    scores = np.zeros(n, dtype=np.int64)
    for _ in range(600):
        mask = info["action_mask"]
        actions = np.argmax(rng.random((n, 4)) * mask, axis=1)
        was_done = ~mask.any(axis=1)
        obs, rewards, term, _, info = env.step(actions)
        scores = np.where(was_done, 0, scores + rewards.astype(np.int64))
        for i in range(n):
            no_move = all(ref_move(obs[i].tolist(), a)[0] == obs[i].tolist() for a in range(4))
            assert bool(term[i]) == no_move
        assert (info["score"] == scores).all()
        assert (info["episode_score"][term] == scores[term]).all()
        ended += int(term.sum())
    assert ended > 20
    assert env.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.NEXT_STEP


def test_reset_options_board_and_env_ids():
    env = make_game2048(4, seed=0)
    obs0, _ = env.reset(seed=0)
    board = np.arange(16).reshape(4, 4) % 12
    obs, info = env.reset(options={"board": board.tolist(), "env_ids": [1, 3]})
    assert (obs[1] == board).all() and (obs[3] == board).all()
    assert (obs[0] == obs0[0]).all() and (obs[2] == obs0[2]).all()
    obs, _ = env.reset(options={"board": board})
    assert (obs == board).all()
    mask = np.array([True, False, False, False])
    obs2, _ = env.reset(options={"reset_mask": mask})
    assert ((obs2[0] > 0).sum() == 2) and (obs2[1:] == board).all()
    with pytest.raises(ValueError):
        env.reset(options={"board": [[16, 0, 0, 0]] * 4})
    single = Game2048Env()
    obs, info = single.reset(options={"board": board})
    assert (obs == board).all() and info["max_tile"] == 2**11


# -- gymnasium ---------------------------------------------------------------------------------
def test_check_env_passes_on_the_registered_single_env():
    register_envs()  # idempotent
    env = gymnasium.make(GAME2048_ID, render_mode="ansi")
    check_env(env.unwrapped, skip_render_check=False)
    obs, _info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert "2" in env.render()


def test_vector_spaces_and_make_vec():
    env = gymnasium.make_vec(GAME2048_ID, num_envs=5, vectorization_mode="vector_entry_point")
    assert isinstance(env.unwrapped, Game2048VectorEnv)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == env.single_observation_space.dtype == np.int64
    assert env.observation_space.contains(obs)
    obs, r, term, trunc, _info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    assert r.shape == term.shape == trunc.shape == (5,)


def test_single_env_follows_the_same_rules():
    env = Game2048Env()
    obs, info = env.reset(seed=3)
    rng = np.random.default_rng(3)
    score = 0
    for _ in range(300):
        a = int(rng.integers(4))
        ref, ref_reward = ref_move(obs.tolist(), a)
        new, r, term, _trunc, info = env.step(a)
        assert r == ref_reward
        score += ref_reward
        assert info["score"] == score
        n_diff = int((new != np.array(ref)).sum())
        assert n_diff == (0 if ref == obs.tolist() else 1)
        obs = new
        if term:
            assert not info["action_mask"].any() and info["episode_score"] == score
            obs, info = env.reset()
            score = 0


def test_import_mdl_does_not_import_numpy_or_gymnasium():
    code = "import sys, mdl, mdl.runtime; print('numpy' in sys.modules, 'gymnasium' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# -- seeding and checkpoints ---------------------------------------------------------------------
def _play(env, steps, seed_actions):
    rng = np.random.default_rng(seed_actions)
    out = []
    obs, info = env.observe() if hasattr(env, "observe") else (None, None)
    for _ in range(steps):
        actions = np.argmax(rng.random((env.num_envs, 4)) * info["action_mask"], axis=1)
        obs, r, term, _trunc, info = env.step(actions)
        out.append((obs.copy(), r.copy(), term.copy(), info["score"].copy()))
    return out


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            assert np.array_equal(u, v)


def test_seeding_is_reproducible():
    a, b = make_game2048(16), make_game2048(16)
    a.reset(seed=42)
    b.reset(seed=42)
    _same(_play(a, 300, 0), _play(b, 300, 0))
    c = make_game2048(16, seed=42)
    c.reset()
    d = make_game2048(16)
    d.reset(seed=42)
    _same(_play(c, 50, 1), _play(d, 50, 1))
    e = make_game2048(16)
    e.reset(seed=43)
    assert not np.array_equal(e.observe()[0], make_game2048(16, seed=42).reset()[0])


def test_get_state_set_state_continues_bit_exactly():
    env = make_game2048(32, seed=0)
    env.reset(seed=0)
    _play(env, 200, 5)
    state = pickle.loads(pickle.dumps(env.get_state()))
    first = _play(env, 300, 6)
    other = make_game2048(32, seed=999)
    other.reset()
    other.set_state(state)
    _same(first, _play(other, 300, 6))
    with pytest.raises(ValueError):
        make_game2048(8).set_state(state)


# -- the masked-random baseline -------------------------------------------------------------------
def masked_random_games(n_games: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One game per env, uniformly random legal moves: (final scores, max tiles). Taking the first
    game of every env (not the first games to finish) keeps long games from being under-counted."""
    env = make_game2048(n_games, seed=seed)
    _, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed + 1)
    scores = np.zeros(n_games, dtype=np.int64)
    tiles = np.zeros(n_games, dtype=np.int64)
    finished = np.zeros(n_games, dtype=bool)
    while not finished.all():
        actions = np.argmax(rng.random((n_games, 4)) * info["action_mask"], axis=1)
        _obs, _r, term, _trunc, info = env.step(actions)
        first = term & ~finished
        scores[first] = info["episode_score"][first]
        tiles[first] = info["episode_max_tile"][first]
        finished |= term
    return scores, tiles


def test_masked_random_baseline():
    # measured baseline: mean score 1,081, P(max tile >= 256) 7.4%
    scores, tiles = masked_random_games(2000, seed=2024)
    assert len(scores) == 2000
    assert abs(scores.mean() - 1081) < 0.05 * 1081, scores.mean()
    assert abs((tiles >= 256).mean() - 0.074) < 0.02, (tiles >= 256).mean()


def test_single_env_state_round_trip_and_termination():
    env = Game2048Env()
    env.reset(seed=8)
    for _ in range(50):
        env.step(int(env.np_random.integers(4)))
    state = pickle.loads(pickle.dumps(env.get_state()))
    a = [env.step(k % 4)[:3] for k in range(100)]
    other = Game2048Env()
    other.reset(seed=1)
    other.set_state(state)
    b = [other.step(k % 4)[:3] for k in range(100)]
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x[0], y[0]) and x[1:] == y[1:]
    stuck = [[1, 2, 1, 2], [2, 1, 2, 1], [1, 2, 1, 2], [2, 1, 2, 1]]
    obs, info = env.reset(options={"board": stuck})
    assert not info["action_mask"].any()
    obs2, r, term, trunc, info = env.step(0)
    assert term and not trunc and r == 0.0 and (obs2 == obs).all() and info["episode_max_tile"] == 4
    with pytest.raises(ValueError):
        env.step(4)


def test_record_episode_statistics_wrapper_works():
    from gymnasium.wrappers.vector import RecordEpisodeStatistics

    env = RecordEpisodeStatistics(make_game2048(8, seed=0))
    _, info = env.reset(seed=0)
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(600):
        actions = np.argmax(rng.random((8, 4)) * info["action_mask"], axis=1)
        _, _, term, _, info = env.step(actions)
        if term.any():
            assert (info["episode"]["r"][term] == info["episode_score"][term]).all()
            assert (info["episode"]["l"][term] == info["episode_length"][term]).all()
            ended += int(term.sum())
    assert ended > 0


def test_module_prefixed_id_imports_the_envs_package():
    code = (
        "import gymnasium; e = gymnasium.make('mdl.runtime.envs:mdl/Game2048-v0'); e.reset(seed=0); "
        "import mdl.runtime.envs as m; m.register_envs(); print(e.spec.id)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == GAME2048_ID
