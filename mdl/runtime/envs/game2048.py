"""2048 as a batched numpy environment (gymnasium ``VectorEnv``) and a single ``gymnasium.Env``.

Rules (issue 4):

- observation: the 4x4 board of exponents, ``int64`` (0 empty, k means the tile 2**k); row 0 is the
  top row, column 0 the left column;
- actions: 0 up, 1 right, 2 down, 3 left;
- reward: the sum of the tiles created by merges (two 2s merging give 4); a tile merges at most once
  per move, and the pair nearest the wall the tiles move towards merges first;
- after a move that changes the board one tile spawns in a uniformly random empty cell, 2 with
  probability 0.9 and 4 otherwise; a move that changes nothing leaves the board as it is, spawns
  nothing and rewards 0;
- a new game starts with two such tiles; the game terminates when no move changes the board.

Exponents are 4-bit, so the largest tile is 2**15 = 32768; two 32768 tiles do not merge (a board
that reaches them is far beyond any policy trained here).

Implementation: a board is a ``uint64`` of sixteen 4-bit exponents, the cell (r, c) in bits
``4 * (4 * r + c)``, so row r is the 16-bit number ``(board >> 16 * r) & 0xFFFF``. Tables built once
give, for all 65536 rows, the row after a move left or right, its merge reward and whether it changed.
Up and down are left and right on the transposed board. Everything is vectorised over the envs.

The vector env follows gymnasium 1.x's default ``AutoresetMode.NEXT_STEP``: the step that ends a game
returns ``terminated=True``; the next step of that env ignores its action, starts a new game and
returns its first observation with reward 0 and ``terminated=False``.

``infos`` of every ``reset`` and ``step`` (arrays over envs):

- ``action_mask`` (bool ``[n, 4]``): the moves that change the board;
- ``score`` (int64): the sum of the rewards of this game so far; ``max_tile`` (int64): the largest
  tile on the board (256, not 8);
- ``episode_score``, ``episode_max_tile``, ``episode_length``, each with its gymnasium-style mask
  ``_episode_score`` etc. (the same array: the envs whose game ended at this step, i.e.
  ``terminations``), 0 elsewhere, so a trainer can log finished games. There is deliberately no
  ``episode``/``_episode`` key: ``gymnasium.wrappers.vector.RecordEpisodeStatistics`` adds those and
  refuses to run when they exist.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

__all__ = [
    "Game2048Env",
    "Game2048VectorEnv",
    "boards_from_exponents",
    "exponents_from_boards",
    "legal_moves",
    "make_game2048",
    "move_boards",
]

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
MAX_EXPONENT = 15
_MASK16 = np.uint64(0xFFFF)
_ROW_SHIFTS = np.arange(4, dtype=np.uint64) * np.uint64(16)
_CELL_SHIFTS = np.arange(16, dtype=np.uint64) * np.uint64(4)
_NIBBLE = np.uint64(0xF)


def _build_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tables over all 65536 rows: result ``[2, 65536]`` (0 left, 1 right), reward ``[2, 65536]``,
    and ``changes`` (uint8: bit 0 left changes the row, bit 1 right does)."""
    rows = np.arange(65536, dtype=np.int64)
    cells = (rows[:, None] >> (4 * np.arange(4))) & 0xF  # [R, 4], cell 0 = low nibble = "left"
    # compact the non-empty tiles to the left, keeping their order
    order = np.argsort(cells == 0, axis=1, kind="stable")
    packed = np.zeros((65536, 8), dtype=np.int64)
    packed[:, :4] = np.take_along_axis(cells, order, axis=1)
    out = np.zeros((65536, 4), dtype=np.int64)
    reward = np.zeros(65536, dtype=np.int64)
    read = np.zeros(65536, dtype=np.int64)
    idx = np.arange(65536)
    for j in range(4):
        a = packed[idx, read]
        b = packed[idx, read + 1]
        merge = (a != 0) & (a == b) & (a < MAX_EXPONENT)
        out[:, j] = np.where(merge, a + 1, a)
        reward += np.where(merge, np.left_shift(1, a + 1), 0)
        read += np.where(merge, 2, 1)
    left = (out << (4 * np.arange(4))).sum(axis=1)
    # right: reverse the row, move left, reverse back
    rev = (cells[:, ::-1] << (4 * np.arange(4))).sum(axis=1)
    right = left[rev]
    right = (((right[:, None] >> (4 * np.arange(4))) & 0xF)[:, ::-1] << (4 * np.arange(4))).sum(axis=1)
    result = np.stack([left, right]).astype(np.uint64)
    rewards = np.stack([reward, reward[rev]]).astype(np.int64)
    changes = ((left != rows).astype(np.uint8) | ((right != rows).astype(np.uint8) << 1)).astype(np.uint8)
    return result.reshape(-1), rewards.reshape(-1), changes


