"""The paper's own datasets, by hub id or local path, normalised to the workbook's schemas.

Used by the `paper` profile (a machine with hub access; the ids are Profile fields). Each loader accepts a hub id, read with
``datasets.load_dataset``, or a local file in the dataset's published on-disk format (JSON list,
JSON dict of lists, JSONL, CSV or Parquet), so it can be tested offline on small fixtures.
Their licences are in ``LICENCES`` (``01_data`` shows them); none is copied into the repository.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

Row = dict[str, Any]

#: parameter -> (licence, what the workbook uses it for). Alpaca-cleaned's card says CC BY 4.0, but it
#: derives from Alpaca (CC BY-NC 4.0): the workbook treats it as non-commercial.
LICENCES: dict[str, tuple[str, str]] = {
    "pku_source": ("CC BY-NC 4.0", "train: DPO preference pairs"),
    "alpaca_source": ("CC BY-NC 4.0", "train: SIT instructions"),
    "bianchi_safety_source": ("CC BY-NC 4.0 (Bianchi et al.'s data)", "train: SIT safety demonstrations"),
    "bianchi_eval_dir": ("CC BY-NC 4.0 (Bianchi et al.'s data)", "eval: harmful and helpful"),
    "xstest_source": ("CC BY 4.0", "eval: over-refusal"),
    "boolq_source": ("CC BY-SA 3.0", "eval: QA"),
    "piqa_source": ("AFL 3.0", "eval: QA"),
    "obqa_source": ("Apache-2.0", "eval: QA"),
}


class SourceError(ValueError):
    """A dataset source that cannot be read, or a record missing a field the normaliser needs."""


def read_records(source: str, split: str = "train") -> list[Row]:
    """Records of a local file (by extension) or of a hub dataset split."""
    path = Path(source).expanduser()
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if suffix == ".json":
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):  # Bianchi's eval files: {"instructions": [...], "inputs": [...]}
                keys = [k for k, v in loaded.items() if isinstance(v, list) and v]
                length = len(loaded[keys[0]]) if keys else 0
                return [{k: loaded[k][i] for k in keys} for i in range(length)]
            return loaded
        if suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as handle:
                return list(csv.DictReader(handle))
        if suffix == ".parquet":
            import pandas as pd

            return pd.read_parquet(path).to_dict(orient="records")
        raise SourceError(f"{path}: unsupported file type {suffix!r} (use .json, .jsonl, .csv or .parquet)")
    if path.exists() or source.startswith((".", "/", "~")):
        raise SourceError(f"{source}: not a file")
    from datasets import load_dataset

    return list(load_dataset(source, split=split))


def _field(record: Row, name: str, source: str, i: int) -> Any:
    if name not in record:
        raise SourceError(f"{source}: record {i} has no field `{name}` (fields: {', '.join(record)})")
    return record[name]


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in {"true", "1", "yes"}


def pku_saferlhf(source: str, split: str = "train") -> list[Row]:
    """PKU-SafeRLHF filtered as in the paper: exactly one response is safe, and it is also the better
    one. Rows keep the PKU schema with the safe response moved to ``response_0``."""
    rows: list[Row] = []
    for i, r in enumerate(read_records(source, split)):
        safe = [_truthy(_field(r, f"is_response_{k}_safe", source, i)) for k in (0, 1)]
        better = int(_field(r, "better_response_id", source, i))
        if safe[0] == safe[1] or not safe[better]:
            continue
        order = (better, 1 - better)
        rows.append({
            "id": f"pku-{split}-{i:06d}", "source": "pku_saferlhf",
            "category": "pku_saferlhf",
            "prompt": _field(r, "prompt", source, i),
            "response_0": r[f"response_{order[0]}"], "response_1": r[f"response_{order[1]}"],
            "is_response_0_safe": True, "is_response_1_safe": False,
            "better_response_id": 0, "safer_response_id": 0,
        })
    return rows


def alpaca_style(source: str, split: str = "train", category: str = "alpaca") -> list[Row]:
    """Alpaca(-cleaned) or Bianchi's safety demonstrations: {instruction, input, output} -> SFT rows."""
    rows = []
    for i, r in enumerate(read_records(source, split)):
        instruction = _field(r, "instruction", source, i)
        extra = (r.get("input") or "").strip()
        rows.append({"id": f"{category}-{i:06d}", "source": category, "category": category,
                     "prompt": f"{instruction}\n\n{extra}" if extra else instruction,
                     "response": _field(r, "output", source, i)})
    return rows


def bianchi_eval(path: str) -> list[Row]:
    """One of Bianchi et al.'s evaluation files (I-CoNa, I-MaliciousInstructions, ...): prompts only."""
    name = Path(path).stem
    return [{"id": f"{name}-{i:04d}", "source": name, "category": name,
             "prompt": _field(r, "instructions", path, i)} for i, r in enumerate(read_records(path))]


def xstest(source: str, split: str = "test") -> list[Row]:
    """XSTest: 250 safe prompts that look unsafe (over-refusal) and 200 unsafe contrasts."""
    return [{"id": f"xstest-{i:04d}", "source": "xstest", "category": _field(r, "type", source, i),
             "prompt": _field(r, "prompt", source, i), "label": _field(r, "label", source, i)}
            for i, r in enumerate(read_records(source, split))]


def boolq(source: str, split: str = "validation") -> list[Row]:
    return [{"id": f"boolq-{i:05d}", "source": "boolq", "category": "boolq",
             "question": f"{_field(r, 'passage', source, i)}\n\nQuestion: {_field(r, 'question', source, i)}?",
             "choices": ["yes", "no"], "answer": 0 if _truthy(r["answer"]) else 1}
            for i, r in enumerate(read_records(source, split))]


def piqa(source: str, split: str = "validation") -> list[Row]:
    return [{"id": f"piqa-{i:05d}", "source": "piqa", "category": "piqa",
             "question": _field(r, "goal", source, i), "choices": [r["sol1"], r["sol2"]],
             "answer": int(_field(r, "label", source, i))}
            for i, r in enumerate(read_records(source, split)) if int(r.get("label", 0)) != -1]


def openbookqa(source: str, split: str = "validation") -> list[Row]:
    rows = []
    for i, r in enumerate(read_records(source, split)):
        choices = _field(r, "choices", source, i)
        labels = list(choices["label"])
        rows.append({"id": f"obqa-{i:05d}", "source": "openbookqa", "category": "openbookqa",
                     "question": _field(r, "question_stem", source, i), "choices": list(choices["text"]),
                     "answer": labels.index(_field(r, "answerKey", source, i))})
    return rows
