"""Experiments: check each key, resolve the model and the environment, and check one against the other.

The environment's kinds and their spaces are registry entries (mdl.compiler.envs: `game2048`'s
int[4, 4] boards and 4 actions, gymnasium's registry for `gym("Id")`). The result, `ExperimentSpec`,
holds every resolved setting the runtime needs.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mdl.compiler.args import MAX_SIZE, Arg, ArgError, coerce, type_name
from mdl.compiler.elaborate import Elaborator
from mdl.compiler.envs import ENV_KINDS, EnvKind
from mdl.compiler.ir import Graph, TensorType
from mdl.compiler.resolve import ModuleScope
from mdl.compiler.search import Range, Search, grid_points
from mdl.compiler.search_check import check_limits, check_range, check_search, check_search_space
from mdl.compiler.values import UNKNOWN, CallValue, Frame, QuantityValue, Symbol, Tensor
from mdl.dsl import ast
from mdl.dsl.ast import Span
from mdl.dsl.diagnostics import Edit, Fix, did_you_mean

PPO_ARGS: tuple[Arg, ...] = (
    Arg("lr", "float", 2.5e-4, low=0, low_open=True, high=1, doc="Adam learning rate, annealed linearly to 0"),
    Arg("gamma", "float", 0.99, low=0, high=1, doc="discount factor"),
    Arg("gae_lambda", "float", 0.95, low=0, high=1, doc="GAE lambda"),
    Arg("clip", "float", 0.2, low=0, low_open=True, high=1, doc="PPO surrogate clipping range"),
    Arg("epochs", "int", 4, low=1, high=1000, doc="passes over each rollout"),
    Arg("minibatches", "int", 4, low=1, high=MAX_SIZE, doc="minibatches per epoch"),
    Arg("rollout", "int", 128, low=1, high=MAX_SIZE, doc="steps per environment per update"),
    Arg("ent_coef", "float", 0.01, low=0, high=10, doc="entropy bonus coefficient"),
    Arg("vf_coef", "float", 0.5, low=0, high=100, doc="value loss coefficient"),
    Arg("max_grad_norm", "float", 0.5, low=0, low_open=True, high=1e6, doc="global gradient-norm clip"),
    # The switches (LANGUAGE.md's `algo` row); `mdl.runtime.ppo.PPOConfig` documents each default.
    Arg("orthogonal_init", "bool", None, optional=True,
        doc="orthogonal initialisation (hidden gain sqrt(2), policy head 0.01, value head 1, biases 0); "
            "none: on for gym environments, off for game2048"),
    Arg("anneal_lr", "bool", True, doc="lr falls linearly to 0 over the run"),
    Arg("norm_adv", "bool", True, doc="normalise advantages within each minibatch"),
    Arg("norm_obs", "bool", False,
        doc="normalise observations by their running mean and std (clipped to ±10); the statistics are "
            "saved in checkpoints, frozen in eval and carried into every export"),
    Arg("norm_reward", "bool", True, doc="divide rewards by the running std of the discounted return"),
    Arg("clip_vloss", "bool", False, doc="clip the value update around the rollout's values by `clip`"),
    Arg("target_kl", "float", None, low=0, low_open=True, high=100, optional=True,
        doc="stop an update's remaining epochs once approx_kl exceeds this (none: never)"),
    Arg("adam_eps", "float", 1e-5, low=0, low_open=True, high=1, doc="Adam epsilon"),
)
KEYS = ("model", "env", "algo", "budget", "seeds", "checkpoint", "export", "device", "sweep", "search", "limits")
SECTIONS = ("sweep", "limits")
EXPORT_FORMATS = ("onnx", "pt", "py", "json")
DEVICES = ("auto", "cpu", "cuda")
STEP_UNITS = {"steps": 1, "step": 1}
TIME_UNITS = {"s": 1, "sec": 1, "min": 60, "h": 3600}
MAX_SWEEP_POINTS = 256


@dataclass(frozen=True, slots=True)
class EnvSpec:
    kind: str  # a name in mdl.compiler.envs.ENV_KINDS
    id: str
    envs: int
    observation: TensorType  # without the batch dim
    actions: int

    @property
    def definition(self) -> EnvKind:
        """The registry entry of this env's kind (its entry point, metrics and defaults)."""
        return ENV_KINDS[self.kind]


