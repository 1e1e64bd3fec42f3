"""`mdlc viz`: pictures of every example and template from the graph IR, without a system Graphviz."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from mdl.compiler.api import select_model
from mdl.compiler.check import analyze
from mdl.compiler.viz_draw import picture

ROOT = Path(__file__).resolve().parent.parent
DESIGNS = sorted(glob.glob(str(ROOT / "examples" / "*.mdl")) + glob.glob(str(ROOT / "mdl" / "stdlib" / "templates" / "*.mdl")))
SVG = "{http://www.w3.org/2000/svg}"


def _graph(path: str):
    graph, _ = select_model(analyze(Path(path).read_text(), path), None, path)
    return graph


@pytest.mark.parametrize("path", DESIGNS, ids=lambda p: Path(p).name)
def test_the_svg_has_one_node_per_ir_node_with_its_params(path):
    graph = _graph(path)
    root = ET.fromstring(picture(graph, "svg"))
    nodes = [g for g in root.iter(SVG + "g") if g.get("class") == "node"]
    assert [g.get("data-name") for g in nodes] == [n.name for n in graph.nodes]
    assert [int(g.get("data-params")) for g in nodes] == [n.params for n in graph.nodes]
    for g, node in zip(nodes, graph.nodes, strict=True):
        texts = [t.text for t in g.iter(SVG + "text")]
        if node.params:
            assert f"{node.params:,} params" in texts
    boxes = {g.get("data-path"): int(g.get("data-params")) for g in root.iter(SVG + "g") if g.get("class") == "box"}
    for call in graph.calls:
        assert boxes[call.path] == sum(n.params for n in graph.nodes_in(call.path))


def test_collapsed_blocks_keep_the_total_and_cover_every_node():
    graph = _graph(str(ROOT / "examples" / "moe_2048.mdl"))
    root = ET.fromstring(picture(graph, "svg", depth=0))
    nodes = [g for g in root.iter(SVG + "g") if g.get("class") == "node"]
    assert sum(int(g.get("data-params")) for g in nodes) == graph.params
    assert sum(int(g.get("data-nodes")) for g in nodes) == len(graph.nodes)
    assert [g.get("data-name") for g in nodes if g.get("data-kind") == "collapsed"] == ["layers"]


def test_mdlc_viz_writes_all_three_formats_without_graphviz(tmp_path):
    bin_dir = tmp_path / "bin"  # a PATH holding only this Python: no `dot` can be found
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bin_dir)}
    assert shutil.which("dot", path=env["PATH"]) is None
    design = str(ROOT / "examples" / "moe_2048.mdl")
    for name in ("g.svg", "g.png", "g.dot"):
        done = subprocess.run([str(bin_dir / "python"), "-m", "mdl.cli", "viz", design, "-o", str(tmp_path / name)],
                              env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "g.png").size[0] > 100
    assert (tmp_path / "g.dot").read_text().count("subgraph") == 3  # the repeat and its two blocks


def test_viz_of_a_design_with_errors_is_a_diagnostic_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.mdl"
    bad.write_text("model M {\n    input x: float[B, 4]\n    output policy = x -> linear(out=nope)\n}\n")
    done = subprocess.run([sys.executable, "-m", "mdl.cli", "viz", str(bad), "-o", str(tmp_path / "g.svg")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "error[" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "g.svg").exists()
