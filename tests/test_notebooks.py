"""Committed notebooks: no outputs, one typed parameters cell whose defaults are the `tiny` profile."""

import json

import pytest

from safeserve_utils import config, pipeline

NOTEBOOKS = pipeline.notebooks()


def test_there_are_numbered_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_setup.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, path.name
        assert "injected-parameters" not in cell.get("metadata", {}).get("tags", [])
    ids = [cell.get("id") for cell in nb["cells"]]
    assert all(ids) and len(set(ids)) == len(ids), f"{path.name}: every cell needs its own id (nbformat 4.5)"
    assert "papermill" not in nb["metadata"] and "widgets" not in nb["metadata"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exactly_one_parameters_cell(path):
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name} has {len(tagged)} cells tagged 'parameters'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_are_typed_documented_and_match_tiny(path):
    tiny = config.PROFILES["tiny"]
    params = pipeline.notebook_parameters(path)
    assert {"profile", "run_dir"} <= set(params)
    assert params["profile"]["default"] == '"tiny"' and params["run_dir"]["default"] == '"../runs/tiny"'
    for name, info in params.items():
        assert info["type"] != "None", f"{path.name}: parameter {name} has no type annotation"
        assert info["help"], f"{path.name}: parameter {name} has no comment"
        if name in pipeline.CHAIN_PARAMETERS:
            continue
        assert hasattr(tiny, name), f"{path.name}: parameter {name} is not a profile field"
        assert eval(info["default"]) == getattr(tiny, name), (
            f"{path.name}: default of {name} differs from the tiny profile"
        )
