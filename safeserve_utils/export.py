"""Take a trained stage out of the workbook: one folder that loads without PEFT or this package.

``export_stage`` merges the stage's LoRA adapter (and the stage it was trained on top of) into the base
model and writes plain fp32 safetensors, the tokenizer with its chat template, and a model card: what
the stage was trained on, its row of the run's scorecard, and its limits. With ``gguf`` it also writes
the merged model as one GGUF file (f16 or f32) through the pinned ``gguf`` package, for llama.cpp and
Ollama. The folder is written under a temporary name and renamed when complete, so an interrupted
export leaves nothing half-written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from . import config, modeling
from .evaluation import scorecard
from .io import read_json
from .train import lora, stages

CARD = "README.md"
#: GGUF weight types, for the 2-D weights (norms stay f32, as llama.cpp's converter keeps them)
GGUF_TYPES = ("f16", "f32")
#: keys of the base GGUF that describe that file rather than the model; the export writes its own
_FILE_KEYS = ("GGUF.", "general.architecture", "general.file_type", "general.quantization_version",
              "general.name")


class ExportError(config.ConfigError):
    """A stage that cannot be exported, or a destination that would be overwritten."""


def export_stage(run_dir: str | Path, stage: str, out: str | Path, overwrite: bool = False,
                 gguf: str | None = None) -> Path:
    """Write ``stage`` of the run in ``run_dir`` as a standalone model folder at ``out``; ``gguf`` ("f16" or
    "f32") adds ``model-<type>.gguf`` beside the safetensors."""
    run_dir, out = Path(run_dir), Path(out).resolve()
    cfg = config.load_run_config(run_dir)
    trained = [s for s in stages.stages(run_dir, cfg) if s != "base"]
    if stage not in trained:
        raise ExportError(f"stage {stage!r}: {run_dir} has trained {', '.join(trained) or 'no stage yet'}; "
                          "`base` is the model as shipped and is not exported")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} exists: choose another folder or pass --overwrite")
    if gguf is not None and gguf not in GGUF_TYPES:
        raise ExportError(f"gguf type {gguf!r}: choose one of {', '.join(GGUF_TYPES)}")
    if gguf is not None and cfg.model not in modeling.BUILTIN_MODELS:
        raise ExportError(f"GGUF export takes its tokenizer and architecture metadata from a built-in model's "
                          f"GGUF, and {cfg.model!r} is not one: export without --gguf and convert the folder "
                          "with llama.cpp's convert_hf_to_gguf.py")
    model, tokenizer = stages.load_stage(cfg, run_dir, stage)
    partial = out.parent / f".{out.name}.tmp"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    if gguf is not None:
        write_gguf(model, modeling.gguf_path(cfg.model), partial / f"model-{gguf}.gguf", gguf, f"SafeServe {stage}")
    (partial / CARD).write_text(model_card(cfg, run_dir, stage, gguf))
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    return out


def write_gguf(model: Any, base_gguf: Path, path: Path, kind: str, name: str) -> Path:
    """Write ``model`` (a merged Llama-architecture transformers model) as a GGUF file at ``path``.

    A LoRA stage changes weights, never the tokenizer or the architecture, so every model key of the
    base model's own GGUF (hyper-parameters, vocabulary, merges, special tokens, chat template) is copied
    as llama.cpp wrote it; only the weights are new. Tensor names come from gguf's name map; the query and
    key projections are reordered for llama.cpp's rotary layout, as its converter does.
    """
    import gguf as gg
    import numpy as np

    base = gg.GGUFReader(base_gguf)
    arch = base.fields["general.architecture"].contents()
    writer = gg.GGUFWriter(path, arch)
    for key, field in base.fields.items():
        if not key.startswith(_FILE_KEYS):
            array = field.types[0] == gg.GGUFValueType.ARRAY
            writer.add_key_value(key, field.contents(), field.types[0], field.types[-1] if array else None)
    writer.add_name(name)
    writer.add_file_type(gg.LlamaFileType.MOSTLY_F16 if kind == "f16" else gg.LlamaFileType.ALL_F32)
    writer.add_quantization_version(gg.GGML_QUANT_VERSION)
    hp = model.config  # the architecture's hyper-parameters
    names = gg.get_tensor_name_map(next(a for a, n in gg.MODEL_ARCH_NAMES.items() if n == arch),
                                   hp.num_hidden_layers)
    heads = {"q_proj": hp.num_attention_heads, "k_proj": hp.num_key_value_heads}
    for key, tensor in model.state_dict().items():
        if key == "lm_head.weight" and hp.tie_word_embeddings:
            continue  # llama.cpp reads the tied output layer from the embeddings
        target = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise ExportError(f"{key}: no GGUF name for this {arch} tensor in gguf's name map")
        weights = tensor.detach().float().numpy()
        projection = key.rsplit(".", 2)[-2]
        if projection in heads:
            weights = _interleave_rotary_halves(weights, heads[projection])
        half = kind == "f16" and weights.ndim > 1
        writer.add_tensor(target, weights.astype(np.float16 if half else np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _interleave_rotary_halves(weights: Any, heads: int) -> Any:
    """transformers' Llama rotates the two halves of each head's dimensions; llama.cpp rotates adjacent
    pairs. Reorder each head's output rows from (half, index) to (index, half)."""
    rows = weights.shape[0]
    return weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def model_card(cfg: config.Profile, run_dir: Path, stage: str, gguf: str | None = None) -> str:
    """The card's text: provenance, the training record, the scorecard row, limits and licences."""
    record = lora.read_training_record(lora.adapter_dir(run_dir, stage)) or {}
    chain = []
    below: str | None = stage
    while below and below != "base":
        chain.append(below)
        below = (lora.read_training_record(lora.adapter_dir(run_dir, below)) or {}).get("on_top_of")
    lines = [
        f"# SafeServe `{stage}` of {cfg.model}",
        "",
        f"A stage of the SafeServe workbook (profile `{cfg.name}`, run `{run_dir.name}`): the base model "
        f"with {' then '.join(reversed(chain))} merged in, saved as plain safetensors. It loads with "
        "`AutoModelForCausalLM.from_pretrained(folder)`; no adapter library is needed.",
        *([f"`model-{gguf}.gguf` is the same model for llama.cpp (`llama-cli -m model-{gguf}.gguf -cnv`) and "
           f"Ollama (a Modelfile with `FROM ./model-{gguf}.gguf`, then `ollama create`); it carries the chat "
           "template."] if gguf else []),
        "",
        "## Training",
        "",
        f"- method `{record.get('settings', {}).get('method', '?')}`, {record.get('examples', '?')} examples, "
        f"{record.get('tokens', '?')} tokens, {record.get('seconds', '?')} s on {record.get('processes', 1)} "
        "process(es)",
        f"- settings: `{json.dumps(record.get('settings', {}), sort_keys=True)}`",
        "",
        "## Scorecard",
        "",
        *_scorecard_rows(run_dir, stage),
        "",
        "## Limits",
        "",
        "- A teaching artefact: the rates above are one run's, on the workbook's prompt sets, judged by an "
        "automatic judge with its own error rate (the run's `results/results.md` says which and how good).",
        "- Safety training moves a trade-off: a model that refuses more harmful requests may also refuse "
        "safe ones; read the over-refusal and helpful-answer rows beside the safe rate.",
        "- Not evaluated against adaptive jailbreaks, long conversations or languages other than English.",
        "",
        "## Licences",
        "",
        "The weights inherit the base model's licence. Data written by the SafeServe project is Apache-2.0; "
        "a run on the paper's sources (PKU-SafeRLHF, Alpaca: CC BY-NC 4.0) is for non-commercial use.",
        "",
    ]
    return "\n".join(lines)


def _scorecard_rows(run_dir: Path, stage: str) -> list[str]:
    results: dict[str, Any] | None = read_json(run_dir / scorecard.RESULTS_DIR / "results.json")
    rows = [r for r in (results or {}).get("headline", []) if r.get("stage") == stage]
    if not rows:
        return ["Not evaluated yet: run `06_evaluation` on this run, then export again."]
    out = [f"Judge: {results.get('judge', '?')}; 95% intervals bootstrapped over prompts.", "",
           "| measure | value | 95% interval | n |", "|---|---|---|---|"]
    for r in rows:
        shown = "{:.2f}" if r["measure"].startswith("reward") else "{:.0%}"  # a median, or a rate
        out.append(f"| {r['measure']} | {shown.format(r['value'])} | {shown.format(r['lo'])} – "
                   f"{shown.format(r['hi'])} | {r['n']} |")
    return out
