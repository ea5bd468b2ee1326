"""The papermill chain: the smoke profile end to end and offline; failure, skip and resume."""

import json
import subprocess
import sys

import nbformat
import pytest

from conftest import guarded_env
from safeserve_utils import config, pipeline, rundir
from safeserve_utils.evaluation import scorecard


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "safeserve_utils", *args], capture_output=True,
                          text=True, env=env, cwd=config.PROJECT_ROOT)


@pytest.mark.chain
@pytest.mark.timeout(1800)  # eight notebooks, then a no-op re-run
def test_smoke_chain_runs_offline_and_resumes(smoke_chain):
    """The whole chain on `smoke` with every process behind the network guard; then a no-op re-run."""
    run_dir, log, first = smoke_chain
    assert first.returncode == 0, first.stdout + first.stderr
    assert not log.exists() or not log.read_text(), f"network attempts:\n{log.read_text()}"
    for path in pipeline.notebooks():
        executed = nbformat.read(run_dir / "notebooks" / path.name, as_version=4)
        assert executed.metadata.papermill.exception is None
    assert json.loads((run_dir / "config.json").read_text())["profile"]["name"] == "smoke"
    setup = json.loads((run_dir / "metrics" / "setup.json").read_text())
    assert setup["refusals"]["harmful"]["asked"] == config.PROFILES["smoke"].demo_prompts
    assert f"Executed notebooks: {run_dir / 'notebooks'}" in first.stdout
    from safeserve_utils.train import stages

    assert stages.stages(run_dir) == ["base", "sit-n0", "sit-n8", "raft-it1", "raft-random-it1", "dpo"]
    results = json.loads((run_dir / "results" / "results.json").read_text())
    # smoke scores the headline stages: 02 scored both SIT stages on the dev split and chose one
    cfg = config.load_run_config(run_dir)
    chosen = scorecard.sit_choice(run_dir, cfg)
    assert chosen in ("sit-n0", "sit-n8") and set(scorecard.dev_results(run_dir, ["sit-n0", "sit-n8"])) == {"sit-n0", "sit-n8"}
    assert results["stages"] == ["base", chosen, "raft-it1", "raft-random-it1", "dpo"] and results["comparisons"]
    assert {r["stage"] for r in results["headline"]} == set(results["stages"])
    assert (run_dir / "reward_model" / "adapter_config.json").exists() and (run_dir / "raft" / "raft-it.json").exists()
    probe = nbformat.read(run_dir / "notebooks" / "07_probe.ipynb", as_version=4)
    assert "headless run: the panel is not shown" in json.dumps(probe.cells[-1].outputs)

    again = cli("run", "--profile", "smoke", "--run-dir", str(run_dir), env=guarded_env(log))
    assert again.returncode == 0 and "unchanged, skipped" in again.stdout
    assert f"0 ran, {len(pipeline.notebooks())} skipped" in again.stdout


def make_notebook(path, body, params='profile: str = "tiny"  # profile\nrun_dir: str = "."  # run dir'):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("from pathlib import Path"),
                nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return path


@pytest.mark.chain
def test_failure_names_notebook_and_cell_and_keeps_earlier_stages(tmp_path):
    books, run_dir = tmp_path / "nb", tmp_path / "run"
    books.mkdir()
    ok = make_notebook(books / "00_ok.ipynb", "Path(run_dir, 'a.txt').write_text('from 00')")
    bad = make_notebook(books / "01_bad.ipynb", "raise ValueError('boom')")
    with pytest.raises(pipeline.StageFailed) as failure:
        pipeline.run_chain("smoke", run_dir, stages=[ok, bad], log=lambda _: None)
    message = str(failure.value)
    assert "01_bad.ipynb failed in cell In [4]" in message and "raise ValueError" in message and "ValueError: boom" in message
    assert (run_dir / "notebooks" / "01_bad.ipynb").exists(), "partial output notebook kept"
    stages = json.loads((run_dir / "stages.json").read_text())
    assert stages["00_ok.ipynb"]["status"] == "ok" and stages["01_bad.ipynb"]["status"] == "failed"
    assert (run_dir / "a.txt").read_text() == "from 00"

    make_notebook(bad, "Path(run_dir, 'b.txt').write_text('fixed')")
    lines = []
    results = pipeline.run_chain("smoke", run_dir, stages=[ok, bad], log=lines.append)
    assert [r.status for r in results] == ["skipped", "ran"]
    assert (run_dir / "b.txt").read_text() == "fixed"


