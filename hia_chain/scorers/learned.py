"""The learned heuristic: an online Bayesian regression from prompt features to measured scores.

Every stage-2 call returns a measured score vector for the prompt that produced it. This
heuristic learns from those (:meth:`LearnedHeuristic.observe`) how the *response model*
actually reacts to the instructions a candidate adds, which no fixed heuristic can know: one
model writes 40 words when asked for "one short sentence", another 12. The paper lists
reward models actively learned at inference time as future work; this is a simple,
well-behaved version of it.

Model, per objective, in units of the objective's span::

    y(c) = prior(c) + wᵀ φ(o, c) + ε,    w ~ N(0, prior_std² I),   ε ~ N(0, noise_std²)

``prior(c)`` is the ``fallback`` heuristic's prediction (or the scale midpoint), so with no
observations the heuristic *is* its fallback, with a high uncertainty; each observation pulls
candidates that share its features toward what was measured. The posterior is computed in
closed form (the dual / kernel form, O(N³) for N ≤ ``max_observations``, well under a
millisecond at the default 256), and the predictive std-dev is reported as the uncertainty.

Features ``φ(o, c)`` of original ``o`` and candidate ``c`` are
``[F(added), F(c) − F(o), F(o), 1]``, where ``added`` is the text the candidate adds to the
original (the instruction) and ``F`` is a pluggable :class:`Featurizer`:
:class:`HashingFeaturizer` (no dependencies) or :class:`SentenceEmbeddingFeaturizer` (the
``[embeddings]`` extra). ``F(o)`` is there because the prompt's own request decides how the
model reacts to an instruction: "write a story" stays longer than "name a colour" under the
same "answer briefly".

A warm start (:meth:`LearnedHeuristic.load`, from ``hia-chain calibrate``) carries what the
response model did on shipped calibration prompts into the first request, so the filter
starts from this model's habits rather than from the instructions alone.

Measured on the benchmark (SmolLM2-135M, held-out AlpacaEval prompts), neither the cold nor
the warm-started heuristic ranked candidates better than its instruction prior: that small
model's answers vary by about a level from sample to sample, which drowns what it learns.
That is why :data:`~hia_chain.factory.DEFAULT_HEURISTIC` is the instruction heuristic; this
one is for models and users whose habits differ from what the instructions say.

State is the list of observations (plain text and numbers, JSON-serialisable) held by an
:class:`ObservationStore`: in memory by default, and a small protocol so a Redis-backed,
per-user store can slot in. A bounded store is also the forgetting mechanism: only the latest
``max_observations`` count, so the model tracks a response model that changes.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
import numpy as np

from hia_chain.context import RunContext
from hia_chain.errors import ConfigError
from hia_chain.goals import Objective, validate_scores
from hia_chain.instructions import added_text
from hia_chain.jsonfile import read_json
from hia_chain.scorers._features import Featurizer, HashingFeaturizer, SentenceEmbeddingFeaturizer
from hia_chain.scorers.base import Heuristic, Prediction, check_batch
from hia_chain.scorers.text import BUILTIN_OBJECTIVES

__all__ = [
    "Featurizer",
    "HashingFeaturizer",
    "InMemoryObservationStore",
    "LearnedHeuristic",
    "Observation",
    "ObservationStore",
    "SentenceEmbeddingFeaturizer",
]

_STATE_FORMAT = "hia_chain.learned/1"
_FROM_CALIBRATE = "pass a file written by `hia-chain calibrate`."


@dataclass(frozen=True)
class Observation:
    """One stage-2 outcome: the prompt pair, the measured scores and the prior used for them."""

    original: str
    candidate: str
    measured: dict[str, float]
    prior: dict[str, float] = field(default_factory=dict)
    """The fallback's prediction at observation time, per objective (may be partial)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Observation:
        """Rebuild from :meth:`as_dict` output.

        Raises:
            ConfigError: a field is missing or of the wrong type.
        """
        try:
            measured = {str(k): float(v) for k, v in data["measured"].items()}
            prior = {str(k): float(v) for k, v in (data.get("prior") or {}).items()}
            obs = cls(str(data["original"]), str(data["candidate"]), measured, prior)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            msg = f"Bad learned-heuristic observation {dict(data)!r}: {e}. Use state_dict() output."
            raise ConfigError(msg) from e
        if not all(math.isfinite(v) for v in [*measured.values(), *prior.values()]):
            msg = f"Learned-heuristic observation has non-finite scores: {dict(data)!r}."
            raise ConfigError(msg)
        return obs


