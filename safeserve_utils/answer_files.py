"""The file contract between the workbook and a generation engine running in another process.

At scale, answers come from vLLM, which lives in its own environment (its torch and transformers
pins differ from the workbook's), so the two talk through two JSONL files instead of Python calls:

- ``requests.jsonl``, one line per prompt: ``{"id", "text", "max_new_tokens", "temperature", "top_p",
  "n", "seed", "adapter"}``; ``text`` is the prompt already formatted with the model's chat template
  (so every engine sees the same tokens), ``n`` answers are wanted (RAFT's best-of-K), ``adapter`` is
  a LoRA folder or null.
- ``answers.jsonl``, one line per request: ``{"id", "texts": [n answers]}``.

``answer_with_hf`` is the workbook's HF engine behind the same contract (``python -m safeserve_utils
answer``, a stand-in for vLLM in tests and on machines without GPUs); ``scripts/vllm_answer.py`` is
vLLM's. ``engines`` runs either from the notebooks. Whichever wrote the answers, ``read_answers`` checks
them the same way, so the code that scores them does not know which engine answered.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path
from typing import Any

from .data.files import write_jsonl
from .generation import GenerationSettings, continue_texts, prompt_key
from .io import json_lines
from .modeling import merge_adapter

FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str, "text": str, "max_new_tokens": int, "temperature": (int, float), "top_p": (int, float),
    "n": int, "seed": int, "adapter": (str, type(None)),
}


class AnswerFileError(ValueError):
    """A requests or answers file that breaks the contract; the message names the file, line and field."""


def write_requests(path: str | Path, texts: Sequence[str], settings: GenerationSettings, n: int = 1,
                   adapter: str | None = None) -> list[str]:
    """Write one request per formatted text and return their ids (in the order of ``texts``)."""
    ids = [f"{i}-{prompt_key(t)}" for i, t in enumerate(texts)]
    write_jsonl(Path(path), [{"id": i, "text": t, "max_new_tokens": settings.max_new_tokens,
                              "temperature": settings.temperature, "top_p": settings.top_p, "n": n,
                              "seed": settings.seed, "adapter": adapter} for i, t in zip(ids, texts)])
    return ids


def _lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for number, row in json_lines(path, AnswerFileError):
        if not isinstance(row, dict):
            raise AnswerFileError(f"{path}, line {number}: expected an object, got {type(row).__name__}")
        rows.append((number, row))
    return rows


def read_requests(path: str | Path) -> list[dict[str, Any]]:
    """Every request of ``path``, each field checked for presence and type."""
    path = Path(path)
    rows = []
    for number, row in _lines(path):
        for field, kind in FIELDS.items():
            if field not in row:
                raise AnswerFileError(f"{path}, line {number}: field `{field}` is missing")
            if not isinstance(row[field], kind) or isinstance(row[field], bool):
                raise AnswerFileError(f"{path}, line {number}: field `{field}` has the wrong type "
                                      f"({type(row[field]).__name__})")
        if row["n"] < 1 or row["max_new_tokens"] < 1:
            raise AnswerFileError(f"{path}, line {number}: `n` and `max_new_tokens` must be at least 1")
        rows.append(row)
    return rows


def write_answers(path: str | Path, answers: dict[str, list[str]]) -> None:
    write_jsonl(Path(path), [{"id": i, "texts": t} for i, t in answers.items()])


def read_answers(path: str | Path, requests: Sequence[dict[str, Any]]) -> list[list[str]]:
    """The answers to ``requests`` in their order: exactly ``n`` strings for every request, no stranger."""
    path = Path(path)
    if not path.exists():
        raise AnswerFileError(f"{path}: the engine wrote no answers file (its output above says why)")
    wanted = {r["id"]: r["n"] for r in requests}
    got: dict[str, list[str]] = {}
    for number, row in _lines(path):
        texts = row.get("texts")
        if row.get("id") not in wanted:
            raise AnswerFileError(f"{path}, line {number}: id {row.get('id')!r} was not requested")
        if not isinstance(texts, list) or len(texts) != wanted[row["id"]] or not all(isinstance(t, str) for t in texts):
            raise AnswerFileError(f"{path}, line {number}: field `texts` must be a list of {wanted[row['id']]} "
                                  "strings")
        got[row["id"]] = texts
    missing = [i for i in wanted if i not in got]
    if missing:
        raise AnswerFileError(f"{path}: {len(missing)} of {len(wanted)} requests have no answer "
                              f"(first: {missing[0]})")
    return [got[r["id"]] for r in requests]


def _settings_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return row["max_new_tokens"], row["temperature"], row["top_p"], row["seed"], row["n"], row["adapter"] or ""


def answer_with_hf(requests_path: str | Path, answers_path: str | Path, model: Any, tokenizer: Any) -> int:
    """The workbook's own batched engine behind the file contract; returns how many requests it answered.

    Requests that share their settings and adapter are answered in one call; ``n`` answers of a prompt
    are ``n`` copies of it in the batch (sampled answers differ, greedy ones are equal). A request's
    LoRA adapter is merged into a copy of ``model`` (as vLLM applies it per request).
    """
    requests = read_requests(requests_path)
    answers: dict[str, list[str]] = {}
    for (max_new, temperature, top_p, seed, n, adapter), group in groupby(sorted(requests, key=_settings_key),
                                                                          key=_settings_key):
        rows = list(group)
        lm = merge_adapter(copy.deepcopy(model), adapter) if adapter else model
        texts = continue_texts(lm, tokenizer, [r["text"] for r in rows for _ in range(n)],
                               max_new_tokens=max_new, temperature=temperature, top_p=top_p, seed=seed)
        for k, row in enumerate(rows):
            answers[row["id"]] = texts[k * n:(k + 1) * n]
    write_answers(answers_path, answers)
    return len(answers)
