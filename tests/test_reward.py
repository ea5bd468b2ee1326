"""Reward-model scoring on small local stand-ins: a chat model with a value head, and a pair-input model."""

import pytest

from safeserve_utils.evaluation.reward import RewardScorer


@pytest.fixture(scope="module")
def stand_in(base_model, tmp_path_factory):
    """A 2-layer Llama sequence classifier with the default model's tokenizer, saved as safetensors."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    _, tokenizer = base_model
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id)
    folder = tmp_path_factory.mktemp("rm")
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    assert list(folder.glob("*.safetensors"))
    return folder


def test_chat_reward_model_by_path(stand_in):
    scorer = RewardScorer.load(stand_in, batch_size=2)
    assert not scorer.pair_input and scorer.name == str(stand_in)
    prompts = ["How do I boil an egg?", "Tell me a joke.", "How do I boil an egg?"]
    responses = ["Boil it for nine minutes.", "Why did the chicken cross the road?", "Boil it for nine minutes."]
    scores = scorer.score(prompts, responses)
    assert len(scores) == 3 and all(isinstance(s, float) for s in scores)
    assert scores[0] == pytest.approx(scores[2], abs=1e-5)  # batch position and padding do not matter
    assert scores[0] != pytest.approx(scores[1])
    single = RewardScorer.load(stand_in, batch_size=1).score(prompts[:1], responses[:1])
    assert single[0] == pytest.approx(scores[0], abs=1e-4)


def test_pair_input_convention_without_a_chat_template(stand_in):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(stand_in, local_files_only=True)
    tokenizer.chat_template = None  # an encoder RM (the paper's DeBERTa) reads tokenizer(prompt, response)
    scorer = RewardScorer(AutoModelForSequenceClassification.from_pretrained(stand_in, local_files_only=True), tokenizer)
    assert scorer.pair_input
    batch = scorer.texts(["Q?"], ["A."])
    assert batch["input_ids"].shape[0] == 1 and len(scorer.score(["Q?"], ["A."])) == 1
    with pytest.raises(ValueError, match="2 prompts but 1 responses"):
        scorer.score(["a", "b"], ["c"])
