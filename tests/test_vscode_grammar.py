"""The VS Code extension in editors/vscode/.

Pure Python (always run):
- the TextMate grammar is JSON with scopeName source.mdl, and its primitive and builtin name lists
  are exactly mdl.compiler.primitives' PRIMITIVES and BUILTINS (run
  editors/vscode/scripts/sync_primitives.py after adding a primitive);
- its keywords are exactly the parser's KEYWORDS (and include every word of mdl/dsl/grammar.lark);
- package.json contributes the `mdl` language for `.mdl` files with this grammar, and the server
  command defaults to `mdlc lsp`; language-configuration.json uses `#` comments;
- the grammar test files (apart from invalid.test.mdl) are themselves valid .mdl syntax, so the
  assertions test what users really write.

With node and npm (CI installs them; `npm ci` runs here when node_modules is missing):
- `vscode-tmgrammar-test` passes on editors/vscode/tests/*.test.mdl;
- tests/tokenize_examples.js tokenizes every file in examples/ and mdl/stdlib/ (no invalid token
  and balanced begin/end rules in the files that compile, no failure in examples/errors/).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from mdl.compiler.primitives import BUILTINS, PRIMITIVES
from mdl.dsl.parser import KEYWORDS, parse

ROOT = Path(__file__).resolve().parent.parent
EXT = ROOT / "editors" / "vscode"
GRAMMAR = EXT / "syntaxes" / "mdl.tmLanguage.json"
GRAMMAR_TESTS = sorted((EXT / "tests").glob("*.test.mdl"))
NPM_CI_TIMEOUT_S = 900
NODE_TEST_TIMEOUT_S = 300


def grammar() -> dict:
    return json.loads(GRAMMAR.read_text(encoding="utf-8"))


def regexes(node) -> list[str]:
    """Every `match`, `begin` and `end` regex in a grammar (sub)tree."""
    if isinstance(node, list):
        return [r for item in node for r in regexes(item)]
    if not isinstance(node, dict):
        return []
    own = [v for k, v in node.items() if k in ("match", "begin", "end") and isinstance(v, str)]
    return own + [r for v in node.values() for r in regexes(v)]


def alternation(regex: str) -> list[str]:
    """The names of the one `(?:a|b|c)` group in a grammar rule's regex."""
    groups = re.findall(r"\(\?:([A-Za-z0-9_|]+)\)", regex)
    assert len(groups) == 1, f"expected one (?:a|b|...) group in {regex!r}"
    return groups[0].split("|")


def test_grammar_is_json_for_source_mdl():
    g = grammar()
    assert g["scopeName"] == "source.mdl"
    assert g["patterns"], "the grammar has no top-level patterns"
    includes = set(re.findall(r'"include": "#([^"]+)"', GRAMMAR.read_text(encoding="utf-8")))
    missing = includes - set(g["repository"])
    assert not missing, f"rules included but not defined: {sorted(missing)}"


def test_grammar_primitives_are_exactly_PRIMITIVES():
    names = alternation(grammar()["repository"]["primitive"]["match"])
    assert sorted(names) == sorted(PRIMITIVES), (
        "the grammar's primitive list drifted from mdl.compiler.primitives.PRIMITIVES; "
        "run python editors/vscode/scripts/sync_primitives.py"
    )
    assert len(names) == len(set(names))


def test_grammar_builtins_are_exactly_BUILTINS():
    assert sorted(alternation(grammar()["repository"]["builtin"]["match"])) == sorted(BUILTINS)


def test_grammar_keywords_are_exactly_the_parsers():
    """Each keyword is highlighted, and every `(?!(?:kw|...)\\b)` guard (a unit, a call, a model name
    is never a keyword) lists them all."""
    lark = (ROOT / "mdl" / "dsl" / "grammar.lark").read_text(encoding="utf-8")
    assert set(re.findall(r'"([a-z]+)"', lark)) <= set(KEYWORDS)
    repo = grammar()["repository"]
    highlighted = set()
    for rule in repo["keyword"]["patterns"] + repo["constant"]["patterns"]:
        if "match" in rule:
            highlighted.update(re.findall(r"[a-z]+", rule["match"].replace(r"\b", " ")))
    assert highlighted == set(KEYWORDS)
    guards = [g for regex in regexes(grammar()) for g in re.findall(r"\(\?!\(\?:([a-z|]+)\)\\b\)", regex)]
    assert len(guards) >= 3
    for guard in guards:
        assert set(guard.split("|")) == set(KEYWORDS)


