"""Committed notebooks: no outputs, one typed parameters cell whose defaults are the `tiny` profile."""

import json

import pytest

from safeserve_utils import config, params, pipeline

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
def test_parameters_cell_is_what_the_profile_renders(path):
    """Papermill's reading of the cell (type, default, help) is the profile's: declared once."""
    import papermill

    seen = papermill.inspect_notebook(str(path))
    # papermill skips a line it cannot parse (a second "=" in the help, say) with only a warning
    assert {"profile", "run_dir"} <= set(seen) and set(seen) == set(params.declared(path)), (
        f"{path.name}: papermill cannot read {sorted(set(params.declared(path)) - set(seen))}")
    for name, info in seen.items():
        kind, default, help_text = params.spec(name)
        assert (info["inferred_type_name"], eval(info["default"]), info["help"]) == (kind.__name__, default, help_text), (
            f"{path.name}: {name} differs from config.Profile; run `python -m safeserve_utils parameters --write`")
    assert path not in params.stale()


def test_a_drifted_cell_is_found_and_re_rendered(tmp_path):
    source = params.notebook_path("05_dpo")
    nb = json.loads(source.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    cell["source"] = [line.replace("dpo_beta: float = 0.1", "dpo_beta: float = 0.5") for line in cell["source"]]
    (tmp_path / source.name).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    assert params.stale(tmp_path) == [tmp_path / source.name]
    assert params.stale(tmp_path, write=True) and params.stale(tmp_path) == []
    assert (tmp_path / source.name).read_text() == source.read_text()


def test_a_cell_naming_no_profile_field_is_an_error():
    with pytest.raises(config.ConfigError, match="`dpo_betta` is not a field of config.Profile"):
        params.render(["profile", "dpo_betta"])


def test_open_notebook_takes_the_cells_values_without_listing_them(tmp_path):
    names = params.declared(params.notebook_path("05_dpo"))
    namespace = {n: params.spec(n)[1] for n in names} | {"run_dir": str(tmp_path), "dpo_beta": 0.25, "model": "x"}
    cfg = params.open_notebook("05_dpo", namespace)
    assert cfg.dpo_beta == 0.25 and cfg.model == config.PROFILES["tiny"].model  # `model` is not 05's parameter
    del namespace["dpo_lr"]
    with pytest.raises(config.ConfigError, match="run its parameters cell first .*dpo_lr"):
        params.open_notebook("05_dpo", namespace)
