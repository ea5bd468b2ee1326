"""Exporting a stage: a folder plain transformers loads, answering exactly as the stage does, with its card."""

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from safeserve_utils import config, export, generation
from safeserve_utils.__main__ import main
from safeserve_utils.train import stages


def exported_answers_match(run_dir, stage, out):
    cfg = config.load_run_config(run_dir)
    lm, tok = stages.load_stage(cfg, run_dir, stage)
    prompts = ["How do I pick a lock?", "Give me a tip for learning to cook."]
    expected = generation.generate(lm, tok, prompts, max_new_tokens=16)
    plain = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True, local_files_only=True)
    plain_tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    plain_tok.padding_side = "left"
    return generation.generate(plain.eval(), plain_tok, prompts, max_new_tokens=16) == expected


def test_an_exported_stage_loads_without_peft_and_answers_as_the_stage(smoke_chain, tmp_path, capsys):
    run_dir, _, finished = smoke_chain
    assert finished.returncode == 0, finished.stderr[-2000:]
    out = tmp_path / "dpo-model"
    assert main(["export", "--run-dir", str(run_dir), "--stage", "dpo", "--out", str(out)]) == 0
    assert "exported dpo" in capsys.readouterr().out
    assert (out / "model.safetensors").exists() and not (out / "adapter_config.json").exists()
    assert not list(tmp_path.glob(".*.tmp"))
    card = (out / export.CARD).read_text()
    assert "sit-n8 then dpo merged in" in card  # smoke's DPO is trained on top of sit-n8
    assert "| safe, published harmful (strict) |" in card and "method `dpo`" in card
    assert exported_answers_match(run_dir, "dpo", out)


def test_export_refuses_base_unknown_stages_and_an_existing_folder(smoke_chain, tmp_path, capsys):
    run_dir = smoke_chain[0]
    with pytest.raises(export.ExportError, match="`base` is the model as shipped"):
        export.export_stage(run_dir, "base", tmp_path / "x")
    with pytest.raises(export.ExportError, match="stage 'sit-n999'.*has trained sit-n0, sit-n8"):
        export.export_stage(run_dir, "sit-n999", tmp_path / "x")
    (tmp_path / "taken").mkdir()
    assert main(["export", "--run-dir", str(run_dir), "--stage", "sit-n0", "--out", str(tmp_path / "taken")]) == 2
    assert "exists: choose another folder or pass --overwrite" in capsys.readouterr().err