@dataclass(slots=True)
class ExperimentSpec:
    name: str
    model: str
    model_args: dict[str, Any]
    graph: Graph | None
    env: EnvSpec | None
    algo: dict[str, Any] = field(default_factory=lambda: {a.name: a.default for a in PPO_ARGS})
    budget_steps: int | None = None
    budget_seconds: float | None = None
    seeds: tuple[int, ...] = (1,)
    sweep: dict[str, tuple | Range] = field(default_factory=dict)  # "model.experts" / "algo.lr" -> values
    search: Search = field(default_factory=Search)
    limits: dict[str, float] = field(default_factory=dict)  # "params" -> 600_000.0 (LANGUAGE.md `limits`)
    checkpoint_every: int | None = None
    checkpoint_keep: int = 3
    export: tuple[str, ...] = ()
    device: str = "auto"
    point: dict[str, Any] = field(default_factory=dict)  # the sweep point this spec is at (`at`); {} = none
    # Every sweep point's model graph, by `args_key(model_args)` (elaborated while checking the sweep).
    point_graphs: dict[tuple, Graph] = field(default_factory=dict, repr=False)
    # Builds the model at arguments the checker did not (a sampled `int_uniform`): (graph or None, the
    # first error's message or None). Set by the checker; not part of the spec's value.
    elaborate: Callable[[dict[str, Any]], tuple[Graph | None, str | None]] | None = field(
        default=None, repr=False, compare=False)
    invalid: str | None = None  # at a point whose model does not build: the checker's first error
    cost_cache: dict = field(default_factory=dict, repr=False, compare=False)  # mdl.compiler.search.point_costs

    def points(self) -> list[dict[str, Any]]:
        """The sweep's grid, one dict ("model.experts" -> 8, "algo.lr" -> 1e-4) per point, the first key
        varying slowest (the order keys are written in); `[{}]` without a sweep. Sampled searches draw
        their points instead (mdl.runtime.plan)."""
        return grid_points(self.sweep)

    def at(self, point: dict[str, Any]) -> ExperimentSpec:
        """This experiment at one sweep point: its PPO settings and model arguments replaced by the
        point's values, and the model graph the checker built for them."""
        algo, model_args = dict(self.algo), dict(self.model_args)
        for key, value in point.items():
            target, name = key.split(".", 1)
            (algo if target == "algo" else model_args)[name] = value
        graph, invalid = self.graph, None
        if not _same_args(model_args, self.model_args):
            key = args_key(model_args)
            if key in self.point_graphs:
                graph = self.point_graphs[key]
            elif self.elaborate is not None:
                graph, invalid = self.elaborate(model_args)
                if graph is not None:
                    self.point_graphs[key] = graph
        return dataclasses.replace(self, algo=algo, model_args=model_args, graph=graph, point=dict(point),
                                   invalid=invalid)