_RESULT, _REWARD, _CHANGES = _build_tables()


_T1, _T2, _T3 = np.uint64(0xF0F00F0FF0F00F0F), np.uint64(0x0000F0F00000F0F0), np.uint64(0x0F0F00000F0F0000)
_T4, _T5, _T6 = np.uint64(0xFF00FF0000FF00FF), np.uint64(0x00FF00FF00000000), np.uint64(0x00000000FF00FF00)
_S12, _S24 = np.uint64(12), np.uint64(24)


def _transpose(x: np.ndarray) -> np.ndarray:
    """Transpose 4x4 nibble bitboards (cell (r, c) <-> (c, r))."""
    a = (x & _T1) | ((x & _T2) << _S12) | ((x & _T3) >> _S12)
    return (a & _T4) | ((a & _T5) >> _S24) | ((a & _T6) << _S24)


def boards_from_exponents(exponents: Any) -> np.ndarray:
    """``[..., 4, 4]`` exponents -> ``uint64[...]`` bitboards."""
    e = np.asarray(exponents)
    if e.shape[-2:] != (4, 4):
        raise ValueError(f"a 2048 board is 4x4 exponents, got shape {e.shape}")
    if e.size and (e.min() < 0 or e.max() > MAX_EXPONENT):
        raise ValueError(f"board exponents must lie in 0..{MAX_EXPONENT}")
    e = e.astype(np.uint64).reshape(*e.shape[:-2], 16)
    return np.bitwise_or.reduce(e << _CELL_SHIFTS, axis=-1)


def _cells(boards: np.ndarray) -> np.ndarray:
    return (boards[..., None] >> _CELL_SHIFTS) & _NIBBLE


def exponents_from_boards(boards: np.ndarray) -> np.ndarray:
    """``uint64[...]`` bitboards -> ``int64[..., 4, 4]`` exponents."""
    b = np.asarray(boards, dtype=np.uint64)
    return _cells(b).astype(np.int64).reshape(*b.shape, 4, 4)


def _row_or(table: np.ndarray, boards: np.ndarray) -> np.ndarray:
    r = (boards[:, None] >> _ROW_SHIFTS) & _MASK16
    t = table[r]
    return t[:, 0] | t[:, 1] | t[:, 2] | t[:, 3]


def legal_moves(boards: np.ndarray) -> np.ndarray:
    """bool ``[n, 4]``: which of up, right, down, left change each board."""
    boards = np.asarray(boards, dtype=np.uint64).reshape(-1)
    h = _row_or(_CHANGES, boards)
    v = _row_or(_CHANGES, _transpose(boards))
    mask = np.empty((boards.shape[0], 4), dtype=bool)
    mask[:, UP] = (v & 1) != 0
    mask[:, RIGHT] = (h & 2) != 0
    mask[:, DOWN] = (v & 2) != 0
    mask[:, LEFT] = (h & 1) != 0
    return mask


