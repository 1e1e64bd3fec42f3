"""The mdl language server: a thin pygls 2 layer over the compiler's front end.

`build_server()` makes the server; `mdlc lsp` and `python -m mdl.lsp` run it on stdio. Every feature
reads one `Snapshot` per document version: the text, the version and the front end's `Analysis` of it
(diagnostics, scope, graphs, experiments: the same as `mdlc check`). `MdlServer.snapshot(uri)` analyses
the document's current text on demand and caches the result by version, so a request never sees an
analysis of an older text than the one it was asked about.

Feature groups live one module each (`FEATURES`); each has `register(server)` adding its handlers with
`@server.feature(...)`. This module owns the document lifecycle: diagnostics are published on open,
change and save (`mdl.lsp.diagnostics`), only for the version they were computed from, and a change to
a file re-checks the open documents that import it.

Positions: spans are 0-based character offsets into the text (`Span.start`/`Span.end`); `to_range`
and `to_offset` convert through the document's position codec, so UTF-16 clients (VS Code) and
UTF-8/32 ones get the right columns on lines with non-ASCII text.
"""

from __future__ import annotations

import gc
import importlib
import inspect
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path

from lsprotocol import types
from pygls.exceptions import FeatureRequestError
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument

from mdl import __version__
from mdl.compiler.check import Analysis, analyze
from mdl.compiler.nameindex import Index, document_key
from mdl.compiler.resolve import ModuleScope
from mdl.dsl.ast import Span

logger = logging.getLogger(__name__)

# Feature modules under mdl.lsp, each with `register(server: MdlServer) -> None`.
FEATURES = ("diagnostics", "editing", "hover", "inlay_hints", "completion", "navigation", "symbols")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One version of one document and what the front end says about it."""

    uri: str
    version: int | None
    text: str
    path: str | None  # file-system path, when the URI is a file
    analysis: Analysis
    document: TextDocument  # the pygls document (position codec, lines) at the time of the snapshot

    def to_range(self, span: Span) -> types.Range:
        """The LSP range of a span of this document (clamped to the text)."""
        end = min(max(span.end, span.start), len(self.text))
        start = min(span.start, end)
        return types.Range(self.document.client_position_at_offset(start),
                           self.document.client_position_at_offset(end))

    def names(self) -> Index:
        """The compiler's name index of this document (built on first use, kept on the analysis)."""
        return self.analysis.name_index(self.text, document_key(self.path, self.uri))

    def to_offset(self, position: types.Position) -> int:
        """The character offset of an LSP position (clamped to the text)."""
        return min(max(self.document.offset_at_position(position), 0), len(self.text))


class MdlServer(LanguageServer):
    """pygls' server plus the per-version analysis cache every feature reads."""

    def __init__(self) -> None:
        # Incremental is pygls 2's default; said here because the edit-storm test and the latency
        # benchmark rely on it (a change carries only the edited range, not the whole text).
        super().__init__("mdl", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self._snapshots: dict[str, Snapshot] = {}
        self.published: dict[str, int | None] = {}  # uri -> the version of its last published diagnostics

    def snapshot(self, uri: str) -> Snapshot:
        """The analysis of the document's current text (cached per version).

        Imports of files that are open in the editor read the editor's text (unsaved changes included),
        not the file on disk; a change to such a file `forget`s the snapshots of its importers.
        """
        document = self.workspace.get_text_document(uri)
        cached = self._snapshots.get(uri)
        if cached is not None and cached.version == document.version and cached.text == document.source:
            return cached
        text = document.source
        path = to_fs_path(uri) if uri.startswith("file:") else None
        snapshot = Snapshot(uri, document.version, text, path, analyze(text, path, self.open_buffers(uri)),
                            document)
        self._snapshots[uri] = snapshot
        return snapshot

    def open_buffers(self, but: str | None = None) -> dict[str, str]:
        """Resolved file path -> editor text of every open file document (except `but`)."""
        buffers: dict[str, str] = {}
        for uri, document in list(self.workspace.text_documents.items()):
            if uri != but and uri.startswith("file:"):
                try:
                    buffers[str(Path(to_fs_path(uri)).resolve())] = document.source
                except (OSError, ValueError, TypeError):
                    continue
        return buffers

    def forget(self, uri: str) -> None:
        self._snapshots.pop(uri, None)

    def report_server_error(self, error: Exception, source) -> None:
        """An exception in a handler: logged to the client's output, never a pop-up, never fatal.

        (pygls' default shows a message box for every failed notification; a bug in one feature
        must not interrupt typing.) Failed requests already answer with an error response.
        """
        if source is FeatureRequestError:
            return
        self.log(f"mdl language server: internal error: {error}", types.MessageType.Error)

    def log(self, message: str, kind: types.MessageType = types.MessageType.Log) -> None:
        """`window/logMessage` (the editor's output panel); never raises."""
        try:
            self.window_log_message(types.LogMessageParams(type=kind, message=message))
        except Exception:  # the transport is gone; nothing left to tell
            logger.exception("could not log to the client: %s", message)

    def guarded(self, handler: Callable) -> Callable:
        """`handler` (plain or async) with any exception logged, traceback and all, instead of raised."""
        def failed() -> None:
            self.log(f"mdl language server: {handler.__name__} failed:\n{traceback.format_exc()}",
                     types.MessageType.Error)

        if inspect.iscoroutinefunction(handler):
            @wraps(handler)
            async def run_async(*args, **kwargs):
                try:
                    return await handler(*args, **kwargs)
                except Exception:  # keep answering whatever a feature does
                    failed()
                    return None
            return run_async

        @wraps(handler)
        def run(*args, **kwargs):
            try:
                return handler(*args, **kwargs)
            except Exception:  # keep answering whatever a feature does
                failed()
                return None
        return run

    def open_importers(self, path: str) -> list[str]:
        """The URIs of open documents whose analysis read the file at `path` (an import)."""
        target = Path(path).resolve()
        return [uri for uri, snapshot in list(self._snapshots.items())
                if snapshot.path is not None and Path(snapshot.path).resolve() != target
                and target in imported_files(snapshot.analysis.scope)]


def imported_files(scope: ModuleScope | None) -> set[Path]:
    """Every file a scope's imports read, directly or through other imports (stdlib modules included)."""
    seen: set[Path] = set()
    stack = [*scope.namespaces.values(), *scope.unqualified] if scope is not None else []
    while stack:
        current = stack.pop()
        if current.path is None or Path(current.path).resolve() in seen:
            continue
        seen.add(Path(current.path).resolve())
        stack.extend([*current.namespaces.values(), *current.unqualified])
    return seen


def build_server() -> MdlServer:
    """A fresh server with every feature group registered."""
    server = MdlServer()
    for name in FEATURES:
        try:
            importlib.import_module(f"mdl.lsp.{name}").register(server)
        except Exception:  # one broken feature group must not take the others down
            logger.exception("the %s feature group failed to load", name)
    return server


def main() -> int:
    """Run the server on stdio until the client exits."""
    server = build_server()
    # An analysis allocates ~10^5 short-lived objects; with CPython's default thresholds the cyclic GC
    # runs dozens of young collections per edit and rescans the server's own long-lived objects
    # (frozen here, after start-up). Fewer, larger young generations cut the time to publish.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    server.start_io()
    return 0


__all__ = ["FEATURES", "MdlServer", "Snapshot", "build_server", "imported_files", "main"]
