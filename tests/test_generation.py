"""The generation cache: hits cost nothing, any weight change invalidates."""

import torch

from safeserve_utils import generation
from safeserve_utils.generation import GenerationSettings, cached_generate

PROMPTS = ["Name a fruit.", "Name a colour."]
SETTINGS = GenerationSettings(max_new_tokens=6)


def test_cache_hit_skips_generation(base_model, tmp_path, monkeypatch):
    lm, tok = base_model
    first = cached_generate(lm, tok, PROMPTS, SETTINGS, cache_dir=tmp_path)
    monkeypatch.setattr(generation, "generate", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran")))
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