@pytest.mark.chain
def test_a_stage_whose_outputs_are_gone_is_rerun_not_skipped(tmp_path):
    """The run's data/ deleted: 01_data used to be skipped on its "ok" record, and 02 failed forever."""
    books, run_dir = tmp_path / "nb", tmp_path / "run"
    books.mkdir()
    writes = make_notebook(books / "00_writes.ipynb", "Path(run_dir, 'data').mkdir(exist_ok=True); "
                                                      "Path(run_dir, 'data', 'a.txt').write_text('rows')")
    reads = make_notebook(books / "01_reads.ipynb", "assert Path(run_dir, 'data', 'a.txt').read_text() == 'rows'")
    pipeline.run_chain("smoke", run_dir, stages=[writes, reads], log=lambda _: None)
    record = json.loads((run_dir / "stages.json").read_text())
    assert record["00_writes.ipynb"]["outputs"]["data/a.txt"] == 4
    (run_dir / "data" / "a.txt").unlink()
    lines = []
    results = pipeline.run_chain("smoke", run_dir, stages=[writes, reads], log=lines.append)
    assert [r.status for r in results] == ["ran", "skipped"]
    assert any("outputs changed on disk (data/a.txt)" in line for line in lines)


def test_a_log_growing_in_the_run_directory_is_no_stages_output(tmp_path):
    """`run ... > runs/tiny/chain.log` appends while every stage runs: it used to become the output of
    the stage it grew under, so the next run with nothing changed re-ran that stage."""
    books, run_dir = tmp_path / "nb", tmp_path / "run"
    books.mkdir()
    grows = ("Path(run_dir, 'chain.log').open('a').write('line'); Path(run_dir, 'logs').mkdir(exist_ok=True); "
             "Path(run_dir, 'logs', 'try.log').open('a').write('x'); Path(run_dir, 'out.txt').write_text('o')")
    stage = make_notebook(books / "00_grows.ipynb", grows)
    pipeline.run_chain("smoke", run_dir, stages=[stage], log=lambda _: None)
    assert set(json.loads((run_dir / "stages.json").read_text())["00_grows.ipynb"]["outputs"]) == {
        "out.txt", "notebooks/00_grows.ipynb"}
    (run_dir / "chain.log").write_text("the runner kept writing")
    assert [r.status for r in pipeline.run_chain("smoke", run_dir, stages=[stage], log=lambda _: None)] == ["skipped"]


@pytest.mark.chain
def test_a_changed_parameter_reruns_its_stage_and_the_later_ones_only(tmp_path):
    books, run_dir = tmp_path / "nb", tmp_path / "run"
    books.mkdir()
    declares = 'profile: str = "tiny"  # profile\nrun_dir: str = "."  # run dir\n'
    chain = [make_notebook(books / "00_a.ipynb", "pass", declares + "seed: int = 0  # seed"),
             make_notebook(books / "01_b.ipynb", "pass", declares + "eval_max_new_tokens: int = 64  # tokens"),
             make_notebook(books / "02_c.ipynb", "pass", declares + "judge: str = 'learned'  # judge")]
    pipeline.run_chain("smoke", run_dir, stages=chain, log=lambda _: None)
    results = pipeline.run_chain("smoke", run_dir, {"eval_max_new_tokens": 12}, stages=chain, log=lambda _: None)
    assert [r.status for r in results] == ["skipped", "ran", "ran"]
    injected = nbformat.read(run_dir / "notebooks" / "01_b.ipynb", as_version=4)
    assert "eval_max_new_tokens = 12" in "".join(cell.source for cell in injected.cells)


def test_a_run_directory_of_another_profile_is_refused_unless_forced(tmp_path):
    config.write_run_config(config.resolve("smoke"), tmp_path)
    with pytest.raises(config.ConfigError, match="holds a 'smoke' run: use --profile smoke"):
        pipeline.run_chain("tiny", tmp_path, stages=[], log=lambda _: None)
    assert json.loads((tmp_path / "config.json").read_text())["profile"]["name"] == "smoke"  # untouched
    pipeline.run_chain("tiny", tmp_path, stages=[], force=True, log=lambda _: None)
    assert json.loads((tmp_path / "config.json").read_text())["profile"]["name"] == "tiny"


