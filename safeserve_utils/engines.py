"""Who answers a stage's prompts: the kernel's own batched engine, or a command in another process.

On a CPU the notebook's kernel generates (``generation.cached_generate``). At scale the answers come
from vLLM, which lives in its own environment; ``answer_engine`` then names the command that answers
(e.g. ``.venv-vllm/bin/python scripts/vllm_answer.py --tensor-parallel-size 8``), and the workbook
talks to it through the file contract of ``answer_files``: it writes ``requests.jsonl`` under
``<run>/engine/<stage>/``, runs ``COMMAND --model M --requests R --answers A`` and reads the answers
back, checked. What a stage is handed over as (``M`` and a LoRA folder in each request, or a merged
copy) is ``train.stages.handover``'s business; this module knows models only by their fingerprint.

Evaluation (``06``) and RAFT's sampling (``04``) take their answers from ``stages.answerer`` and do
not know which engine answered. The answers go into the same on-disk cache as the kernel's, under a key
that adds the command to the weights: another engine's answers (bf16 on a GPU, another sampler) are
never passed off as this one's.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import answer_files, generation, system
from .config import ConfigError, Profile

Answerer = Callable[[Sequence[str], generation.GenerationSettings], list[str]]


def command(cfg: Profile) -> list[str]:
    """``answer_engine`` split into a command line ([] when the kernel answers)."""
    try:
        return shlex.split(cfg.answer_engine)
    except ValueError as exc:
        raise ConfigError(f"parameter `answer_engine` ({cfg.answer_engine!r}) is not a command line: {exc}") from None


def engine_key(cfg: Profile) -> str | None:
    """What the answers' keys add to the weights: None for the kernel's engine, else the command's digest."""
    argv = command(cfg)
    return hashlib.sha256(" ".join(argv).encode()).hexdigest()[:12] if argv else None


def answer_elsewhere(argv: Sequence[str], model: str, adapter: str | None, texts: Sequence[str],
                     settings: generation.GenerationSettings, workdir: Path) -> list[str]:
    """``texts`` (already chat-formatted) answered by the command ``argv`` through the file contract.

    The engine's output streams into the cell; a failed engine is an error naming the command and
    leaves its requests file for a re-run by hand.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    requests, answers = workdir / "requests.jsonl", workdir / "answers.jsonl"
    answers.unlink(missing_ok=True)
    answer_files.write_requests(requests, texts, settings, adapter=adapter)
    full = [*argv, "--model", model, "--requests", str(requests), "--answers", str(answers)]
    print(f"answering {len(texts)} prompts with: {shlex.join(full)}", flush=True)
    returncode = system.run_streamed(full)
    if returncode:
        raise answer_files.AnswerFileError(f"the answer engine `{shlex.join(argv)}` failed (exit code "
                                           f"{returncode}, its output is above); its requests are in {requests}")
    return [n_texts[0] for n_texts in answer_files.read_answers(answers, answer_files.read_requests(requests))]


def answerer(cfg: Profile, model: Any, tokenizer: Any, fingerprint: str,
             handover: Callable[[], tuple[str, str | None]], workdir: Path) -> Answerer:
    """``answer(prompts, settings)`` for one model, cached on disk whichever engine answers.

    ``fingerprint`` names the model's weights; ``handover()`` gives the (model, adapter) a separate
    engine loads (``stages.handover``), asked only when some prompt is not in the cache yet;
    ``workdir`` holds its requests and answers, one folder per generation setting.
    """
    argv, key = command(cfg), engine_key(cfg)
    if not argv:
        return lambda prompts, settings: generation.cached_generate(model, tokenizer, prompts, settings,
                                                                    fingerprint=fingerprint)

    def elsewhere(texts: list[str], settings: generation.GenerationSettings) -> list[str]:
        target, adapter = handover()
        return answer_elsewhere(argv, target, adapter, texts, settings, workdir / settings.key())

    return lambda prompts, settings: generation.cached_generate(
        model, tokenizer, prompts, settings, fingerprint=f"{fingerprint}-{key}",
        answer=lambda texts: elsewhere(texts, settings))