def test_package_json_contributes_the_language():
    pkg = json.loads((EXT / "package.json").read_text(encoding="utf-8"))
    (lang,) = pkg["contributes"]["languages"]
    assert lang["id"] == "mdl" and lang["extensions"] == [".mdl"]
    (gram,) = pkg["contributes"]["grammars"]
    assert gram["language"] == "mdl" and gram["scopeName"] == "source.mdl"
    assert (EXT / gram["path"]).resolve() == GRAMMAR
    conf = json.loads((EXT / lang["configuration"]).read_text(encoding="utf-8"))
    assert conf["comments"]["lineComment"] == "#"
    assert ["{", "}"] in conf["brackets"]
    props = pkg["contributes"]["configuration"]["properties"]
    assert props["mdl.server.command"]["default"] == ["mdlc", "lsp"]
    assert "mdl.trace.server" in props
    assert pkg["main"] == "./out/extension.js"
    assert "onLanguage:mdl" in pkg["activationEvents"]
    assert pkg["dependencies"]["vscode-languageclient"].startswith("^9")
    # vsce refuses an @types/vscode newer than engines.vscode.
    assert pkg["devDependencies"]["@types/vscode"].lstrip("~^") <= pkg["engines"]["vscode"].lstrip("~^")


@pytest.mark.parametrize("path", [p for p in GRAMMAR_TESTS if p.name != "invalid.test.mdl"], ids=lambda p: p.name)
def test_grammar_test_file_is_valid_mdl_syntax(path: Path):
    _, diagnostics = parse(path.read_text(encoding="utf-8"), str(path))
    assert not diagnostics, [f"{d.span}: {d.message}" for d in diagnostics]


def test_there_are_grammar_tests():
    assert len(GRAMMAR_TESTS) >= 4
    for path in GRAMMAR_TESTS:
        assert path.read_text(encoding="utf-8").startswith('# SYNTAX TEST "source.mdl"'), path.name


# ------------------------------------------------------------------------------------------ node
def _run(cmd: list[str], timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=EXT, capture_output=True, text=True, timeout=timeout, check=False)


def _install_lock_wait(lock: Path) -> None:
    """One `npm ci` at a time across pytest-xdist workers."""
    deadline = time.monotonic() + NPM_CI_TIMEOUT_S
    while True:
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL))
            return
        except FileExistsError:
            if time.monotonic() > deadline:
                pytest.fail(f"waited {NPM_CI_TIMEOUT_S}s for another npm ci ({lock} exists)")
            time.sleep(1)


@pytest.fixture(scope="module")
def node_modules() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are not installed")
    modules = EXT / "node_modules"
    marker = modules / "vscode-tmgrammar-test" / "package.json"
    if not marker.exists():
        lock = EXT / ".npm-ci.lock"
        _install_lock_wait(lock)
        try:
            if not marker.exists():
                r = _run([npm, "ci", "--no-audit", "--no-fund"], NPM_CI_TIMEOUT_S)
                assert r.returncode == 0, f"npm ci failed in {EXT}:\n{r.stdout}\n{r.stderr}"
        finally:
            lock.unlink(missing_ok=True)
    return modules


def test_vscode_tmgrammar_test_passes(node_modules: Path):
    npx = shutil.which("npx")
    assert npx, "npm is installed but npx is not"
    r = _run([npx, "--no", "vscode-tmgrammar-test", "tests/*.test.mdl"], NODE_TEST_TIMEOUT_S)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("run successfuly") == len(GRAMMAR_TESTS), r.stdout


def test_every_example_tokenizes(node_modules: Path):
    r = _run([shutil.which("node"), "tests/tokenize_examples.js"], NODE_TEST_TIMEOUT_S)
    assert r.returncode == 0, r.stdout + r.stderr
    examples = [*(ROOT / "examples").rglob("*.mdl"), *(ROOT / "mdl" / "stdlib").rglob("*.mdl")]
    assert f"{len(examples)}/{len(examples)} files tokenized cleanly" in r.stdout, r.stdout
