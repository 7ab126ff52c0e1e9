"""The layering is a checked contract (.importlinter, README "Architecture"): import-linter keeps a lower layer
from importing a higher one and the Django-free packages free of Django; these tests run it, make sure no
module escapes it by being left out of every layer, and keep modules to one idea's size."""
from __future__ import annotations

import ast
import configparser
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / ".importlinter"
# A module past this many lines holds more than one idea (issue 14); split it along its seams.
MAX_LINES = 450


def _contract() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(CONTRACT)
    return config


def _root_packages() -> list[str]:
    return _contract()["importlinter"]["root_packages"].split()


def _modules() -> dict[str, Path]:
    """Every non-test, non-migration module of the root packages, by dotted name."""
    modules = {}
    for package in _root_packages():
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "tests" in parts or "migrations" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _layered() -> set[str]:
    named = set()
    for section in _contract().sections():
        if _contract()[section].get("type") != "layers":
            continue
        for line in _contract()[section]["layers"].splitlines():
            named.update(part.strip() for part in re.split(r"[|:]", line) if part.strip())
    return named


def test_the_layering_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run([str(lint), str(CONTRACT), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def _imports_ours(path: Path) -> bool:
    roots = set(_root_packages())
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] in roots):
            return True
        if isinstance(node, ast.Import) and any(alias.name.split(".")[0] in roots for alias in node.names):
            return True
    return False


def test_every_module_belongs_to_a_layer():
    """A module the contract does not name is not checked at all: each must be a layer or inside one. Only
    a module that imports nothing of ours (an empty package, an AppConfig) may stay out of every layer."""
    named = _layered()
    unplaced = [module for module, path in _modules().items()
                if not any(module == layer or module.startswith(layer + ".") for layer in named)
                and _imports_ours(path)]
    assert not unplaced, f"modules in no layer of .importlinter: {unplaced}"


def test_every_layer_names_a_module_that_exists():
    modules = _modules()
    stale = sorted(layer for layer in _layered()
                   if not any(module == layer or module.startswith(layer + ".") for module in modules))
    assert not stale, f".importlinter names modules that no longer exist: {stale}"


def test_no_module_holds_more_than_one_idea():
    sizes = {module: len(path.read_text().splitlines()) for module, path in _modules().items()}
    over = {module: lines for module, lines in sizes.items() if lines > MAX_LINES}
    assert not over, f"split these along their seams (over {MAX_LINES} lines): {over}"
