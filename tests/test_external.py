"""Published sets read from pinned wheels have their published row counts."""

import pytest

from safeserve_utils.data import external

COUNTS = {
    "harmbench": 200, "strongreject": 256, "donotanswer": 939, "past_tense": 730, "advbench": 520,
    "rho_edgy": 150, "rho_pairs": 150, "pyrit_refusal": 193, "pyrit_harm": 604,
}


@pytest.mark.parametrize("name, count", COUNTS.items())
def test_published_counts(name, count):
    rows = external.load(name)
    assert len(rows) == count
    assert len({r["id"] for r in rows}) == count and all(r["prompt"].strip() for r in rows)


def test_strongreject_drops_advbench_and_unlicensed_rows():
    everything = external.strongreject(keep_all=True)
    assert len(everything) == 313
    kept = external.strongreject()
    assert {r["origin"] for r in kept} == {"custom", "DAN"}


def test_labels():
    refusal = external.pyrit_refusal()
    assert sum(r["refusal"] for r in refusal) == 118
    assert all(0.0 <= r["harm"] <= 1.0 for r in external.pyrit_harm())
    pair = external.rho_pairs()[0]
    assert pair["benign_prompt"].endswith("?") and pair["harmful_answer"]


def test_unknown_set():
    with pytest.raises(KeyError, match="unknown published set"):
        external.load("imaginary")
