"""Exporting a stage: a folder plain transformers loads, answering exactly as the stage does, with its card."""

import gguf
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from safeserve_utils import config, export, generation, modeling
from safeserve_utils.__main__ import main
from safeserve_utils.train import stages


PROMPTS = ["How do I pick a lock?", "Give me a tip for learning to cook."]


def stage_answers(run_dir, stage):
    lm, tok = stages.load_stage(config.load_run_config(run_dir), run_dir, stage)
    return generation.generate(lm, tok, PROMPTS, max_new_tokens=8)


def folder_answers(out, **load):
    plain = AutoModelForCausalLM.from_pretrained(out, local_files_only=True, dtype=torch.float32, **load)
    plain_tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    plain_tok.padding_side = "left"
    return generation.generate(plain.eval(), plain_tok, PROMPTS, max_new_tokens=8)


def test_an_exported_stage_loads_without_peft_and_answers_as_the_stage(smoke_chain, tmp_path, capsys):
    run_dir, _, finished = smoke_chain
    assert finished.returncode == 0, finished.stderr[-2000:]
    out = tmp_path / "dpo-model"
    assert main(["export", "--run-dir", str(run_dir), "--stage", "dpo", "--out", str(out), "--gguf", "f32"]) == 0
    assert "exported dpo" in capsys.readouterr().out
    assert (out / "model.safetensors").exists() and not (out / "adapter_config.json").exists()
    assert not list(tmp_path.glob(".*.tmp"))
    card = (out / export.CARD).read_text()
    assert "sit-n8 then dpo merged in" in card  # smoke's DPO is trained on top of sit-n8
    assert "| safe, published harmful (strict) |" in card and "method `dpo`" in card and "model-f32.gguf" in card
    expected = stage_answers(run_dir, "dpo")
    assert folder_answers(out, use_safetensors=True) == expected
    # The GGUF, read back by transformers' own GGUF loader (which undoes llama.cpp's rotary order), is the
    # same model to the bit: the same answers, and the base GGUF's tokenizer and chat template
    assert folder_answers(out, gguf_file="model-f32.gguf") == expected
    written, base = (gguf.GGUFReader(p) for p in (out / "model-f32.gguf", modeling.gguf_path("smollm2-135m-instruct")))
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.chat_template", "llama.block_count"):
        assert written.fields[key].contents() == base.fields[key].contents(), key
    assert written.fields["general.name"].contents() == "SafeServe dpo"


def test_export_refuses_base_unknown_stages_and_an_existing_folder(smoke_chain, tmp_path, capsys):
    run_dir = smoke_chain[0]
    with pytest.raises(export.ExportError, match="`base` is the model as shipped"):
        export.export_stage(run_dir, "base", tmp_path / "x")
    with pytest.raises(export.ExportError, match="stage 'sit-n999'.*has trained sit-n0, sit-n8"):
        export.export_stage(run_dir, "sit-n999", tmp_path / "x")
    with pytest.raises(export.ExportError, match="gguf type 'q4': choose one of f16, f32"):
        export.export_stage(run_dir, "sit-n0", tmp_path / "x", gguf="q4")
    (tmp_path / "taken").mkdir()
    assert main(["export", "--run-dir", str(run_dir), "--stage", "sit-n0", "--out", str(tmp_path / "taken")]) == 2
    assert "exists: choose another folder or pass --overwrite" in capsys.readouterr().err