def move_boards(boards: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply one move per board (no spawn): returns (new boards, merge rewards int64)."""
    boards = np.asarray(boards, dtype=np.uint64).reshape(-1)
    actions = np.asarray(actions).reshape(-1)
    vertical = (actions == UP) | (actions == DOWN)
    src = np.where(vertical, _transpose(boards), boards)
    offset = ((actions == RIGHT) | (actions == DOWN)).astype(np.int64) * 65536
    rows = ((src[:, None] >> _ROW_SHIFTS) & _MASK16).astype(np.int64) + offset[:, None]
    new = np.bitwise_or.reduce(_RESULT[rows] << _ROW_SHIFTS, axis=1)
    reward = _REWARD[rows].sum(axis=1)
    new = np.where(vertical, _transpose(new), new)
    return new, reward


def _spawn(boards: np.ndarray, cells: np.ndarray, u_pos: np.ndarray, u_val: np.ndarray) -> None:
    """Spawn one tile per board in place (every board must have an empty cell). ``cells`` is the
    ``[n, 16]`` cell array of ``boards`` and is updated too."""
    empty = cells == 0
    count = empty.sum(axis=1)
    k = (u_pos * count).astype(np.int64)
    pos = np.argmax(np.cumsum(empty, axis=1) > k[:, None], axis=1)
    value = np.where(u_val < 0.1, np.uint64(2), np.uint64(1))
    cells[np.arange(cells.shape[0]), pos] = value
    boards |= value << (pos.astype(np.uint64) * np.uint64(4))


def _new_boards(n: int, rng: np.random.Generator) -> np.ndarray:
    """Fresh games: two tiles (2 w.p. 0.9, else 4) in two distinct uniformly random cells."""
    p1 = rng.integers(0, 16, size=n)
    p2 = rng.integers(0, 15, size=n)
    p2 = p2 + (p2 >= p1)
    v = np.where(rng.random((n, 2)) < 0.1, np.uint64(2), np.uint64(1))
    return (v[:, 0] << (p1.astype(np.uint64) * np.uint64(4))) | (
        v[:, 1] << (p2.astype(np.uint64) * np.uint64(4))
    )


def _max_tile(cells: np.ndarray) -> np.ndarray:
    m = cells.max(axis=1).astype(np.int64)
    return np.where(m > 0, np.left_shift(1, m), 0)


def _board_option(board: Any, n: int) -> np.ndarray:
    b = boards_from_exponents(board)
    if b.ndim == 0:
        return np.full(n, b, dtype=np.uint64)
    if b.shape != (n,):
        raise ValueError(f"options['board'] must be one 4x4 board or {n} of them, got {b.shape[0]}")
    return b


def _observation_space() -> spaces.Box:
    return spaces.Box(low=0, high=MAX_EXPONENT, shape=(4, 4), dtype=np.int64)


def render_board(exponents: np.ndarray, score: int | None = None) -> str:
    """A text picture of one board of exponents."""
    lines = [] if score is None else [f"score {score}"]
    sep = "+" + "+".join(["------"] * 4) + "+"
    lines.append(sep)
    for row in np.asarray(exponents).reshape(4, 4):
        lines.append("|" + "|".join(f"{(1 << int(e)) if e else '':>6}" for e in row) + "|")
        lines.append(sep)
    return "\n".join(lines) + "\n"


class Game2048VectorEnv(VectorEnv):
    """``num_envs`` games of 2048 stepped together in numpy (NEXT_STEP autoreset)."""

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": ["ansi"]}

    def __init__(self, num_envs: int, seed: int | None = None, render_mode: str | None = None):
        if num_envs < 1:
            raise ValueError("num_envs must be at least 1")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        self.single_observation_space = _observation_space()
        self.single_action_space = spaces.Discrete(4)
        self.observation_space = gymnasium.vector.utils.batch_space(
            self.single_observation_space, self.num_envs
        )
        self.action_space = gymnasium.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self._rng = np.random.default_rng(seed)
        n = self.num_envs
        self._boards = np.zeros(n, dtype=np.uint64)
        self._scores = np.zeros(n, dtype=np.int64)
        self._lengths = np.zeros(n, dtype=np.int64)
        self._needs_reset = np.zeros(n, dtype=bool)
        self._all = np.arange(n)

    # -- state ---------------------------------------------------------------------------------
    @property
    def boards(self) -> np.ndarray:
        """The current boards as exponents ``[num_envs, 4, 4]`` (a copy)."""
        return exponents_from_boards(self._boards)

    def get_state(self) -> dict[str, Any]:
        """A picklable snapshot (boards, scores, lengths, pending resets, RNG) for checkpoints."""
        return {
            "num_envs": self.num_envs,
            "boards": self._boards.copy(),
            "scores": self._scores.copy(),
            "lengths": self._lengths.copy(),
            "needs_reset": self._needs_reset.copy(),
            "rng": self._rng.bit_generator.state,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a snapshot from `get_state`; the following steps continue bit-exactly."""
        if int(state["num_envs"]) != self.num_envs:
            raise ValueError(f"state is for {state['num_envs']} envs, this env has {self.num_envs}")
        self._boards = np.array(state["boards"], dtype=np.uint64)
        self._scores = np.array(state["scores"], dtype=np.int64)
        self._lengths = np.array(state["lengths"], dtype=np.int64)
        self._needs_reset = np.array(state["needs_reset"], dtype=bool)
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        self._rng = rng

    def observe(self) -> tuple[np.ndarray, dict[str, Any]]:
        """The current observation and infos without stepping (e.g. after `set_state`)."""
        cells = _cells(self._boards)
        return self._obs_infos(cells, np.zeros(self.num_envs, dtype=bool))

    # -- gymnasium API -------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start new games. ``options``: ``board`` (one 4x4 board of exponents, or one per reset env)
        starts from that board; ``env_ids`` (indices) or ``reset_mask`` (bool ``[num_envs]``) resets
        only those envs, the others keep their games."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        options = options or {}
        if "env_ids" in options and options["env_ids"] is not None:
            ids = np.asarray(options["env_ids"], dtype=np.int64).reshape(-1)
        elif "reset_mask" in options and options["reset_mask"] is not None:
            ids = np.flatnonzero(np.asarray(options["reset_mask"], dtype=bool))
        else:
            ids = self._all
        if options.get("board") is not None:
            self._boards[ids] = _board_option(options["board"], len(ids))
        else:
            self._boards[ids] = _new_boards(len(ids), self._rng)
        self._scores[ids] = 0
        self._lengths[ids] = 0
        self._needs_reset[ids] = False
        return self.observe()

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions).reshape(-1)
        if actions.shape[0] != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got {actions.shape[0]}")
        new, reward = move_boards(self._boards, actions)
        changed = new != self._boards
        u = self._rng.random((2, self.num_envs))
        cells = _cells(new)
        if changed.all():
            _spawn(new, cells, u[0], u[1])
        elif changed.any():
            idx = np.flatnonzero(changed)
            sub_b, sub_c = new[idx], cells[idx]
            _spawn(sub_b, sub_c, u[0, idx], u[1, idx])
            new[idx], cells[idx] = sub_b, sub_c
        resetting = self._needs_reset
        if resetting.any():
            idx = np.flatnonzero(resetting)
            fresh = _new_boards(len(idx), self._rng)
            new[idx] = fresh
            cells[idx] = _cells(fresh)
            reward[idx] = 0
            self._scores[idx] = 0
            self._lengths[idx] = 0
        self._boards = new
        self._scores += reward
        self._lengths += ~resetting
        obs, infos = self._obs_infos(cells, None)
        terminated = ~infos["action_mask"].any(axis=1)
        self._needs_reset = terminated.copy()
        infos["episode_score"] = np.where(terminated, self._scores, 0)
        infos["episode_max_tile"] = np.where(terminated, infos["max_tile"], 0)
        infos["episode_length"] = np.where(terminated, self._lengths, 0)
        infos["_episode_score"] = infos["_episode_max_tile"] = infos["_episode_length"] = terminated
        return obs, reward.astype(np.float64), terminated, np.zeros(self.num_envs, dtype=bool), infos

    def _obs_infos(
        self, cells: np.ndarray, terminated: np.ndarray | None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs = cells.astype(np.int64).reshape(self.num_envs, 4, 4)
        mask = legal_moves(self._boards)
        infos: dict[str, Any] = {
            "action_mask": mask,
            "score": self._scores.copy(),
            "max_tile": _max_tile(cells),
        }
        infos["_action_mask"] = infos["_score"] = infos["_max_tile"] = np.ones(self.num_envs, dtype=bool)
        if terminated is not None:
            z = np.zeros(self.num_envs, dtype=np.int64)
            infos.update(episode_score=z, episode_max_tile=z, episode_length=z)
            infos["_episode_score"] = infos["_episode_max_tile"] = infos["_episode_length"] = terminated
        return obs, infos

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        boards = exponents_from_boards(self._boards)
        return "\n".join(
            f"env {i}: " + render_board(boards[i], int(self._scores[i])) for i in range(self.num_envs)
        )


# -- scalar versions for the single env: Python ints and lists beat numpy's per-call overhead -----
_RESULT_LIST: list[int] = _RESULT.tolist()
_REWARD_LIST: list[int] = _REWARD.tolist()
_CHANGES_LIST: list[int] = _CHANGES.tolist()


def _transpose_int(x: int) -> int:
    a = (x & 0xF0F00F0FF0F00F0F) | ((x & 0x0000F0F00000F0F0) << 12) | ((x & 0x0F0F00000F0F0000) >> 12)
    return (a & 0xFF00FF0000FF00FF) | ((a & 0x00FF00FF00000000) >> 24) | ((a & 0x00000000FF00FF00) << 24)


def _move_int(x: int, action: int) -> tuple[int, int]:
    vertical = action in (UP, DOWN)
    src = _transpose_int(x) if vertical else x
    off = 65536 if action in (RIGHT, DOWN) else 0
    res, rew = _RESULT_LIST, _REWARD_LIST
    r0, r1 = off + (src & 0xFFFF), off + ((src >> 16) & 0xFFFF)
    r2, r3 = off + ((src >> 32) & 0xFFFF), off + (src >> 48)
    new = res[r0] | (res[r1] << 16) | (res[r2] << 32) | (res[r3] << 48)
    return (_transpose_int(new) if vertical else new), rew[r0] + rew[r1] + rew[r2] + rew[r3]


def _legal_int(x: int) -> np.ndarray:
    ch = _CHANGES_LIST
    h = ch[x & 0xFFFF] | ch[(x >> 16) & 0xFFFF] | ch[(x >> 32) & 0xFFFF] | ch[x >> 48]
    t = _transpose_int(x)
    v = ch[t & 0xFFFF] | ch[(t >> 16) & 0xFFFF] | ch[(t >> 32) & 0xFFFF] | ch[t >> 48]
    return np.array([v & 1, h & 2, v & 2, h & 1], dtype=bool)


class Game2048Env(gymnasium.Env):
    """One game of 2048 (``mdl/Game2048-v0``); the same rules and infos as `Game2048VectorEnv`.

    ``info`` holds ``action_mask`` (bool ``[4]``), ``score`` and ``max_tile``, and on the step that
    ends the game ``episode_score``, ``episode_max_tile`` and ``episode_length``. The board is kept
    as a Python int (the same bit layout as the vector env), which is faster than numpy for one game.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "human"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None):
        if render_mode not in (None, "ansi", "human"):
            raise ValueError(f"render_mode must be None, 'ansi' or 'human', got {render_mode!r}")
        self.render_mode = render_mode
        self.observation_space = _observation_space()
        self.action_space = spaces.Discrete(4)
        self._board = 0
        self._score = 0
        self._length = 0

    def _obs_info(self) -> tuple[np.ndarray, dict[str, Any]]:
        x = self._board
        cells = [(x >> s) & 0xF for s in range(0, 64, 4)]
        top = max(cells)
        info = {"action_mask": _legal_int(x), "score": self._score, "max_tile": (1 << top) if top else 0}
        return np.array(cells, dtype=np.int64).reshape(4, 4), info

    def get_state(self) -> dict[str, Any]:
        """A picklable snapshot (board, score, length, RNG)."""
        return {
            "board": self._board,
            "score": self._score,
            "length": self._length,
            "rng": self.np_random.bit_generator.state,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._board, self._score, self._length = (
            int(state["board"]),
            int(state["score"]),
            int(state["length"]),
        )
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        self.np_random = rng

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """``options={"board": [[...]]}`` starts from that board of exponents."""
        super().reset(seed=seed)
        if options and options.get("board") is not None:
            self._board = int(_board_option(options["board"], 1)[0])
        else:
            self._board = int(_new_boards(1, self.np_random)[0])
        self._score = 0
        self._length = 0
        obs, info = self._obs_info()
        if self.render_mode == "human":
            self.render()
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        try:
            a = int(action)
        except (TypeError, ValueError):
            a = -1
        if a not in (0, 1, 2, 3) or a != action:
            raise ValueError(f"action must be 0 (up), 1 (right), 2 (down) or 3 (left), got {action!r}")
        new, reward = _move_int(self._board, a)
        if new != self._board:
            u_pos, u_val = self.np_random.random(2)
            empty = [s for s in range(0, 64, 4) if not (new >> s) & 0xF]
            new |= (2 if u_val < 0.1 else 1) << empty[int(u_pos * len(empty))]
        self._board = new
        self._score += reward
        self._length += 1
        obs, info = self._obs_info()
        terminated = not info["action_mask"].any()
        if terminated:
            info["episode_score"] = self._score
            info["episode_max_tile"] = info["max_tile"]
            info["episode_length"] = self._length
        if self.render_mode == "human":
            self.render()
        return obs, float(reward), terminated, False, info

    def render(self) -> str | None:
        if self.render_mode is None:
            return None
        text = render_board(exponents_from_boards(np.uint64(self._board)), self._score)
        if self.render_mode == "human":
            print(text)
            return None
        return text


def make_game2048(num_envs: int, seed: int | None = None) -> Game2048VectorEnv:
    """The batched env with ``num_envs`` games; ``seed`` seeds its generator (``reset(seed=)`` too)."""
    return Game2048VectorEnv(num_envs, seed=seed)
