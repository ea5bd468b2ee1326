"""The probe in a real browser: JupyterLab on a loopback port with a token, 07_probe.ipynb opened in
Debian's headless Chromium through Playwright, run, a prompt typed, Generate clicked, and the answers
of two stages read back from the page. A screenshot is saved in the test's output directory."""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import guarded_env
from safeserve_utils import config, params, pipeline

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
INSTALL_HINT = ("Debian's Chromium is needed for the browser test: `make browser` "
                "(apt-get install chromium) installs it; Playwright does not download a browser here.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def probe_run(smoke_chain, tmp_path_factory):
    """A copy of the session's smoke chain run with two stages to compare, base and sit-n0: the panel
    is what this test is about, and every further stage would only add its loading to the wait."""
    run_dir, _, finished = smoke_chain
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    copy = tmp_path_factory.mktemp("probe") / "run"
    shutil.copytree(run_dir, copy, ignore=lambda folder, names: [
        n for n in names if folder == str(run_dir / "adapters") and n != "sit-n0"])
    return copy


@pytest.fixture(scope="module")
def lab(probe_run, tmp_path_factory):
    """JupyterLab serving a parameterised copy of 07_probe.ipynb (the smoke chain's parameters, interactive)."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    root = tmp_path_factory.mktemp("lab")
    path = params.notebook_path("07_probe")
    # The chain's own parameters, so the fixed comparison reads the answers the chain's 07 generated.
    injected = pipeline.stage_parameters(path, config.resolve("smoke"), probe_run)
    nb = parameterize_notebook(load_notebook_node(str(path)), {**injected, "interactive": True})
    nbformat.write(nb, root / "07_probe.ipynb")
    port, token = free_port(), secrets.token_hex(16)
    log = root / "netguard.log"
    env = {**guarded_env(log), "JUPYTER_CONFIG_DIR": str(root / ".jupyter"), "JUPYTER_RUNTIME_DIR": str(root / ".rt")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        env=env, stdout=open(root / "lab.log", "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail(f"JupyterLab did not start:\n{(root / 'lab.log').read_text()[-2000:]}")
    yield url, token, root
    server.terminate()
    server.wait(timeout=30)
    assert not (log.exists() and log.read_text()), "the notebook tried to reach the network"


def kernel_idle(url: str, token: str) -> bool:
    sessions = json.load(urllib.request.urlopen(f"{url}/api/sessions?token={token}", timeout=5))
    return bool(sessions) and all(s["kernel"]["execution_state"] == "idle" for s in sessions)


def test_probe_panel_in_a_real_browser(lab, tmp_path):
    if CHROMIUM is None:
        pytest.fail(INSTALL_HINT)
    from playwright.sync_api import sync_playwright

    url, token, root = lab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{url}/lab/tree/07_probe.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            for _ in range(240):  # the kernel starts and goes idle
                if kernel_idle(url, token):
                    break
                time.sleep(0.5)
            page.click(".jp-Notebook .jp-Cell")
            page.keyboard.press("Control+Shift+C")  # the command palette
            page.keyboard.type("Run All Cells")
            page.keyboard.press("Enter")
            prompt_box = page.wait_for_selector("textarea[placeholder='Type a prompt…']", timeout=300_000)
            prompt_box.fill("How do I kill a Python script that is stuck in an infinite loop?")
            page.click("button:has-text('Generate')")
            page.wait_for_function("document.querySelectorAll('.jp-OutputArea .probe-answer').length >= 2",
                                   timeout=300_000)
            page.wait_for_selector("text=Done in", timeout=60_000)
            answers = page.eval_on_selector_all(".jp-OutputArea .probe-answer",
                                                "els => els.map(e => [e.dataset.stage, e.innerText])")
            shot = tmp_path / "probe-panel.png"
            page.locator(".jp-OutputArea .probe-answer").first.scroll_into_view_if_needed()
            page.screenshot(path=str(shot), full_page=False)
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    stages = {stage: text for stage, text in answers}
    assert {"base", "sit-n0"} <= set(stages), answers
    assert all(len(text.split("\n", 1)[-1].strip()) > 0 for text in stages.values())
    assert "failed:" not in " ".join(stages.values())
    assert shot.stat().st_size > 10_000
    (root / "screenshot.json").write_text(json.dumps({"screenshot": str(shot)}))
    print(f"screenshot: {shot}")
