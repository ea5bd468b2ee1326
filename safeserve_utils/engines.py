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

import dataclasses
import hashlib
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import answer_files, generation, system
from .config import ConfigError, Profile


def command(cfg: Profile) -> list[str]:
    """``answer_engine`` split into a command line ([] when the kernel answers). A leading ``python`` is
    this interpreter (as Jupyter reads a kernel spec's), so the workbook's own engine runs in its venv."""
    argv = _split(cfg)
    return [sys.executable, *argv[1:]] if argv and argv[0] == "python" else argv


def _split(cfg: Profile) -> list[str]:
    try:
        return shlex.split(cfg.answer_engine)
    except ValueError as exc:
        raise ConfigError(f"parameter `answer_engine` ({cfg.answer_engine!r}) is not a command line: {exc}") from None


def engine_key(cfg: Profile) -> str | None:
    """What the answers' keys add to the weights: None for the kernel's engine, else the command's digest
    (as typed, so a cache does not depend on where the virtualenv lives)."""
    argv = _split(cfg)
    return hashlib.sha256(" ".join(argv).encode()).hexdigest()[:12] if argv else None


def answer_elsewhere(argv: Sequence[str], model: str, adapter: str | None, texts: Sequence[str],
                     settings: generation.GenerationSettings, workdir: Path, n: int = 1) -> list[list[str]]:
    """``n`` answers to each of ``texts`` (already chat-formatted) from the command ``argv``, through the
    file contract.

    The engine's output streams into the cell; a failed engine is an error naming the command and
    leaves its requests file for a re-run by hand.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    requests, answers = workdir / "requests.jsonl", workdir / "answers.jsonl"
    answers.unlink(missing_ok=True)
    answer_files.write_requests(requests, texts, settings, n=n, adapter=adapter)
    full = [*argv, "--model", model, "--requests", str(requests), "--answers", str(answers)]
    print(f"answering {len(texts)} prompts{f' x {n}' if n > 1 else ''} with: {shlex.join(full)}", flush=True)
    returncode = system.run_streamed(full)
    if returncode:
        raise answer_files.AnswerFileError(f"the answer engine `{shlex.join(argv)}` failed (exit code "
                                           f"{returncode}, its output is above); its requests are in {requests}")
    return answer_files.read_answers(answers, answer_files.read_requests(requests))


class Answerer:
    """Answers for one model, cached on disk whichever engine answers (``answerer`` builds one).

    ``answer(prompts, settings)`` gives one answer a prompt; ``answer.samples(prompts, settings, k)`` gives
    k, the j-th drawn with seed ``settings.seed + j`` (RAFT's best-of-K). The kernel draws them as k
    batched rounds; another engine is asked once, for k answers a request (vLLM's ``SamplingParams(n=k)``
    shares each prompt's prefill among them), and its answers are cached as those k rounds, so a re-run
    and RAFT's random twin read the very samples the first pass drew.
    """

    def __init__(self, model: Any, tokenizer: Any, fingerprint: str, argv: list[str] | None = None,
                 handover: Callable[[], tuple[str, str | None]] | None = None, workdir: Path | None = None) -> None:
        self.model, self.tokenizer, self.argv, self.handover, self.workdir = model, tokenizer, argv, handover, workdir
        self.fingerprint = fingerprint

    def __call__(self, prompts: Sequence[str], settings: generation.GenerationSettings) -> list[str]:
        answer = (lambda texts: [n[0] for n in self._elsewhere(texts, settings, 1)]) if self.argv else None
        return generation.cached_generate(self.model, self.tokenizer, prompts, settings,
                                          fingerprint=self.fingerprint, answer=answer)

    def samples(self, prompts: Sequence[str], settings: generation.GenerationSettings, k: int) -> list[list[str]]:
        rounds = [dataclasses.replace(settings, seed=settings.seed + j) for j in range(k)]
        if self.argv:
            return generation.cached_rounds(self.tokenizer, prompts, rounds, self.fingerprint,
                                            lambda texts: self._elsewhere(texts, settings, k))
        by_round = [self(prompts, r) for r in rounds]
        return [[answers[i] for answers in by_round] for i in range(len(prompts))]

    def _elsewhere(self, texts: list[str], settings: generation.GenerationSettings, n: int) -> list[list[str]]:
        assert self.argv and self.handover and self.workdir
        target, adapter = self.handover()
        folder = self.workdir / (settings.key() + (f"-n{n}" if n > 1 else ""))
        return answer_elsewhere(self.argv, target, adapter, texts, settings, folder, n=n)


def answerer(cfg: Profile, model: Any, tokenizer: Any, fingerprint: str,
             handover: Callable[[], tuple[str, str | None]], workdir: Path) -> Answerer:
    """The ``Answerer`` of one model: ``fingerprint`` names its weights; ``handover()`` gives the (model,
    adapter) a separate engine loads (``stages.handover``), asked only when some prompt is not in the
    cache yet; ``workdir`` holds that engine's requests and answers, one folder per generation setting.
    Another engine's answers are cached under the weights and the engine, never as the kernel's.
    """
    argv, key = command(cfg), engine_key(cfg)
    if not argv:
        return Answerer(model, tokenizer, fingerprint)
    return Answerer(model, tokenizer, f"{fingerprint}-{key}", argv, handover, workdir)
