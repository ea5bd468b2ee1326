"""Evaluation: what each stage of a run does with harmful, borderline and helpful prompts.

``rules`` holds the four verdicts and the readable rules, ``judges`` the learned judge and the judges'
validation, ``llama_guard`` the paper's judge, ``embeddings`` the MiniLM encoder the learned judge and
``01_data`` use, ``reward`` the reward scorer, ``metrics`` the per-set rates and QA accuracy,
``scorecard`` the cached per-stage evaluation and the paired tests, ``report`` their text,
``select`` the judge and reward model a profile names, and ``labelling`` how the judge files of real
answers were drawn. Notebook ``06_evaluation`` is their main reader; ``00``-``04`` call the names below
(``evaluation.make_judge``, ``evaluation.is_refusal``, ...).
"""

from . import embeddings, judges, labelling, llama_guard, metrics, reward, report, rules, scorecard, select
from .judges import LearnedJudge, default_judge
from .llama_guard import LlamaGuardJudge
from .metrics import PAPER_SAFE_RATES
from .reward import RewardScorer
from .rules import LABELS, RuleJudge, Verdict, is_refusal, rule_label
from .select import make_judge, make_reward

__all__ = [
    "embeddings", "judges", "labelling", "llama_guard", "metrics", "reward", "report", "rules", "scorecard", "select",
    "LearnedJudge", "default_judge", "LlamaGuardJudge", "PAPER_SAFE_RATES", "RewardScorer",
    "LABELS", "RuleJudge", "Verdict", "is_refusal", "rule_label", "make_judge", "make_reward",
]
