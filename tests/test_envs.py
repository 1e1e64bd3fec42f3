"""Environment kinds are registry entries (mdl.compiler.envs): a kind registered through the table alone
is checked, completed and hovered like the built-in ones, and each built-in's entry point is real."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import mdl
from mdl.cli import main
from mdl.compiler.args import Arg
from mdl.compiler.envs import ENV_KINDS, EnvKind, register, unregister
from mdl.compiler.ir import TensorType

TOY = """
model Tiny {
    input obs: float[B, 3]
    h = obs -> linear(out=8) -> tanh
    output policy = h -> linear(out=2)
    output value = h -> linear(out=1)
}

experiment toy_run {
    model = Tiny()
    env = toy(envs=4)
    budget = 1k steps
}
"""


@pytest.fixture
def toy_kind() -> Iterator[EnvKind]:
    kind = register(EnvKind(
        "toy", (Arg("envs", "int", 2, low=1, high=64, doc="parallel toys"),),
        "A toy environment: three float features, two actions.", "toy(envs=2)",
        "mdl.runtime.envs:make_gym", id="toy/Toy-v0", observation=TensorType("float", (3,)), actions=2))
    yield kind
    unregister("toy")


def test_a_registered_kind_is_accepted_by_the_checker_and_by_mdlc_check(toy_kind, tmp_path: Path, capsys) -> None:
    assert mdl.check_source(TOY) == []
    spec = mdl.analyze(TOY).experiments["toy_run"]
    assert (spec.env.kind, spec.env.id, spec.env.envs, spec.env.actions) == ("toy", "toy/Toy-v0", 4, 2)
    assert spec.env.definition is toy_kind
    path = tmp_path / "toy.mdl"
    path.write_text(TOY, encoding="utf-8")
    assert main(["check", str(path)]) == 0, capsys.readouterr()


def test_a_registered_kind_checks_the_model_against_its_spaces(toy_kind) -> None:
    codes = [d.code for d in mdl.check_source(TOY.replace("float[B, 3]", "float[B, 5]"))]
    assert codes == ["E0405"]
    codes = [d.code for d in mdl.check_source(TOY.replace("linear(out=2)", "linear(out=3)"))]
    assert codes == ["E0406"]
    codes = [d.code for d in mdl.check_source(TOY.replace("toy(envs=4)", "toy(envs=100)"))]
    assert codes == ["E0202"]


def test_an_unregistered_kind_is_an_unknown_environment() -> None:
    (d,) = mdl.check_source(TOY)
    assert d.code == "E0403" and "`toy`" in d.message


def test_every_built_in_kind_names_a_real_entry_point() -> None:
    pytest.importorskip("gymnasium")
    assert {"game2048", "gym"} <= set(ENV_KINDS)
    for kind in ENV_KINDS.values():
        assert callable(kind.entry()), kind.name
    envs = ENV_KINDS["game2048"].entry()(2, seed=0)
    try:
        obs, info = envs.reset(seed=0)
        assert obs.shape == (2, *ENV_KINDS["game2048"].observation.shape) and "action_mask" in info
    finally:
        envs.close()
    envs = ENV_KINDS["gym"].entry()(2, seed=0, id="CartPole-v1")
    try:
        assert envs.reset(seed=0)[0].shape == (2, 4)
    finally:
        envs.close()
