"""The package's own imports: all at module level (so a reader sees each module's dependencies at its
top) and without a cycle. Third-party imports may still be deferred inside functions (torch,
transformers...), so that the command line and the light modules start fast."""

import ast
import subprocess
import sys

from safeserve_utils.config import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "safeserve_utils"


def _module(path):
    return ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__")


def _is_module(name):
    path = PACKAGE.parent / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _internal(node, module):
    """Package modules an import statement of ``module`` names (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith("safeserve_utils")]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level == 0:
        base = node.module or ""
        if not base.startswith("safeserve_utils"):
            return []
    else:
        parts = module.split(".")
        anchor = parts if (PACKAGE.parent / module.replace(".", "/") / "__init__.py").exists() else parts[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([node.module] if node.module else []))
    return [f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base for a in node.names]


def graph():
    """module -> (package modules imported at module level, those imported inside a function)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module(path)
        tree = ast.parse(path.read_text(), str(path))
        top = {m for node in tree.body for m in _internal(node, module)}
        nested = {m for node in ast.walk(tree) if not any(node is n for n in tree.body)
                  for m in _internal(node, module)}
        out[module] = (top - {module}, nested - top - {module})
    return out


def _cycle(edges):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_package_import_inside_a_function():
    nested = {m: sorted(inner) for m, (_, inner) in graph().items() if inner}
    assert not nested, f"move these imports to the top of their module: {nested}"


def test_no_import_cycle():
    edges = {m: top for m, (top, _) in graph().items()}
    assert edges["safeserve_utils.evaluation.scorecard"] >= {"safeserve_utils.evaluation.rules",
                                                           "safeserve_utils.stats"}
    assert _cycle(edges) is None, " -> ".join(_cycle(edges))


def _part(module):
    """The sub-package a module belongs to (``safeserve_utils.train`` for ``...train.lora``), or itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or _is_module(module + ".__init__") else module


def test_sub_packages_depend_one_way():
    """A sub-package's ``__init__`` imports its submodules, so a cycle between parts (train -> stages ->
    train) is a cycle at import time even when no two modules import each other."""
    edges = {}
    for module, (top, _) in graph().items():
        edges.setdefault(_part(module), set()).update(_part(m) for m in top if _part(m) != _part(module))
    assert edges["safeserve_utils.evaluation"] >= {"safeserve_utils.train", "safeserve_utils.data"}
    assert _cycle(edges) is None, " -> ".join(_cycle(edges))


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_the_command_line_starts_without_torch():
    code = "import sys, safeserve_utils.__main__; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr


def test_every_module_can_be_imported_first():
    """The sub-packages' ``__init__`` import their submodules, so importing one submodule first runs its
    whole sub-package (and the ones it needs): whichever module comes first, every name imported must be
    defined by then."""
    code = ("import importlib, sys, traceback\n"
            "for name in sys.argv[1:]:\n"
            "    for loaded in [m for m in sys.modules if m.split('.')[0] == 'safeserve_utils']:\n"
            "        del sys.modules[loaded]\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except Exception:\n"
            "        print(name, traceback.format_exc().splitlines()[-1])\n")
    out = subprocess.run([sys.executable, "-c", code, *sorted(graph())], capture_output=True, text=True, check=True,
                         cwd=PROJECT_ROOT)
    assert not out.stdout, out.stdout
