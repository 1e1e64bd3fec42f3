"""The compiler's public face: compile a design to its checked IR, its figures and its torch module.

Compiling imports no torch: `CompiledModel.module` lowers the IR (mdl.compiler.lower) the first time
it is asked for, so `mdlc check`, `mdlc compile --json` and the language server stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mdl.compiler import cost
from mdl.compiler.check import Analysis, analyze
from mdl.compiler.elaborate import Elaborator
from mdl.compiler.ir import Graph
from mdl.compiler.ir import ir_architecture_hash as ir_architecture_hash  # the public name exports use
from mdl.dsl import ast
from mdl.dsl.diagnostics import CompileError, Diagnostic, error


@dataclass
class CompiledModel:
    """A checked model: its IR and the figures read from it."""

    name: str
    ir: Graph
    source: str
    path: str | None
    diagnostics: list[Diagnostic] = field(default_factory=list)  # warnings (errors raise)
    _module: Any = field(default=None, repr=False)

    @property
    def module(self):
        """The `torch.fx.GraphModule` (fresh weights), lowered and verified on first use.

        Its forward takes the inputs in declaration order and returns a dict of the outputs by name.
        Raises CompileError (internal errors E0901/E0902, at the span concerned) if lowering fails.
        """
        if self._module is None:
            from mdl.compiler.lower import lower, verify

            module = lower(self.ir)
            problems = verify(module, self.ir)
            if problems:
                raise CompileError(problems)
            self._module = module
        return self._module

    @property
    def architecture_hash(self) -> str:
        """sha256 of the architecture: every node's name, op, inputs, attributes and type, and the
        input and output names. Spans, comments, formatting and the model's name do not enter it."""
        return self.ir.architecture_hash()

    @property
    def params(self) -> int:
        return self.ir.params

    @property
    def flops(self) -> int | None:
        """Forward FLOPs per sample (see mdl.compiler.cost for the convention)."""
        return cost.total_flops(self.ir)

    def memory(self, batch: int = 1) -> cost.Memory:
        return cost.memory(self.ir, batch)

    @property
    def inputs(self) -> dict[str, list]:
        return {k: list(t.shape) for k, t in self.ir.input_types().items()}

    @property
    def outputs(self) -> dict[str, list]:
        return {k: list(t.shape) for k, t in self.ir.output_types().items()}

    def summary(self, batch: int = 1) -> dict:
        """The `mdlc compile --json` object."""
        mem = self.memory(batch)
        return {
            "model": self.name,
            "params": self.params,
            "flops": self.flops,
            "memory_bytes": mem.training,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "args": self.ir.args,
            "memory": mem.to_json(),
            "blocks": [{"path": b.path, "block": b.block, "params": b.params, "flops": b.flops, "line": b.line}
                       for b in cost.block_costs(self.ir)],
        }


def architecture_hash(graph: Graph) -> str:
    """The graph's architecture hash (`Graph.architecture_hash`; kept here as the public name)."""
    return graph.architecture_hash()


def select_model(analysis: Analysis, model: str | None, path: str | None) -> tuple[Graph | None, list[Diagnostic]]:
    """The graph to compile: `model` by name, else the file's only model, else its first experiment's."""
    scope = analysis.scope
    where = ast.Span(path, 1, 1, 1, 1)
    if scope is None:
        return None, []
    models = {n: d for n, d in scope.definitions.items() if isinstance(d, ast.Model)}
    if model is None:
        if len(models) == 1:
            model = next(iter(models))
        elif analysis.experiments:
            spec = next(iter(analysis.experiments.values()))
            return spec.graph, []
        elif models:
            names = ", ".join(models)
            return None, [error("E0402", where, f"the file defines several models ({names})",
                                "choose one with --model NAME")]
        else:
            return None, [error("E0402", where, "the file defines no model", "add `model NAME { ... }`")]
    if model in analysis.graphs:
        return analysis.graphs[model], []
    if model not in models:
        from mdl.dsl.diagnostics import did_you_mean

        guess = did_you_mean(model, models)
        return None, [error("E0402", where, f"no model named `{model}`",
                            f"did you mean `{guess}`?" if guess else "models here: " + (", ".join(models) or "none"))]
    definition = models[model]
    # A model with required parameters: compile it as its first experiment configures it.
    for spec in analysis.experiments.values():
        if spec.model == model and spec.graph is not None:
            return spec.graph, []
    diagnostics: list[Diagnostic] = []
    graph = Elaborator(diagnostics).model(definition, scope, {})
    return graph, diagnostics


def compile_source(text: str, model: str | None = None, path: str | None = None) -> CompiledModel:
    """Check `text` and return the chosen model's CompiledModel; raises CompileError on errors."""
    analysis = analyze(text, path)
    if not analysis.ok:
        raise CompileError(analysis.diagnostics)
    graph, extra = select_model(analysis, model, path)
    if graph is None or any(d.is_error for d in extra):
        raise CompileError(extra or analysis.diagnostics)
    return CompiledModel(graph.model, graph, text, path, [*analysis.diagnostics, *extra])


def instantiate(analysis: Analysis, model: str, args: dict[str, Any], source: str, path: str | None = None,
                ) -> CompiledModel:
    """Model `model` of a checked `analysis` (of `source`) built with compile-time `args` (defaults fill
    the rest), checked as a sweep point is; raises CompileError when the checker rejects them (a width
    the heads do not divide, an unknown parameter, ...). `mdl.testing.strategies.variants` draws with it."""
    if not analysis.ok:
        raise CompileError(analysis.diagnostics)
    definition = analysis.scope.definitions.get(model) if analysis.scope is not None else None
    if not isinstance(definition, ast.Model):
        graph, extra = select_model(analysis, model, path)  # the E0402 "no model named" diagnostic
        raise CompileError(extra)
    diagnostics: list[Diagnostic] = []
    graph = Elaborator(diagnostics).model(definition, analysis.scope, dict(args))
    if graph is None or any(d.is_error for d in diagnostics):
        raise CompileError(diagnostics or [error("E0402", definition.span, f"model `{model}` does not build",
                                                 "check its arguments")])
    return CompiledModel(graph.model, graph, source, path, diagnostics)


def compile_file(path: str | Path, model: str | None = None) -> CompiledModel:
    path = str(path)
    return compile_source(Path(path).read_text(encoding="utf-8"), model, path)