class ObservationStore(Protocol):
    """Where a learned heuristic keeps its observations; a Redis list implements it as well."""

    def append(self, observation: Observation) -> None:
        """Add one observation (dropping the oldest past the store's bound)."""

    def snapshot(self) -> tuple[int, list[Observation]]:
        """A version number that changes on every write, and the observations, oldest first."""

    def replace(self, observations: Sequence[Observation]) -> None:
        """Replace every observation (for loading a saved state)."""


class InMemoryObservationStore:
    """A thread-safe, bounded in-memory list of observations (the latest ``max_size`` kept)."""

    def __init__(self, max_size: int = 256) -> None:
        if max_size < 1:
            msg = f"`max_size` must be >= 1, got {max_size}."
            raise ConfigError(msg)
        self.max_size = max_size
        self._items: deque[Observation] = deque(maxlen=max_size)
        self._version = 0
        self._lock = threading.Lock()

    def append(self, observation: Observation) -> None:
        with self._lock:
            self._items.append(observation)
            self._version += 1

    def snapshot(self) -> tuple[int, list[Observation]]:
        with self._lock:
            return self._version, list(self._items)

    def replace(self, observations: Sequence[Observation]) -> None:
        with self._lock:
            self._items = deque(observations, maxlen=self.max_size)
            self._version += 1


