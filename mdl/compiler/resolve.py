"""Imports and top-level names: load a file and everything it imports into `ModuleScope`s.

`import stdlib.NAME` reads `mdl/stdlib/NAME.mdl` from the package (names unqualified, or qualified
with `as`); `import "path.mdl" as N` reads a file relative to the importing one (names qualified).
Nothing is executed; a missing file or a cycle is an error at the import.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath

from mdl.compiler.primitives import BUILTINS, PRIMITIVES
from mdl.dsl import ast
from mdl.dsl.diagnostics import Diagnostic, Label, did_you_mean, error
from mdl.dsl.parser import parse

Definition = ast.Const | ast.Block | ast.Model


@dataclass(eq=False)
class ModuleScope:
    """One parsed file and the names it defines and imports."""

    path: str | None
    module: ast.Module
    definitions: dict[str, Definition] = field(default_factory=dict)
    experiments: dict[str, ast.Experiment] = field(default_factory=dict)
    namespaces: dict[str, ModuleScope] = field(default_factory=dict)  # `as` imports
    unqualified: list[ModuleScope] = field(default_factory=list)  # plain `import stdlib.X`
    syntax_ok: bool = True
    failed_imports: set[str] = field(default_factory=set)  # aliases (or "" for a plain import) that failed

    def from_failed_import(self, name: str) -> bool:
        """Whether an unknown `name` may come from an import that already failed (so is not reported again)."""
        head, dot, _ = name.rpartition(".")
        return head in self.failed_imports if dot else "" in self.failed_imports

    def lookup(self, name: str) -> tuple[Definition, ModuleScope] | None:
        """A definition by (possibly qualified) name, with the scope it was defined in."""
        if "." in name:
            head, _, rest = name.partition(".")
            ns = self.namespaces.get(head)
            if ns is None:
                return None
            found = ns.definitions.get(rest)
            return (found, ns) if found is not None else None
        if name in self.definitions:
            return self.definitions[name], self
        for imported in self.unqualified:
            if name in imported.definitions:
                return imported.definitions[name], imported
        return None

    def visible_names(self) -> list[str]:
        names = list(self.definitions)
        for imported in self.unqualified:
            names += list(imported.definitions)
        for alias, ns in self.namespaces.items():
            names += [f"{alias}.{n}" for n in ns.definitions]
        return names


def stdlib_modules() -> list[str]:
    """Names importable as `stdlib.NAME` (templates as `stdlib.templates.NAME`)."""
    root = resources.files("mdl.stdlib")
    names = [p.name[:-4] for p in root.iterdir() if p.name.endswith(".mdl")]
    names += [f"templates.{p.name[:-4]}" for p in root.joinpath("templates").iterdir() if p.name.endswith(".mdl")]
    return sorted(names)


@functools.lru_cache(maxsize=16)
def _parse_stdlib(text: str, path: str) -> tuple[ast.Module, tuple[Diagnostic, ...]]:
    """`parse` for stdlib modules, which every check of a design that imports them reads again: the tree
    and the diagnostics are immutable, so one parse per text serves them all."""
    module, syntax = parse(text, path)
    return module, tuple(syntax)


class Loader:
    """Loads a root file and its imports; shares one scope per file."""

    def __init__(self, diagnostics: list[Diagnostic], overlay: Mapping[str, str] | None = None):
        self.diagnostics = diagnostics
        # Resolved file path -> text to use instead of the file on disk (the language server's unsaved
        # editor buffers); empty for `mdlc`, which reads every import from disk.
        self.overlay = overlay or {}
        self.loaded: dict[str, ModuleScope] = {}
        self.loading: list[str] = []

    def load_source(self, text: str, path: str | None) -> ModuleScope:
        return self._load(text, path, str(Path(path).resolve()) if path else "<input>")

    def _load(self, text: str, path: str | None, key: str) -> ModuleScope:
        module, syntax = _parse_stdlib(text, path) if key.startswith("<stdlib>/") else parse(text, path)
        self.diagnostics.extend(syntax)
        scope = ModuleScope(path, module, syntax_ok=not any(d.is_error for d in syntax))
        self.loaded[key] = scope
        self.loading.append(key)
        try:
            self._define(scope)
            self._imports(scope)
        finally:
            self.loading.pop()
        return scope

    def _define(self, scope: ModuleScope) -> None:
        for item in scope.module.items:
            if isinstance(item, ast.Import):
                continue
            table = scope.experiments if isinstance(item, ast.Experiment) else scope.definitions
            if item.name in PRIMITIVES or item.name in BUILTINS:
                self.diagnostics.append(error(
                    "E0107", item.name_span, f"`{item.name}` is a primitive and cannot be redefined",
                    f"choose another name, e.g. `my_{item.name}`"))
                continue
            previous = table.get(item.name)
            if previous is not None:
                self.diagnostics.append(error(
                    "E0107", item.name_span, f"`{item.name}` is defined twice",
                    "rename one of the definitions", labels=(Label(previous.name_span, "first defined here"),)))
                continue
            table[item.name] = item

    def _imports(self, scope: ModuleScope) -> None:
        for item in scope.module.items:
            if not isinstance(item, ast.Import):
                continue
            imported = self._import(scope, item)
            if imported is None:
                scope.failed_imports.add(item.alias or "")
                continue
            if item.alias:
                if item.alias in scope.namespaces or item.alias in scope.definitions:
                    self.diagnostics.append(error("E0107", item.span, f"`{item.alias}` is defined twice",
                                                  "import it under another name with `as`"))
                scope.namespaces[item.alias] = imported
            else:
                scope.unqualified.append(imported)

    def _import(self, scope: ModuleScope, item: ast.Import) -> ModuleScope | None:
        if item.module is not None:
            return self._import_stdlib(item)
        return self._import_file(scope, item)

    def _import_stdlib(self, item: ast.Import) -> ModuleScope | None:
        parts = item.module.split(".")
        available = stdlib_modules()
        name = ".".join(parts[1:])
        if parts[0] != "stdlib" or name not in available:
            guess = did_you_mean(name or item.module, available)
            hint = f"did you mean `import stdlib.{guess}`?" if guess else (
                "the standard library has " + ", ".join(f"stdlib.{m}" for m in available))
            if parts[0] != "stdlib":
                # `import blocks` or `import std.blocks` most likely meant the stdlib module.
                guess = did_you_mean(name or item.module, available)
                hint = f"did you mean `import stdlib.{guess}`?" if guess else (
                    f'files are imported by path: `import "{parts[-1]}.mdl" as {parts[-1]}`')
            self.diagnostics.append(error("E0112", item.span, f"unknown module `{item.module}`", hint))
            return None
        key = f"<stdlib>/{name}"
        if key in self.loaded:
            return self.loaded[key]
        resource = resources.files("mdl.stdlib").joinpath(*parts[1:-1], parts[-1] + ".mdl")
        text = resource.read_text(encoding="utf-8")
        return self._load_nested(text, f"stdlib/{name.replace('.', '/')}.mdl", key, item)

    def _import_file(self, scope: ModuleScope, item: ast.Import) -> ModuleScope | None:
        base = Path(scope.path).parent if scope.path else Path.cwd()
        try:
            target = (base / item.path).resolve()
        except (OSError, ValueError):  # a NUL byte or a lone surrogate: no file has that name
            self.diagnostics.append(error("E0110", item.span, f"cannot find {_quoted(item.path)}",
                                          "the path contains a character no file name can have"))
            return None
        key = str(target)
        if key in self.loading:
            chain = " -> ".join(Path(k).name for k in self.loading[self.loading.index(key):])
            self.diagnostics.append(error("E0111", item.span, f"import cycle: {chain} -> {target.name}",
                                          "move the shared blocks into a third file that both import"))
            return self.loaded[key]  # its definitions are known: uses of them are not errors too
        if key in self.loaded:
            return self.loaded[key]
        try:
            if target.exists() and not target.is_file():
                # A directory, a device such as /dev/zero or a pipe: reading it fails, never ends or blocks.
                self.diagnostics.append(error("E0110", item.span, f'"{item.path}" is not a file',
                                              "import a `.mdl` file"))
                return None
            text = self.overlay[key] if key in self.overlay else target.read_text(encoding="utf-8")
        except FileNotFoundError:
            near = [p.name for p in target.parent.glob("*.mdl")] if target.parent.is_dir() else []
            guess = did_you_mean(target.name, near)
            near_path = str(PurePosixPath(item.path).with_name(guess)) if guess else None  # as the import writes it
            self.diagnostics.append(error("E0110", item.span, f'cannot find "{item.path}"',
                                          f'did you mean "{near_path}"?' if guess else f"looked for {target}"))
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self.diagnostics.append(error("E0110", item.span, f'cannot read "{item.path}": {exc}',
                                          "import a readable UTF-8 `.mdl` file"))
            return None
        return self._load_nested(text, _display_path(target), key, item)

    def _load_nested(self, text: str, path: str, key: str, item: ast.Import) -> ModuleScope | None:
        before = len(self.diagnostics)
        scope = self._load(text, path, key)
        if any(d.is_error for d in self.diagnostics[before:]):
            self.diagnostics.append(error("E0113", item.span, "the imported file has errors",
                                          "fix the errors reported in that file"))
        return scope


def _quoted(path: str) -> str:
    """`path` in double quotes, with characters that cannot be printed escaped."""
    return '"' + path.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00") + '"'


def _display_path(target: Path) -> str:
    try:
        return str(target.relative_to(Path.cwd()))
    except ValueError:
        return str(target)
