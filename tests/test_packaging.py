"""pyproject.toml, environment.yml and the Makefile agree on one pinned stack."""

import re
import tomllib

import yaml

from safeserve_utils.config import PROJECT_ROOT


def pyproject():
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())


def test_dependencies_are_exact_pins():
    for req in pyproject()["project"]["dependencies"]:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", req), req


def test_environment_yml_matches_pyproject():
    project = pyproject()["project"]
    expected = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {d for d in pip_section if not d.startswith("-")}
    assert listed == expected
    assert "-e ." in pip_section
    assert "python=3.11" in env["dependencies"]


def test_makefile_installs_torch_first_from_the_pin():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    torch_line = makefile.index("pip install --quiet $(TORCH)")
    assert torch_line < makefile.index("pip install --quiet -e '.[dev]'")
    assert "grep -o '\"torch==" in makefile
    assert "torch==2.13.0" in pyproject()["project"]["dependencies"]


def test_licence_is_apache():
    assert "Apache License" in (PROJECT_ROOT / "LICENSE").read_text()
    assert pyproject()["project"]["license"] == "Apache-2.0"


def test_no_remote_code_or_pickles_in_the_package():
    for path in (PROJECT_ROOT / "safeserve_utils").rglob("*.py"):
        text = path.read_text()
        assert "trust_remote_code=True" not in text, path.name
        assert "torch.load(" not in text, path.name