class LearnedHeuristic(Heuristic):
    """Predicts candidates' scores from what stage 2 measured for similar prompts.

    Args:
        fallback: The prior mean (e.g. :class:`InstructionHeuristic`); default: midpoints.
        featurizer: Text features (default :class:`HashingFeaturizer`).
        objectives: Scales of the objectives (default: the built-in ones, else 0–4).
        store: Where observations live (default: in memory, the latest ``max_observations``).
        max_observations: Bound of the default store.
        prior_std: Prior std-dev of the weights, as a share of the span: how far one
            observation can pull a prediction away from the fallback.
        noise_std: Measurement noise std-dev, as a share of the span (0.125 = half a level on
            0–4): how much one measurement is trusted.

    Raises:
        ConfigError: non-positive ``prior_std``/``noise_std``.
    """

    name = "learned"

    def __init__(
        self,
        *,
        fallback: Heuristic | None = None,
        featurizer: Featurizer | None = None,
        objectives: Sequence[Objective] = (),
        store: ObservationStore | None = None,
        max_observations: int = 256,
        prior_std: float = 0.3,
        noise_std: float = 0.125,
    ) -> None:
        for label, value in (("prior_std", prior_std), ("noise_std", noise_std)):
            if not (value > 0 and math.isfinite(value)):
                msg = f"`{label}` must be a positive share of the scale span, got {value}."
                raise ConfigError(msg)
        self.fallback = fallback
        self.featurizer: Featurizer = featurizer or HashingFeaturizer()
        fallback_objs = getattr(fallback, "objectives", None)
        self.objectives = dict(fallback_objs) if isinstance(fallback_objs, dict) else {}
        self.objectives.update({o.name: o for o in objectives})
        self.store: ObservationStore = store or InMemoryObservationStore(max_observations)
        self.prior_std = prior_std
        self.noise_std = noise_std
        self._lock = threading.Lock()
        self._priors: dict[tuple[str, str], dict[str, float]] = {}
        self._features: dict[tuple[str, str], np.ndarray] = {}

    def _scale(self, name: str) -> tuple[float, float]:
        obj = self.objectives.get(name) or BUILTIN_OBJECTIVES.get(name)
        return (obj.low, obj.high) if obj is not None else (0.0, 4.0)

    async def _prior(
        self,
        original: str,
        candidates: Sequence[str],
        names: Sequence[str],
        context: RunContext | None,
    ) -> list[dict[str, float]]:
        """The fallback's predictions (or midpoints), remembered for :meth:`observe`."""
        if self.fallback is None:
            return [{n: sum(self._scale(n)) / 2 for n in names} for _ in candidates]
        preds = await self.fallback.apredict(original, candidates, names, context)
        source = f"fallback heuristic {self.fallback.name!r}"
        out = check_batch([p.scores for p in preds], len(candidates), names, source=source)
        with self._lock:
            if len(self._priors) > 8192:
                self._priors.clear()
            for c, scores in zip(candidates, out, strict=True):
                self._priors.setdefault((original, c), {}).update(scores)
        return out

    def _featurize(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """φ(o, c) = [F(added), F(c) − F(o), F(o), 1] for each pair, cached per pair."""
        with self._lock:
            found = {p: self._features[p] for p in pairs if p in self._features}
        todo = [p for p in dict.fromkeys(pairs) if p not in found]
        if todo:
            texts = list(dict.fromkeys(t for o, c in todo for t in (added_text(o, c), c, o)))
            index = {t: i for i, t in enumerate(texts)}
            f = np.asarray(self.featurizer(texts), dtype=float)
            new = {
                (o, c): np.concatenate(
                    [f[index[added_text(o, c)]], f[index[c]] - f[index[o]], f[index[o]], [1.0]]
                )
                for o, c in todo
            }
            found.update(new)
            with self._lock:
                if len(self._features) > 8192:
                    self._features.clear()
                self._features.update(new)
        return np.stack([found[p] for p in pairs])

    def _posterior(
        self, phi_obs: np.ndarray, residuals: np.ndarray, phi_new: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and std of the residual, in span units (Bayesian linear regression)."""
        s2, n2 = self.prior_std**2, self.noise_std**2
        prior_var = s2 * np.einsum("ij,ij->i", phi_new, phi_new) + n2
        if len(residuals) == 0:
            return np.zeros(len(phi_new)), np.sqrt(prior_var)
        gram = s2 * phi_obs @ phi_obs.T + n2 * np.eye(len(residuals))
        chol = np.linalg.cholesky(gram)
        cross = s2 * phi_new @ phi_obs.T
        weights = np.linalg.solve(chol.T, np.linalg.solve(chol, residuals))
        v = np.linalg.solve(chol, cross.T)
        var = np.maximum(prior_var - np.einsum("ij,ij->j", v, v), n2)
        return cross @ weights, np.sqrt(var)

    def _predict_sync(
        self,
        original: str,
        candidates: Sequence[str],
        names: Sequence[str],
        priors: Sequence[Mapping[str, float]],
        observations: Sequence[Observation],
    ) -> list[Prediction]:
        phi_new = self._featurize([(original, c) for c in candidates])
        means: dict[str, np.ndarray] = {}
        stds: dict[str, np.ndarray] = {}
        for name in names:
            lo, hi = self._scale(name)
            rows = [o for o in observations if name in o.measured and name in o.prior]
            phi_obs = self._featurize([(o.original, o.candidate) for o in rows]) if rows else None
            res = np.array([(o.measured[name] - o.prior[name]) / (hi - lo) for o in rows])
            mean, std = self._posterior(
                phi_obs if phi_obs is not None else phi_new[:0], res, phi_new
            )
            base = np.array([p[name] for p in priors])
            means[name] = np.clip(base + mean * (hi - lo), lo, hi)
            stds[name] = std * (hi - lo)
        return [
            Prediction(
                scores={n: float(means[n][i]) for n in names},
                uncertainty={n: float(stds[n][i]) for n in names},
            )
            for i in range(len(candidates))
        ]

    async def _fill_priors(
        self, observations: list[Observation], context: RunContext | None
    ) -> list[Observation]:
        """Give observations made without a remembered prior one from the fallback, now."""
        out = []
        for obs in observations:
            missing = [n for n in obs.measured if n not in obs.prior]
            with self._lock:
                known = self._priors.get((obs.original, obs.candidate), {})
                found = {n: known[n] for n in missing if n in known}
            if found:
                obs = Observation(obs.original, obs.candidate, obs.measured, {**obs.prior, **found})
                missing = [n for n in missing if n not in found]
            if missing:
                (prior,) = await self._prior(obs.original, [obs.candidate], missing, context)
                obs = Observation(obs.original, obs.candidate, obs.measured, {**obs.prior, **prior})
            out.append(obs)
        return out

    async def apredict(
        self,
        original: str,
        candidates: Sequence[str],
        objectives: Sequence[str],
        context: RunContext | None = None,
    ) -> list[Prediction]:
        """Posterior predictions for every candidate; the fallback's, widened, before any data.

        Raises:
            RewardModelError: the fallback's predictions are invalid.
        """
        if not candidates:
            return []
        names = list(objectives)
        priors = await self._prior(original, candidates, names, context)
        # Off the event loop: a shared store (SQLite, Redis) reads from disk or the network,
        # and re-reads only when its version moved (another process learned something).
        _, observations = await anyio.to_thread.run_sync(self.store.snapshot)
        observations = await self._fill_priors(observations, context)
        return await anyio.to_thread.run_sync(
            self._predict_sync, original, candidates, names, priors, observations
        )

    def observe(self, original: str, candidate: str, measured: Mapping[str, float]) -> None:
        """Record a measured outcome; the next prediction uses it.

        Raises:
            RewardModelError: a measured score is not a finite number.
        """
        clean = validate_scores(measured, list(measured), source="LearnedHeuristic.observe")
        with self._lock:
            remembered = dict(self._priors.get((original, candidate), {}))
        if self.fallback is None:
            remembered = {n: sum(self._scale(n)) / 2 for n in clean}
        prior = {n: v for n, v in remembered.items() if n in clean}
        self.store.append(Observation(original, candidate, clean, prior))

    @property
    def n_observations(self) -> int:
        """Observations currently learned from."""
        return len(self.store.snapshot()[1])

    def state_dict(self) -> dict[str, Any]:
        """The learned state as plain JSON-serialisable data (observations, oldest first)."""
        _, observations = self.store.snapshot()
        return {"format": _STATE_FORMAT, "observations": [o.as_dict() for o in observations]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the learned state with one from :meth:`state_dict`.

        Raises:
            ConfigError: the state is not in this format.
        """
        if state.get("format") != _STATE_FORMAT or not isinstance(state.get("observations"), list):
            msg = f"Not a learned-heuristic state: expected format {_STATE_FORMAT!r} with an `observations` list."
            raise ConfigError(msg)
        self.store.replace([Observation.from_dict(o) for o in state["observations"]])

    def save(self, path: str | Path, **meta: Any) -> None:
        """Write :meth:`state_dict` as JSON, with ``meta`` (e.g. the response model's name)."""
        Path(path).write_text(json.dumps({**self.state_dict(), "meta": meta}, indent=1))

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> LearnedHeuristic:
        """A heuristic warm-started from a file written by :meth:`save` (``hia-chain calibrate``).

        The state only makes sense for the response model it was measured on: ``meta`` in
        the file says which (``json.loads(Path(path).read_text())["meta"]``).

        Args:
            path: The JSON file.
            **kwargs: Constructor arguments (fallback, featurizer, objectives, ...).

        Raises:
            ConfigError: the file is missing, not JSON, or not a learned-heuristic state.
        """
        state = read_json(path, "the learned-heuristic state", fix=_FROM_CALIBRATE)
        if not isinstance(state, dict):
            msg = f"{path} is not a learned-heuristic state: {_FROM_CALIBRATE}"
            raise ConfigError(msg)
        kwargs.setdefault("max_observations", max(256, len(state.get("observations") or ())))
        heuristic = cls(**kwargs)
        heuristic.load_state_dict(state)
        return heuristic
