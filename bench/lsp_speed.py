"""How long after an edit does the editor see its diagnostics? The budget is 100 ms (the issue).

Starts the real language server (`python -m mdl.lsp`) as a separate process talking LSP over stdio to
a pygls client, opens bench/check_speed.py's generated 1,000-line design (the same seeded text), and
times N edits: each a one-character incremental `didChange` (alternately typing and deleting a
character in a comment, so every version is a clean design and the whole file is re-checked), from
the moment the notification is written until the `publishDiagnostics` for that version arrives.
Reports the best and median latency, the server's CPU time per edit (from /proc, Linux; other work
on a shared machine does not inflate it), and, as a reference, `mdl.analyze` of the same text in this
process: the difference is the server's own cost (JSON-RPC, incremental sync, the 5 ms settle of a
change, converting the diagnostics).

Exits 1 when the median latency (`--cpu-time`: the median server CPU per edit) is over budget.

    python bench/lsp_speed.py [--edits 30] [--lines 1000] [--budget-ms 100] [--cpu-time]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_speed import generate_mdl  # the same generated design as check_speed.py

ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of process `pid` (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


async def measure(source: str, path: Path, edits: int) -> dict:
    client = LanguageClient("mdl-bench", "1")
    arrived: dict[int | None, float] = {}
    published: dict[int | None, list[types.Diagnostic]] = {}
    waiting: dict[int, asyncio.Future] = {}

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_publish(params: types.PublishDiagnosticsParams) -> None:
        arrived[params.version] = time.perf_counter()
        published[params.version] = list(params.diagnostics)
        future = waiting.pop(params.version, None)
        if future is not None and not future.done():
            future.set_result(None)

    async def until_published(version: int) -> None:
        if version not in arrived:
            waiting[version] = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(waiting[version], 60)

    await client.start_io(sys.executable, "-m", "mdl.lsp", cwd=str(ROOT))
    pid = client._server.pid  # the server process, for its CPU time
    await client.initialize_async(types.InitializeParams(
        capabilities=types.ClientCapabilities(), root_uri=path.parent.as_uri()))
    client.initialized(types.InitializedParams())
    uri = path.as_uri()
    started = time.perf_counter()
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
        uri=uri, language_id="mdl", version=1, text=source)))
    await until_published(1)
    first = arrived[1] - started
    errors = [d for d in published[1] if d.severity == types.DiagnosticSeverity.Error]

    # the first line is a comment: type a character at its end, then delete it, and so on
    end = len(source.split("\n", 1)[0])
    latencies, cpu = [], []
    for version in range(2, edits + 2):
        typing = version % 2 == 0
        change = types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(0, end), types.Position(0, end + (0 if typing else 1))),
            text="x" if typing else "")
        cpu_before = cpu_seconds(pid)
        sent = time.perf_counter()
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(uri=uri, version=version), [change]))
        await until_published(version)
        latencies.append(arrived[version] - sent)
        cpu_after = cpu_seconds(pid)
        if cpu_before is not None and cpu_after is not None:
            cpu.append(cpu_after - cpu_before)
        await asyncio.sleep(0.02)  # an editor's pause between keystrokes; not timed

    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return {"first": first, "latencies": latencies, "cpu": cpu, "errors": errors}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=30, help="timed edits (default 30)")
    parser.add_argument("--lines", type=int, default=1000, help="lines in the generated design (default 1000)")
    parser.add_argument("--budget-ms", type=float, default=100.0, help="budget for the median (default 100)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="judge the budget on the server's median CPU time per edit (a shared machine)")
    args = parser.parse_args(argv)

    source = generate_mdl(args.lines)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "generated.mdl"
        path.write_text(source, encoding="utf-8")
        result = asyncio.run(measure(source, path, args.edits))
        import mdl

        mdl.analyze(source, str(path))  # warm-up
        checks = []
        for _ in range(min(args.edits, 10)):
            start = time.perf_counter()
            mdl.analyze(source, str(path))
            checks.append(time.perf_counter() - start)
    if result["errors"]:
        for d in result["errors"][:5]:
            print(f"line {d.range.start.line + 1}: {d.code} {d.message}", file=sys.stderr)
        print("the generated design has errors; the figures would not mean anything", file=sys.stderr)
        return 2

    latencies, cpu = result["latencies"], result["cpu"]
    print(f"generated design: {args.lines} lines, {len(source):,} chars; server `python -m mdl.lsp` over stdio; "
          f"python {sys.version.split()[0]}")
    print(f"open -> first diagnostics (server start-up not included, parser tables built): "
          f"{ms(result['first']).strip()}")
    print()
    print(f"{'':40}{'best':>11}{'median':>11}")
    print(f"{'didChange -> publishDiagnostics':40}{ms(min(latencies)):>11}{ms(statistics.median(latencies)):>11}")
    if cpu:
        print(f"{'server CPU per edit':40}{ms(min(cpu)):>11}{ms(statistics.median(cpu)):>11}")
    print(f"{'mdl.analyze alone (this process)':40}{ms(min(checks)):>11}{ms(statistics.median(checks)):>11}")
    print()
    judged = statistics.median(cpu) if args.cpu_time and cpu else statistics.median(latencies)
    budget = args.budget_ms / 1000
    verdict = "within budget" if judged <= budget else "OVER BUDGET"
    print(f"budget: median {'server CPU time' if args.cpu_time and cpu else 'latency'} of {len(latencies)} edits "
          f"<= {args.budget_ms:.0f} ms; measured {judged * 1000:.1f} ms = {judged / budget:.2f}x the budget "
          f"({verdict})")
    print(f"the server's own cost (median latency - median analyze): "
          f"{(statistics.median(latencies) - statistics.median(checks)) * 1000:.1f} ms")
    return 0 if judged <= budget else 1


if __name__ == "__main__":
    sys.exit(main())
