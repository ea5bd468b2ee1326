"""The generation engines agree token for token; the cache: hits cost nothing, any weight change invalidates."""

import pytest
import torch

from safeserve_utils import generation
from safeserve_utils.generation import GenerationSettings, cached_generate

PROMPTS = ["Name a fruit.", "Name a colour."]
SETTINGS = GenerationSettings(max_new_tokens=6)


def test_cache_hit_skips_generation(base_model, tmp_path, monkeypatch):
    lm, tok = base_model
    first = cached_generate(lm, tok, PROMPTS, SETTINGS, cache_dir=tmp_path)
    monkeypatch.setattr(generation, "continue_texts", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran")))
    assert cached_generate(lm, tok, PROMPTS, SETTINGS, cache_dir=tmp_path) == first
    assert cached_generate(lm, tok, PROMPTS[::-1], SETTINGS, cache_dir=tmp_path) == first[::-1]


def test_settings_and_weights_change_the_key(base_model, tmp_path):
    lm, tok = base_model
    before = generation.model_fingerprint(lm)
    assert SETTINGS.key() != GenerationSettings(max_new_tokens=7).key()
    param = lm.model.norm.weight
    saved = param.detach().clone()
    with torch.no_grad():
        param.add_(1e-3)
    try:
        assert generation.model_fingerprint(lm) != before
    finally:
        with torch.no_grad():
            param.copy_(saved)
    assert generation.model_fingerprint(lm) == before


def test_the_static_engine_answers_exactly_as_plain_generate(base_model):
    """Prompts of different lengths in one batch: the static engine, the reference engine and one
    prompt at a time give the same greedy answers, in the order of the prompts."""
    lm, tok = base_model
    prompts = ["Name a fruit.", "Give three tips for staying healthy in winter, briefly.", "Say hi.",
               "Explain in one sentence why the sky looks blue during the day."]
    static = generation.generate(lm, tok, prompts, max_new_tokens=16)
    reference = generation.generate(lm, tok, prompts, max_new_tokens=16, engine="reference")
    single = [generation.generate(lm, tok, [p], max_new_tokens=16, engine="reference")[0] for p in prompts]
    assert static == reference == single and all(static)


def test_batches_respect_the_token_budget_and_sort_by_length(monkeypatch):
    monkeypatch.setattr(generation, "TOKEN_BUDGET", 100)
    monkeypatch.setattr(generation, "MAX_ROWS", 3)
    groups = generation.batches([30, 5, 10, 20, 6, 7], max_new_tokens=10)
    assert groups == [[1, 4, 5], [2, 3], [0]]  # 3 rows of width <= 17; 2 of width 30; one of 40
    assert all(len(g) * (max([30, 5, 10, 20, 6, 7][i] for i in g) + 10) <= 100 for g in groups)
    assert generation.batches([3, 1, 2], 10, engine="reference") == [[1, 2, 0]]
    with pytest.raises(ValueError, match="generation engine 'fast'"):
        generation.batches([1], 10, engine="fast")