def test_an_interrupted_stage_is_not_left_ok(tmp_path, monkeypatch):
    """Ctrl-C during a --force re-run used to leave the old "ok" record, so the next run skipped it."""
    nb = make_notebook(tmp_path / "00_x.ipynb", "pass")
    run_dir = tmp_path / "run"
    monkeypatch.setattr(pipeline, "execute", lambda *a: None)
    pipeline.run_chain("smoke", run_dir, stages=[nb], log=lambda _: None)

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "execute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_chain("smoke", run_dir, stages=[nb], force=True, log=lambda _: None)
    assert json.loads((run_dir / "stages.json").read_text())["00_x.ipynb"]["status"] == "running"
    assert not (run_dir / rundir.LOCK_FILE).exists()  # released on the way out


def test_fingerprint_changes_with_upstream_and_params(tmp_path):
    nb = make_notebook(tmp_path / "00_x.ipynb", "pass")
    base = pipeline.fingerprint(nb, {"a": 1}, "", "code")
    assert base == pipeline.fingerprint(nb, {"a": 1}, "", "code")
    assert base != pipeline.fingerprint(nb, {"a": 2}, "", "code")
    assert base != pipeline.fingerprint(nb, {"a": 1}, "upstream-changed", "code")
    assert base != pipeline.fingerprint(nb, {"a": 1}, "", "code-changed")
    moved = pipeline.fingerprint(nb, {"a": 1, "run_dir": "/elsewhere"}, "", "code")
    assert moved == pipeline.fingerprint(nb, {"a": 1, "run_dir": "/here"}, "", "code")  # a moved run resumes


def test_stage_parameters_come_from_the_profile(tmp_path):
    cfg = config.resolve("smoke")
    params = pipeline.stage_parameters(pipeline.notebooks()[0], cfg, tmp_path)
    assert params["profile"] == "smoke" and params["run_dir"] == str(tmp_path)
    assert params["max_new_tokens"] == cfg.max_new_tokens


def test_cli_help_and_list():
    helped = cli("run", "--help")
    assert helped.returncode == 0 and "--profile" in helped.stdout and "skips the stages" in helped.stdout
    listed = cli("run", "--list", "--profile", "smoke")
    assert listed.returncode == 0 and "00_setup.ipynb" in listed.stdout
    assert "max_new_tokens: int" in listed.stdout and "-> 12" in listed.stdout


def test_cli_rejects_bad_parameter_clearly(tmp_path):
    out = cli("run", "--profile", "smoke", "--run-dir", str(tmp_path), "-p", "max_new_tokens=many")
    assert out.returncode == 2 and "parameter `max_new_tokens` expects int" in out.stderr


def test_seed_runs_sit_beside_the_default_run_and_bad_seeds_are_refused():
    from safeserve_utils.__main__ import seed_run_dir

    assert seed_run_dir("tiny", 0) == config.default_run_dir("tiny")
    assert seed_run_dir("tiny", 2) == config.default_run_dir("tiny").with_name("tiny-seed2")
    out = cli("seeds", "--seeds", "0,x")
    assert out.returncode == 2 and "--seeds '0,x'" in out.stderr
    out = cli("seeds", "--profile", "smoke", "--seeds", "907", "--table-only")
    assert out.returncode == 2 and "seed 907:" in out.stderr and "smoke-seed907/results/results.json does not" \
        in out.stderr and not config.default_run_dir("smoke").with_name("smoke-seed907").exists()
    out = cli("experiment", "--method", "sit", "--name", "a", "--run-dir", "/nonexistent/x", "-p", "bogus=1")
    assert out.returncode == 2 and "unknown parameter `bogus`" in out.stderr


@pytest.mark.chain
def test_chain_kernels_use_local_sockets_and_print_no_tcp_warning(tmp_path, capfd):
    nb = make_notebook(tmp_path / "00_x.ipynb", "print('hello')")
    pipeline.run_chain("smoke", tmp_path / "run", stages=[nb], log=lambda _: None)
    assert "without encryption" not in capfd.readouterr().err