class ExperimentChecker:
    def __init__(self, elaborator: Elaborator, scope: ModuleScope):
        self.el = elaborator
        self.scope = scope

    def err(self, code: str, span: Span, message: str, help: str | None = None, fix: Fix | None = None) -> None:
        """Report an error; returns None, which `check` reads as "this setting could not be resolved"."""
        self.el.err(None, code, span, message, help, fix=fix)

    def check(self, exp: ast.Experiment) -> ExperimentSpec | None:
        errors_before = sum(d.is_error for d in self.el.diagnostics)
        entries: dict[str, ast.Entry] = {}
        sections: dict[str, ast.Section] = {}
        for e in exp.entries:
            if isinstance(e, ast.Section):
                if e.kind in sections:
                    self.err("E0401", e.span, f"`{e.kind}` is given twice", f"put all its keys in one `{e.kind} {{ }}`")
                else:
                    sections[e.kind] = e
                continue
            if e.key not in KEYS or e.key in SECTIONS:
                guess = did_you_mean(e.key, KEYS)
                fix = Fix(f"change to `{guess}`", (Edit(e.key_span, guess),)) if guess else None
                self.err("E0401", e.key_span, f"unknown experiment key `{e.key}`",
                         f"did you mean `{guess}`?" if guess else "keys are " + ", ".join(KEYS), fix)
                continue
            if e.key in entries:
                self.err("E0401", e.key_span, f"`{e.key}` is given twice", "remove one of them")
                continue
            entries[e.key] = e
        frame = Frame(self.scope)
        values = {k: self.value(e.value, frame) if k != "model" else None for k, e in entries.items()}
        spec = ExperimentSpec(exp.name, "", {}, None, None)
        if "model" not in entries:
            self.err("E0402", exp.name_span, f"experiment `{exp.name}` has no model", "add `model = MyModel()`")
            return None
        if "env" not in entries:
            self.err("E0402", exp.name_span, f"experiment `{exp.name}` has no env", f"add `env = {next(iter(ENV_KINDS.values())).example}`")
        else:
            spec.env = self._env(values["env"], entries["env"])
        if "algo" in entries:
            spec.algo = self._algo(values["algo"], entries["algo"]) or spec.algo
        self._budget(spec, values, entries)
        self._seeds(spec, values, entries)
        self._checkpoint(spec, values, entries)
        self._export_device(spec, values, entries)
        spec.search = check_search(self, values.get("search"), entries.get("search"))
        spec.limits = check_limits(self, sections.get("limits"), frame)
        model = self._model_call(entries["model"], spec)
        if model is None:
            return spec
        graph = self.el.model(model, self.scope, spec.model_args, self._arg_spans(entries["model"]),
                              entries["model"].value.span)
        spec.graph = graph
        if graph is not None and spec.env is not None:
            self._against_env(graph, spec.env, entries["model"], entries["env"])
        sweep = sections.get("sweep")
        if sweep is not None:
            self._sweep(sweep, spec, model, entries["model"])
        spec.elaborate = self._elaborator(model, entries["model"], spec.env)
        self._norm_obs(spec, values.get("algo"), sweep)
        if sum(d.is_error for d in self.el.diagnostics) == errors_before:
            check_search_space(self, spec, sweep, sections.get("limits"), entries.get("search"))
        return spec

    def _elaborator(self, model: ast.Model, model_entry: ast.Entry, env: EnvSpec | None):
        """`ExperimentSpec.elaborate`: the model at new arguments, checked as a sweep point is, with
        diagnostics of its own (the analysis is finished by then)."""
        scope, spans = self.scope, self._arg_spans(model_entry)

        def build(args: dict[str, Any]) -> tuple[Graph | None, str | None]:
            diagnostics: list = []
            checker = ExperimentChecker(Elaborator(diagnostics), scope)
            graph = checker.el.model(model, scope, dict(args), spans, model_entry.value.span)
            if graph is not None and env is not None:
                checker._against_env(graph, env, model_entry, model_entry)
            errors = [d for d in diagnostics if d.is_error]
            if graph is None or errors:
                return None, f"{errors[0].code}: {errors[0].message}" if errors else "the model does not build"
            return graph, None

        return build

    def _norm_obs(self, spec: ExperimentSpec, algo: Any, sweep: ast.Section | None) -> None:
        """`norm_obs` standardises float features; on int observations (2048's tile exponents, which an
        embedding reads) it would feed the embedding fractions, so it is an error there."""
        if spec.env is None or spec.env.observation.dtype != "int":
            return
        span = None
        if spec.algo.get("norm_obs") and isinstance(algo, CallValue) and "norm_obs" in algo.keywords:
            span = algo.keywords["norm_obs"].span
        elif True in spec.sweep.get("algo.norm_obs", ()) and sweep is not None:
            span = next((e.span for e in sweep.entries if e.key.split(".")[-1] == "norm_obs"), sweep.span)
        if span is not None:
            env = spec.env.id if spec.env.definition.takes_id else spec.env.kind
            self.err("E0412", span, f"`norm_obs` needs float observations; `{env}` gives "
                     f"{spec.env.observation.dtype}{list(spec.env.observation.shape)}",
                     "remove `norm_obs=true`: int observations are categories (an embedding reads them), "
                     "not measurements to standardise")

    def value(self, expr: ast.Expr, frame: Frame) -> Any:
        """An experiment value: calls such as `ppo(lr=3e-4)` stay calls and bare words stay names."""
        if isinstance(expr, ast.Call):
            args = tuple(self.value(a, frame) for a in expr.args)
            kwargs = {k.name: self.value(k.value, frame) for k in expr.kwargs}
            return CallValue(expr.func, args, kwargs, expr.span, expr.func_span,
                             {k.name: k for k in expr.kwargs})
        if isinstance(expr, ast.List):
            return tuple(self.value(e, frame) for e in expr.items)
        return self.el.eval(expr, frame, symbols=True)

    # ----------------------------------------------------------------------------------- model
    def _model_call(self, entry: ast.Entry, spec: ExperimentSpec) -> ast.Model | None:
        value = entry.value
        call = value if isinstance(value, ast.Call) else (
            ast.Call(value.id, (), (), value.span, value.span) if isinstance(value, ast.Name) else None)
        if call is None:
            return self.err("E0402", value.span, "`model` must name a model",
                            "write `model = NAME(...)`, e.g. `model = Moe2048(d=128)`")
        found = self.scope.lookup(call.func)
        if found is None and self.scope.from_failed_import(call.func):
            return None  # the import that would define it is reported already
        if found is None or not isinstance(found[0], ast.Model):
            models = [n for n in self.scope.visible_names() if isinstance(self.scope.lookup(n)[0], ast.Model)]
            guess = did_you_mean(call.func, models)
            return self.err("E0402", call.func_span, f"unknown model `{call.func}`",
                            f"did you mean `{guess}`?" if guess else (
                                "models here: " + ", ".join(models) if models else "define one with `model NAME { ... }`"))
        if call.args:
            return self.err("E0106", call.args[0].span, "model arguments are passed by name",
                            "write `Model(name=value)`")
        frame = Frame(self.scope)
        spec.model = found[0].name
        spec.model_args = {k.name: self.el.eval(k.value, frame) for k in call.kwargs}
        if any(v is UNKNOWN for v in spec.model_args.values()):
            return None
        return found[0]

    @staticmethod
    def _arg_spans(entry: ast.Entry) -> dict[str, Span]:
        if isinstance(entry.value, ast.Call):
            return {k.name: k.value.span for k in entry.value.kwargs}
        return {}

    # ------------------------------------------------------------------------------------- env
    def _env(self, value: Any, entry: ast.Entry) -> EnvSpec | None:
        if value is UNKNOWN:
            return None
        if isinstance(value, Symbol):
            value = CallValue(value.name, (), {}, entry.value.span, entry.value.span, {})
        if not isinstance(value, CallValue) or value.func not in ENV_KINDS:
            name = value.func if isinstance(value, CallValue) else type_name(value)
            guess = did_you_mean(name, ENV_KINDS) if isinstance(value, CallValue) else None
            return self.err("E0403", entry.value.span, f"unknown environment `{name}`",
                            f"did you mean `{guess}`?" if guess else
                            "use " + " or ".join(f"`{k.example}`" for k in ENV_KINDS.values()))
        kind = ENV_KINDS[value.func]
        positional = list(value.args)
        args = self._call_args(value, kind.args, skip_positional=1 if kind.takes_id else 0)
        if args is None:
            return None
        if not kind.takes_id:
            if positional:
                return self.err("E0106", value.span, f"`{kind.name}` takes only `envs=N`", f"write `{kind.example}`")
            spaces = kind.resolve()
            assert not isinstance(spaces, str)
            return EnvSpec(kind.name, kind.id, args["envs"], *spaces)
        if len(positional) != 1 or not isinstance(positional[0], str):
            return self.err("E0106", value.span, f"`{kind.name}` needs an environment id string", f"`{kind.example}`")
        env_id = positional[0]
        ids = kind.ids() if kind.ids is not None else ()
        if env_id not in ids:
            guess = did_you_mean(env_id, ids)
            return self.err("E0404", entry.value.span, f'unknown gymnasium environment "{env_id}"',
                            f'did you mean "{guess}"?' if guess else "install the package that registers it")
        spaces = kind.resolve(env_id)
        if isinstance(spaces, str):
            return self.err("E0404", entry.value.span, spaces,
                            "use an installed environment with Box or Discrete observations and Discrete actions")
        return EnvSpec(kind.name, env_id, args["envs"], *spaces)

    def _call_args(self, value: CallValue, args: tuple[Arg, ...], skip_positional: int = 0) -> dict | None:
        ok = True
        if len(value.args) > skip_positional:
            self.err("E0106", value.span, f"`{value.func}` takes its settings by name",
                     f"write `{value.func}({args[0].name}=...)`" if args else None)
            ok = False
        kwargs = {k: (v, value.keywords[k]) for k, v in value.kwargs.items()}
        out = self.el.bind_args(value.func, args, kwargs, value.span, None, noun="setting")
        return out if ok else None

    def _algo(self, value: Any, entry: ast.Entry) -> dict | None:
        if value is UNKNOWN:
            return None
        if isinstance(value, Symbol):
            value = CallValue(value.name, (), {}, entry.value.span, entry.value.span, {})
        if not isinstance(value, CallValue) or value.func != "ppo":
            name = value.func if isinstance(value, CallValue) else type_name(value)
            return self.err("E0403", entry.value.span, f"unknown algorithm `{name}`", "use `ppo(...)`")
        return self._call_args(value, PPO_ARGS)

    # ------------------------------------------------------------------------- simple settings
    def _budget(self, spec: ExperimentSpec, values: dict, entries: dict) -> None:
        if "budget" not in entries:
            return
        v, span = values["budget"], entries["budget"].value.span
        if v is UNKNOWN:
            return
        if not isinstance(v, QuantityValue):
            self.err("E0409", span, "`budget` needs a unit", "write a step count like `2M steps` or a time like `10 min`")
            return
        if v.value <= 0:
            self.err("E0202", span, "`budget` must be positive", "for example `budget = 100k steps`")
        elif v.unit in STEP_UNITS:
            spec.budget_steps = int(v.value)
        elif v.unit in TIME_UNITS:
            spec.budget_seconds = float(v.value) * TIME_UNITS[v.unit]
        else:
            guess = did_you_mean(v.unit, [*STEP_UNITS, *TIME_UNITS])
            self.err("E0409", span, f"unknown unit `{v.unit}`",
                     f"did you mean `{guess}`?" if guess else "use steps, s, min or h")

    def _seeds(self, spec: ExperimentSpec, values: dict, entries: dict) -> None:
        if "seeds" not in entries:
            return
        v, span = values["seeds"], entries["seeds"].value.span
        if isinstance(v, int) and not isinstance(v, bool):
            v = (v,)
        if v is UNKNOWN:
            return
        if not isinstance(v, tuple) or not v or not all(isinstance(s, int) and not isinstance(s, bool)
                                                         and 0 <= s < 2**32 for s in v):
            self.err("E0202", span, "`seeds` must be a non-empty list of whole numbers from 0 to 2^32-1",
                     "for example `seeds = [1, 2, 3]`")
            return
        if len(set(v)) != len(v):
            self.el.warn("W0005", span, "`seeds` repeats a seed", "each seed runs once; remove the repeats")
        spec.seeds = tuple(dict.fromkeys(v))

    def _checkpoint(self, spec: ExperimentSpec, values: dict, entries: dict) -> None:
        if "checkpoint" not in entries:
            return
        v, span = values["checkpoint"], entries["checkpoint"].value.span
        if v is UNKNOWN:
            return
        every = v.args[0] if isinstance(v, CallValue) and v.func == "every" and len(v.args) == 1 else None
        if not isinstance(every, QuantityValue) or every.unit not in STEP_UNITS or every.value < 1:
            self.err("E0410", span, "`checkpoint` must be `every(N steps, keep=K)`",
                     "for example `checkpoint = every(100k steps, keep=3)`")
            return
        args = self._call_args(CallValue("every", (), v.kwargs, v.span, v.func_span, v.keywords),
                               (Arg("keep", "int", 3, low=1, high=10_000, doc="checkpoints kept"),))
        if args is not None:
            spec.checkpoint_every, spec.checkpoint_keep = int(every.value), args["keep"]

    def _export_device(self, spec: ExperimentSpec, values: dict, entries: dict) -> None:
        if "export" in entries and values["export"] is not UNKNOWN:
            v, span = values["export"], entries["export"].value.span
            items = v if isinstance(v, tuple) else (v,)
            formats = []
            for item in items:
                name = item.name if isinstance(item, Symbol) else item
                if name not in EXPORT_FORMATS:
                    guess = did_you_mean(str(name), EXPORT_FORMATS)
                    self.err("E0202", span, f"unknown export format `{name}`",
                             f"did you mean `{guess}`?" if guess else "formats: " + ", ".join(EXPORT_FORMATS))
                    break  # one error for the list; `device` below is still checked
                formats.append(name)
            else:
                spec.export = tuple(formats)
        if "device" in entries and values["device"] is not UNKNOWN:
            v = values["device"]
            name = v.name if isinstance(v, Symbol) else v
            if name not in DEVICES:
                self.err("E0202", entries["device"].value.span, f"unknown device `{name}`",
                         "use auto, cpu or cuda")
            else:
                spec.device = name

    # ---------------------------------------------------------------------- model vs environment
    def _against_env(self, graph: Graph, env: EnvSpec, model_entry: ast.Entry, env_entry: ast.Entry) -> None:
        span = model_entry.value.span
        obs = env.observation
        failed = self.el.failed  # an input or output whose statement failed is reported already
        if len(graph.inputs) != 1:
            if "<input>" in failed:
                return
            self.err("E0405", span, f"model `{graph.model}` has {len(graph.inputs)} inputs; "
                     f"the environment gives one observation {obs}", "declare exactly one `input` for the observation")
            return
        name, node_id = next(iter(graph.inputs.items()))
        t = graph.nodes[node_id].type
        want = f"{obs.dtype}[B{''.join(', ' + str(d) for d in obs.shape)}]"
        batch_ok = t.rank >= 1 and isinstance(t.shape[0], str)
        dims_ok = t.rank == obs.rank + 1 and all(
            not isinstance(a, int) or a == b for a, b in zip(t.shape[1:], obs.shape, strict=False))
        if not batch_ok or not dims_ok or t.dtype != obs.dtype:
            self.err("E0405", span, f"input `{name}: {t}` does not accept the observations of "
                     f"`{env.id}` ({obs.dtype}{list(obs.shape)})", f"declare `input {name}: {want}`")
        policy = graph.outputs.get("policy")
        if policy is not None:
            p = graph.nodes[policy].type
            if p.rank != 2 or p.shape[1] != env.actions or not isinstance(p.shape[0], str):
                self.err("E0406", graph.nodes[policy].span,
                         f"`policy` is {p}; `{env.id}` needs one logit per action: [B, {env.actions}]",
                         f"end the policy head with `linear(out={env.actions})`")
        value = graph.outputs.get("value")
        if value is None:
            if "value" in failed:
                return
            self.err("E0407", graph.span or span, f"model `{graph.model}` has no `value` output; PPO needs one",
                     "add `output value = h -> linear(out=1)`")
        else:
            v = graph.nodes[value].type
            if not (v.rank == 1 or (v.rank == 2 and v.shape[1] == 1)):
                self.err("E0407", graph.nodes[value].span, f"`value` must be [B, 1] or [B], got {v}",
                         "end the value head with `linear(out=1)`")

    # ------------------------------------------------------------------------------------ sweep
    def _sweep(self, sweep: ast.Section, spec: ExperimentSpec, model: ast.Model, model_entry: ast.Entry) -> None:
        model_params = {p.name for p in model.params}
        algo_keys = {a.name for a in PPO_ARGS}
        frame = Frame(self.scope)
        model_axes: dict[str, tuple] = {}
        swept: dict[str, str] = {}  # "model.experts" -> the key as written, to catch `experts` and `model.experts`
        for e in sweep.entries:
            key = e.key
            if key.startswith("model."):
                target, name = "model", key[6:]
            elif key.startswith("algo."):
                target, name = "algo", key[5:]
            elif key in model_params and key in algo_keys:
                self.err("E0411", e.key_span, f"sweep key `{key}` is both a model parameter and a PPO setting",
                         f"write `model.{key}` or `algo.{key}`")
                continue
            elif key in model_params:
                target, name = "model", key
            elif key in algo_keys:
                target, name = "algo", key
            else:
                guess = did_you_mean(key, [*model_params, *algo_keys])
                self.err("E0411", e.key_span, f"sweep key `{key}` is neither a parameter of `{model.name}` "
                         "nor a PPO setting", f"did you mean `{guess}`?" if guess else _sweep_help(model_params))
                continue
            known = model_params if target == "model" else algo_keys
            if name not in known:
                guess = did_you_mean(name, known)
                self.err("E0411", e.key_span, f"`{name}` is not {'a model parameter' if target == 'model' else 'a PPO setting'}",
                         f"did you mean `{guess}`?" if guess else None)
                continue
            if f"{target}.{name}" in swept:
                self.err("E0411", e.key_span, f"sweep key `{key}` is given twice (as `{swept[f'{target}.{name}']}` "
                         "before)", "put all its values in one list")
                continue
            swept[f"{target}.{name}"] = key
            if isinstance(e.value, ast.Call):  # a range: uniform(a, b), log_uniform(a, b), int_uniform(a, b)
                arg = next(a for a in PPO_ARGS if a.name == name) if target == "algo" else None
                param = next(p for p in model.params if p.name == name) if target == "model" else None
                ptype = param.type.name if param is not None and param.type is not None else None
                found = check_range(self, e.value, self.value(e.value, frame), key, arg, ptype)
                if found is not None:
                    spec.sweep[f"{target}.{name}"] = found
                continue
            values = self.el.eval(e.value, frame)
            if values is UNKNOWN:
                continue
            if not isinstance(values, tuple) or not values:
                self.err("E0411", e.value.span, "a sweep key takes a non-empty list of values",
                         f"for example `{key} = [1, 2]`")
                continue
            if target == "algo":
                arg = next(a for a in PPO_ARGS if a.name == name)
                try:
                    values = tuple(coerce(arg, v) for v in values)
                except ArgError as exc:
                    self.err("E0202", e.value.span, exc.message, exc.help)
                    continue
            else:
                model_axes[name] = values
            spec.sweep[f"{target}.{name}"] = values
        points = 1
        for values in spec.sweep.values():
            points *= 1 if isinstance(values, Range) else len(values)
        if points > MAX_SWEEP_POINTS:
            self.err("E0411", sweep.span, f"the sweep has {points} points; at most {MAX_SWEEP_POINTS} are allowed",
                     "sweep fewer values, or split the sweep over several experiments")
            return
        # Every model the sweep would build must compile too (e.g. experts=8 with top_k=... ).
        for combo in itertools.product(*model_axes.values()):
            args = {**spec.model_args, **dict(zip(model_axes, combo, strict=True))}
            if _same_args(args, spec.model_args):
                continue  # the experiment's own model: elaborated and checked against the env already
            graph = self.el.model(model, self.scope, args, self._arg_spans(model_entry), sweep.span)
            if graph is not None:
                spec.point_graphs[args_key(args)] = graph
            if graph is not None and spec.env is not None:
                self._against_env(graph, spec.env, model_entry, model_entry)


def args_key(args: dict[str, Any]) -> tuple:
    """A hashable key of compile-time arguments that tells `4`, `4.0` and `true` apart."""
    return tuple(sorted((k, repr(v)) for k, v in args.items()))


def _same_args(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same compile-time arguments, value for value (`4`, `4.0` and `true` are told apart)."""
    return a.keys() == b.keys() and all(repr(a[k]) == repr(b[k]) for k in a)


def _sweep_help(model_params: set[str]) -> str:
    params = ", ".join(f"`{p}`" for p in sorted(model_params))
    return (f"the model's parameters are {params}; " if params else "the model has no parameters; ") + (
        "PPO settings are " + ", ".join(f"`{a.name}`" for a in PPO_ARGS))


__all__ = ["PPO_ARGS", "EnvSpec", "ExperimentChecker", "ExperimentSpec", "Tensor"]
