"""Reward-model scores: a scalar per (prompt, response) from a sequence-classification model.

Two input conventions, picked from the tokenizer: an encoder reward model without a chat template
(the paper's ``OpenAssistant/reward-model-deberta-v3-large-v2``) reads the pair as
``tokenizer(prompt, response)``; a chat model with a value head (the project's own reward model from
the RAFT stage) reads the whole conversation through its chat template, exactly as TRL's
``RewardTrainer`` formatted it in training. Scores are raw logits: only their order and median mean
anything, and only within one reward model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..generation import model_fingerprint


class RewardScorer:
    name = "reward"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 32, max_length: int = 512,
                 name: str | None = None) -> None:
        self.model, self.tokenizer = model.eval(), tokenizer
        self.batch_size, self.max_length = batch_size, max_length
        self.pair_input = not getattr(tokenizer, "chat_template", None)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id
        self.name = name or self.name
        self._fingerprint: str | None = None

    @classmethod
    def load(cls, name_or_path: str | Path, base: str | Path | None = None, **kwargs: Any) -> "RewardScorer":
        """A reward model by hub id or local folder (safetensors only, no remote code).

        A folder holding a LoRA adapter (``adapter_config.json``, the project's own reward model) is
        applied to ``base`` (a model folder or hub id) with a fresh sequence-classification head,
        whose trained weights the adapter carries.
        """
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(name_or_path)
        is_adapter = (folder / "adapter_config.json").exists()
        if is_adapter and base is None:
            raise ValueError(f"{folder} holds a LoRA adapter: pass the base model it was trained on (`base`)")
        source = str(base) if is_adapter else str(name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path) if not is_adapter else source)
        model = AutoModelForSequenceClassification.from_pretrained(
            source, use_safetensors=True, trust_remote_code=False, num_labels=1)
        if is_adapter:
            from peft import PeftModel

            model.config.pad_token_id = tokenizer.pad_token_id or tokenizer.eos_token_id
            model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
        return cls(model, tokenizer, name=kwargs.pop("name", str(name_or_path)), **kwargs)

    def fingerprint(self) -> str:
        """Digest of the reward model's weights (head included): evaluations cached under it."""
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.model)
        return self._fingerprint

    def texts(self, prompts: Sequence[str], responses: Sequence[str]) -> dict[str, Any]:
        """Tokenizer inputs for a batch, in this model's convention."""
        common = {"return_tensors": "pt", "padding": True, "truncation": True, "max_length": self.max_length}
        if self.pair_input:
            return self.tokenizer(list(prompts), list(responses), **common)
        full = [self.tokenizer.apply_chat_template(
            [{"role": "user", "content": p}, {"role": "assistant", "content": r}], tokenize=False)
            for p, r in zip(prompts, responses)]
        return self.tokenizer(full, add_special_tokens=False, **common)

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        """One scalar per (prompt, response), in input order; batches are length-sorted to pad little."""
        import torch

        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) + len(responses[i]))
        scores = [0.0] * len(prompts)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            batch = self.texts([prompts[i] for i in idx], [responses[i] for i in idx])
            with torch.inference_mode():
                logits = self.model(**batch).logits
            for i, value in zip(idx, logits[:, 0].float().tolist()):
                scores[i] = value
        return scores
