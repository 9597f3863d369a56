"""Episode sequence buffer: whole episodes stored, fixed-length windows sampled inside one episode.

An episode of length ``T`` (``T`` control steps) is ``x_0..x_T`` (``T + 1`` observations), actions
``a_0..a_{T-1}``, rewards ``r_0..r_{T-1}``, a *who acted* flag per step (True = the guide acted),
optionally ``k`` unweighted reward terms per step, and how it ended: ``terminated`` (a crash, a
true end state) or ``truncated`` (the time limit). On a truncation it also carries a bootstrap
action ``a_T``: the acting policy queried on ``x_T`` without an environment step.

Storage layout. All per-step data live in flat preallocated NumPy rings of
``rows = capacity + capacity // min_len`` rows. An episode occupies ``T + 1`` consecutive rows
(modulo ``rows``) starting at its offset ``o``; row ``o + k`` holds

* ``obs[o + k] = x_k`` for ``k = 0..T`` (the final observation ``x_T`` included),
* ``actions[o + k] = a_k`` for ``k < T`` and ``actions[o + T] = a_T`` (the bootstrap action on a
  truncation, zeros on a termination),
* ``rewards``, ``who`` and ``terms`` at ``k < T``; their row ``o + T`` is zero.

At most ``capacity // min_len`` episodes fit in ``capacity`` steps, so ``rows`` always suffices.
A per-episode table (a ring of ``capacity // min_len`` entries) holds offset, length ``T``, the two
end flags and the number of windows. Episodes are evicted oldest first, whole, until a new one
fits in ``capacity`` steps.

Windows of ``L = window`` steps start at ``s in {0, stride, 2 stride, ...}`` while ``s + L <= T``,
plus the end-aligned start ``T - L`` (deduplicated); an episode with ``T < L`` (stored only when
``min_len < L``) has one window at ``s = 0``, right-padded, with ``mask`` False on the padded steps.

Targets. For window step ``t`` (episode step) with ``n = lookahead`` and ``n' = min(n, T - t)``,

    y_t = sum_{j<n'} gamma^j r_{t+j} + gamma^{n'} (1 - c_t) min_j Q'_j(x_{t+n'}, a~_{t+n'}),

where ``c_t = 1`` only if the episode terminated and ``t + n' = T`` (a truncation bootstraps from
``x_T`` with the stored ``a_T``), and ``a~ = clip(a^buf + clip(eps, -0.5, 0.5), -1, 1)`` is formed
by the caller from the stored action. Rewards beyond the window end (inside the episode) are read
as look-ahead, so the last window steps get full ``n``-step returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch

__all__ = ["EpisodeSequenceBuffer", "EpisodeWriter", "SequenceBatch"]

_RINGS = ("obs", "actions", "rewards", "who", "terms")
#: Bytes per episode-table entry: start, length and windows (int64), terminated, truncated.
EPISODE_ENTRY_BYTES = 3 * 8 + 2


class SequenceBatch(NamedTuple):
    """A batch of ``B`` windows of ``L`` steps, float32 tensors except ``mask`` and ``who`` (bool)
    and ``bootstrap_index`` (int64).

    ``obs [B, L, n]``, ``actions [B, L, m]``, ``rewards [B, L]``, ``mask [B, L]`` (the step exists
    in the episode), ``who [B, L]``, ``nstep_return [B, L]`` (``sum_{j<n'} gamma^j r_{t+j}``),
    ``bootstrap_obs [B, L, n]`` (``x_{t+n'}``), ``bootstrap_action [B, L, m]`` (``a^buf_{t+n'}``),
    ``bootstrap_discount [B, L]`` (``gamma^{n'} (1 - c_t)``) and ``bootstrap_index [B, L]``
    (int64: the window position ``i + n'`` of ``x_{t+n'}``, which may lie past the window or
    the episode). The critic target is
    ``y = nstep_return + bootstrap_discount * min_j Q'_j(bootstrap_obs, noisy(bootstrap_action))``.
    Every field is zero (False) on padded steps.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    mask: torch.Tensor
    who: torch.Tensor
    nstep_return: torch.Tensor
    bootstrap_obs: torch.Tensor
    bootstrap_action: torch.Tensor
    bootstrap_discount: torch.Tensor
    bootstrap_index: torch.Tensor


def _checked(name: str, x: Any, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """``x`` as an array of ``dtype``; ValueError naming ``name`` unless its shape is ``shape``."""
    a = np.asarray(x, dtype)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return a


class EpisodeSequenceBuffer:
    """FIFO-by-episode store of whole episodes, sampling windows that stay inside one episode.

    Args:
        obs_dim, act_dim: flat observation and action sizes.
        capacity: stored steps (sum of episode lengths ``T``); whole oldest episodes are evicted.
        window: window length ``L`` in steps.
        lookahead: ``n`` of the ``n``-step return (>= 1).
        stride: spacing of window starts in steps (1 = every start).
        min_len: episodes with ``T < min_len`` are not stored (default ``window``); below
            ``window`` short episodes give right-padded windows.
        reward_terms: number ``k`` of unweighted reward terms stored per step (0 = none).
        seed: an int or :class:`numpy.random.SeedSequence` for the buffer's own generator.
        device: where sampled tensors are put.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        capacity: int = 1_000_000,
        window: int = 100,
        lookahead: int = 2,
        stride: int = 50,
        min_len: int | None = None,
        reward_terms: int = 0,
        seed: int | np.random.SeedSequence = 0,
        device: str = "cpu",
    ) -> None:
        min_len = window if min_len is None else min_len
        for name, v in (("window", window), ("lookahead", lookahead), ("stride", stride)):
            if v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        if not 1 <= min_len <= capacity:
            raise ValueError(f"min_len must be in [1, capacity={capacity}], got {min_len}")
        if reward_terms < 0:
            raise ValueError(f"reward_terms must be >= 0, got {reward_terms}")
        self.obs_dim, self.act_dim, self.capacity = obs_dim, act_dim, capacity
        self.window, self.lookahead, self.stride = window, lookahead, stride
        self.min_len, self.reward_terms = min_len, reward_terms
        self.device = torch.device(device)
        self.max_episodes = capacity // min_len
        self.rows = capacity + self.max_episodes
        self.obs = np.zeros((self.rows, obs_dim), np.float32)
        self.actions = np.zeros((self.rows, act_dim), np.float32)
        self.rewards = np.zeros(self.rows, np.float32)
        self.who = np.zeros(self.rows, bool)
        self.terms = np.zeros((self.rows, reward_terms), np.float32)
        self.ep_start = np.zeros(self.max_episodes, np.int64)
        self.ep_len = np.zeros(self.max_episodes, np.int64)
        self.ep_windows = np.zeros(self.max_episodes, np.int64)
        self.ep_terminated = np.zeros(self.max_episodes, bool)
        self.ep_truncated = np.zeros(self.max_episodes, bool)
        self.rng = np.random.default_rng(seed)
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.ptr, self.size, self.ep_head, self.ep_count, self._num_windows = 0, 0, 0, 0, 0
        self._index: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.size

    @property
    def num_episodes(self) -> int:
        """Episodes stored now."""
        return self.ep_count

    @property
    def num_windows(self) -> int:
        """Window start positions available to sampling now (over all stored episodes)."""
        return self._num_windows

    @property
    def bytes_per_step(self) -> int:
        """Bytes of one stored row: ``4 (obs_dim + act_dim + 1 + k) + 1`` (float32 obs, action,
        reward and terms, bool who); :attr:`nbytes` is the whole buffer."""
        return 4 * (self.obs_dim + self.act_dim + 1 + self.reward_terms) + 1

    @property
    def nbytes(self) -> int:
        """Bytes the buffer holds whatever it stores: ``rows * bytes_per_step`` for the rings
        (``rows = capacity + capacity // min_len``: an episode of T steps takes T + 1 rows, its
        final observation included) plus 26 bytes per episode-table entry. With ``min_len = 1``
        the rings are twice the capacity."""
        return self.rows * self.bytes_per_step + self.max_episodes * EPISODE_ENTRY_BYTES

    def _window_counts(self, lengths: np.ndarray) -> np.ndarray:
        """Windows per episode: ``(T - L) // stride + 1``, +1 if the end-aligned start is new."""
        extra = np.maximum(lengths - self.window, 0)
        return extra // self.stride + 1 + (extra % self.stride != 0)

    def _window_starts(self, lengths: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Start of window ``j``: ``min(j stride, max(T - L, 0))`` (the last one end-aligned)."""
        return np.minimum(j * self.stride, np.maximum(lengths - self.window, 0))

    def _fifo(self) -> np.ndarray:
        """Table indices of the stored episodes, oldest first."""
        tail = self.ep_head - self.ep_count
        return (tail + np.arange(self.ep_count)) % self.max_episodes

    def _validated(
        self,
        obs: Any,
        actions: Any,
        rewards: Any,
        terminated: bool,
        truncated: bool,
        bootstrap_action: Any,
        who: Any,
        reward_terms: Any,
    ) -> dict[str, np.ndarray]:
        """The episode's rows as arrays (``T + 1`` each, row ``T`` as in the layout), checked."""
        rewards = np.asarray(rewards, np.float32)
        if rewards.ndim != 1:
            raise ValueError(f"rewards must have shape (T,), got {rewards.shape}")
        if bool(terminated) == bool(truncated):
            raise ValueError("an episode ends by exactly one of terminated / truncated")
        if truncated and bootstrap_action is None:
            raise ValueError("bootstrap_action (a_T, the policy on x_T) is required on truncation")
        k, t = self.reward_terms, len(rewards)
        if (reward_terms is None) != (k == 0):
            raise ValueError(f"reward_terms must be given iff the buffer stores them (k={k})")
        a_t = np.zeros(self.act_dim, np.float32)
        if truncated:
            a_t = _checked("bootstrap_action", bootstrap_action, (self.act_dim,))
        who = np.zeros(t, bool) if who is None else _checked("who", who, (t,), bool)
        terms = np.zeros((t, k)) if reward_terms is None else reward_terms
        return {
            "obs": _checked("obs", obs, (t + 1, self.obs_dim)),
            "actions": np.vstack([_checked("actions", actions, (t, self.act_dim)), a_t]),
            "rewards": np.append(rewards, np.float32(0)),
            "who": np.append(who, False),
            "terms": np.vstack([_checked("reward_terms", terms, (t, k)), np.zeros((1, k))]),
        }

    def add_episode(
        self,
        obs: Any,
        actions: Any,
        rewards: Any,
        terminated: bool,
        truncated: bool,
        bootstrap_action: Any = None,
        who: Any = None,
        reward_terms: Any = None,
    ) -> bool:
        """Store one episode (shapes as in the module docstring); False if ``T < min_len``.

        ``bootstrap_action`` is required on truncation and ignored on termination; ``who``
        defaults to all False; ``reward_terms [T, k]`` is required iff the buffer stores terms.
        """
        rows = self._validated(
            obs, actions, rewards, terminated, truncated, bootstrap_action, who, reward_terms
        )
        t = len(rows["rewards"]) - 1
        if t < self.min_len:
            return False
        if t > self.capacity:
            raise ValueError(f"episode of {t} steps exceeds the capacity of {self.capacity}")
        while self.size + t > self.capacity:
            self._evict_oldest()
        idx = (self.ptr + np.arange(t + 1)) % self.rows
        for f in _RINGS:
            getattr(self, f)[idx] = rows[f]
        e = self.ep_head
        self.ep_start[e], self.ep_len[e] = self.ptr, t
        self.ep_terminated[e], self.ep_truncated[e] = bool(terminated), bool(truncated)
        self.ep_windows[e] = self._window_counts(np.int64(t))
        self.ptr = (self.ptr + t + 1) % self.rows
        self.ep_head = (e + 1) % self.max_episodes
        self.ep_count += 1
        self.size += t
        self._num_windows += int(self.ep_windows[e])
        self._index = None
        return True

    def _evict_oldest(self) -> None:
        e = (self.ep_head - self.ep_count) % self.max_episodes
        self.size -= int(self.ep_len[e])
        self._num_windows -= int(self.ep_windows[e])
        self.ep_count -= 1
        self._index = None

    def sample_windows(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Uniform windows (with replacement): table indices of their episodes and their starts."""
        if self._num_windows == 0:
            raise RuntimeError("cannot sample from an empty sequence buffer")
        if self._index is None:
            fifo = self._fifo()
            self._index = fifo, np.cumsum(self.ep_windows[fifo])
        fifo, cum = self._index
        w = self.rng.integers(0, self._num_windows, size=batch_size)
        k = np.searchsorted(cum, w, side="right")
        eps = fifo[k]
        j = w - (cum[k] - self.ep_windows[eps])
        return eps, self._window_starts(self.ep_len[eps], j)

    def _reward_rows(self, idx: np.ndarray, coefficients: Sequence[float] | None) -> np.ndarray:
        """Rewards at ring rows ``idx``: stored, or relabelled ``constant - sum_i w_i term_i``."""
        if coefficients is None:
            return self.rewards[idx]
        if self.reward_terms == 0:
            raise ValueError("reward relabelling needs stored reward terms (reward_terms=0)")
        c = np.asarray(coefficients, np.float64)
        if c.shape != (self.reward_terms + 1,):
            raise ValueError(
                f"coefficients must be (constant, w_1..w_{self.reward_terms}), got shape {c.shape}"
            )
        return c[0] - self.terms[idx] @ c[1:]

    def gather(
        self,
        eps: np.ndarray,
        starts: np.ndarray,
        gamma: float,
        coefficients: Sequence[float] | None = None,
    ) -> SequenceBatch:
        """The windows ``(eps, starts)`` with ``n``-step returns and bootstraps, as tensors."""
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        length = self.ep_len[eps][:, None]  # [B, 1]
        offset = self.ep_start[eps][:, None]
        t = starts[:, None] + np.arange(self.window)  # episode steps [B, L]
        mask = t < length
        t = np.minimum(t, length)
        n_eff = np.minimum(self.lookahead, length - t)  # n' (0 on padded steps)
        j = np.arange(self.lookahead)
        ahead = (offset[..., None] + np.minimum(t[..., None] + j, length[..., None])) % self.rows
        r_ahead = self._reward_rows(ahead, coefficients) * (j < n_eff[..., None])
        nstep = (r_ahead * gamma**j).sum(-1)
        b = (offset + t + n_eff) % self.rows
        crash = self.ep_terminated[eps][:, None] & (t + n_eff == length)
        discount = np.where(mask & ~crash, float(gamma) ** n_eff, 0.0)
        here = (offset + t) % self.rows
        m3 = mask[..., None]

        def put(a: np.ndarray, dtype: type = np.float32) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a, dtype), device=self.device)

        return SequenceBatch(
            obs=put(self.obs[here] * m3),
            actions=put(self.actions[here] * m3),
            rewards=put(self._reward_rows(here, coefficients) * mask),
            mask=put(mask, bool),
            who=put(self.who[here] & mask, bool),
            nstep_return=put(nstep * mask),
            bootstrap_obs=put(self.obs[b] * m3),
            bootstrap_action=put(self.actions[b] * m3),
            bootstrap_discount=put(discount),
            bootstrap_index=put((np.arange(self.window) + n_eff) * mask, np.int64),
        )

    def sample(
        self, batch_size: int, gamma: float, coefficients: Sequence[float] | None = None
    ) -> SequenceBatch:
        """``batch_size`` uniform windows; ``coefficients = (constant, w_1..w_k)`` relabels every
        reward (window and look-ahead) from the stored terms as ``r = constant - sum_i w_i term_i``
        (e.g. under the current curriculum); ValueError if the buffer stores no terms."""
        return self.gather(*self.sample_windows(batch_size), gamma, coefficients)

    def _config(self) -> dict[str, int]:
        keys = ("obs_dim", "act_dim", "capacity", "window", "lookahead", "stride", "min_len")
        return {k: getattr(self, k) for k in (*keys, "reward_terms")}

    def state_dict(self, include_data: bool = True) -> dict[str, Any]:
        """Configuration, RNG state and (optionally) the stored episodes, oldest first, as plain
        data; rows are compacted so a loaded buffer's ``state_dict`` equals this one."""
        state: dict[str, Any] = {"config": self._config(), "rng": self.rng.bit_generator.state}
        if include_data:
            fifo = self._fifo()
            first = self.ep_start[fifo[0]] if self.ep_count else 0
            idx = (first + np.arange(self.size + self.ep_count)) % self.rows
            data = {f: torch.from_numpy(getattr(self, f)[idx]) for f in _RINGS}
            data["lengths"] = torch.from_numpy(self.ep_len[fifo])
            data["terminated"] = torch.from_numpy(self.ep_terminated[fifo])
            data["truncated"] = torch.from_numpy(self.ep_truncated[fifo])
            state["data"] = data
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; a checkpoint of another window, look-ahead or capacity
        setting raises ``ValueError`` naming the values."""
        mismatch = {k: v for k, v in state["config"].items() if self._config()[k] != v}
        if mismatch:
            raise ValueError(f"sequence buffer config mismatch (checkpoint values): {mismatch}")
        self.rng.bit_generator.state = state["rng"]
        if "data" not in state:  # counters restored only with the data they describe
            return
        d = state["data"]
        lengths = d["lengths"].numpy()
        n, used = len(lengths), int(lengths.sum()) + len(lengths)
        for f in _RINGS:
            getattr(self, f)[:used] = d[f].numpy()
        self._reset_counters()
        self.ep_start[:n] = np.cumsum(lengths + 1) - (lengths + 1)
        self.ep_len[:n], self.ep_windows[:n] = lengths, self._window_counts(lengths)
        self.ep_terminated[:n] = d["terminated"].numpy()
        self.ep_truncated[:n] = d["truncated"].numpy()
        self.ptr, self.size = used % self.rows, used - n
        self.ep_head, self.ep_count = n % self.max_episodes, n
        self._num_windows = int(self.ep_windows[:n].sum())


@dataclass
class _OpenEpisode:
    """One drone's episode so far: ``x_0..x_t`` and the per-step rows, end flags once it ended."""

    obs: list[np.ndarray]
    actions: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    who: list[bool] = field(default_factory=list)
    terms: list[np.ndarray] = field(default_factory=list)
    terminated: bool = False
    truncated: bool = False


class EpisodeWriter:
    """Accumulates the steps of ``N`` parallel drones and hands back finished episodes.

    Per step, ``obs_next`` must be the true ``x_{t+1}`` (the final observation for a drone whose
    episode ended, not the auto-reset one); after :meth:`finish`, :meth:`begin` the drone with its
    reset observation. A step both terminated and truncated counts as terminated (a crash).
    """

    def __init__(self, num_envs: int, obs_dim: int, act_dim: int, reward_terms: int = 0) -> None:
        self.num_envs, self.obs_dim, self.act_dim = num_envs, obs_dim, act_dim
        self.reward_terms = reward_terms
        self._open: list[_OpenEpisode | None] = [None] * num_envs

    def begin(self, i: int, obs_i: Any) -> None:
        """Start drone ``i``'s episode with ``x_0`` (discarding any unfinished one)."""
        self._open[i] = _OpenEpisode(obs=[_checked("obs_i", obs_i, (self.obs_dim,)).copy()])

    def begin_all(self, obs: Any) -> None:
        obs = _checked("obs", obs, (self.num_envs, self.obs_dim))
        for i in range(self.num_envs):
            self.begin(i, obs[i])

    def append(
        self,
        obs_next: Any,
        actions: Any,
        rewards: Any,
        terminated: Any,
        truncated: Any,
        who: Any,
        active: Any,
        reward_terms: Any = None,
    ) -> list[int]:
        """Append one step for the drones where ``active``; the drones whose episode ended here."""
        n = self.num_envs
        if (reward_terms is None) != (self.reward_terms == 0):
            raise ValueError(f"reward_terms must be given iff the writer has k={self.reward_terms}")
        k = self.reward_terms
        terms = np.zeros((n, k)) if reward_terms is None else reward_terms
        rows = (
            _checked("obs_next", obs_next, (n, self.obs_dim)),
            _checked("actions", actions, (n, self.act_dim)),
            _checked("rewards", rewards, (n,)),
            _checked("who", who, (n,), bool),
            _checked("reward_terms", terms, (n, k)),
        )
        term = _checked("terminated", terminated, (n,), bool)
        trunc = _checked("truncated", truncated, (n,), bool) & ~term
        ended = []
        active = np.flatnonzero(_checked("active", active, (n,), bool))
        for i, ep in [(i, self._open_episode(i)) for i in active]:  # all checked before any write
            for store, row in zip(
                (ep.obs, ep.actions, ep.rewards, ep.who, ep.terms), rows, strict=True
            ):
                store.append(row[i].copy())
            ep.terminated, ep.truncated = bool(term[i]), bool(trunc[i])
            if ep.terminated or ep.truncated:
                ended.append(int(i))
        return ended

    def _open_episode(self, i: int) -> _OpenEpisode:
        ep = self._open[i]
        if ep is None:
            raise RuntimeError(f"drone {i} has no open episode: call begin({i}, obs) first")
        if ep.terminated or ep.truncated:
            raise RuntimeError(f"drone {i}'s episode has ended: call finish({i}) first")
        return ep

    def finish(self, i: int, bootstrap_action: Any = None) -> dict[str, Any]:
        """Drone ``i``'s ended episode as keyword arguments of ``add_episode``; clears drone ``i``.

        ``bootstrap_action`` (``a_T``, the acting policy on ``x_T``) is required on truncation.
        """
        ep = self._open[i]
        if ep is None or not (ep.terminated or ep.truncated):
            raise RuntimeError(f"drone {i} has no ended episode to finish")
        if ep.truncated and bootstrap_action is None:
            raise ValueError("bootstrap_action (a_T, the policy on x_T) is required on truncation")
        out: dict[str, Any] = {
            "obs": np.stack(ep.obs),
            "actions": np.stack(ep.actions),
            "rewards": np.asarray(ep.rewards, np.float32),
            "terminated": ep.terminated,
            "truncated": ep.truncated,
            "bootstrap_action": None,
            "who": np.asarray(ep.who, bool),
        }
        if ep.truncated:
            out["bootstrap_action"] = _checked(
                "bootstrap_action", bootstrap_action, (self.act_dim,)
            )
        if self.reward_terms:
            out["reward_terms"] = np.stack(ep.terms)
        self._open[i] = None
        return out
