"""Small designs the runtime tests train for a few hundred steps (imported as `from designs import ...`)."""

TINY_2048 = """\
model Tiny {
    input board: int[B, 4, 4]
    h = board -> flatten(start=1) -> embedding(vocab=16, dim=4) -> flatten(start=1) -> linear(out=16) -> tanh
    output policy = h -> linear(out=4)
    output value = h -> linear(out=1)
}

experiment tiny {
    model = Tiny()
    env = game2048(envs=8)
    algo = ppo(rollout=16, minibatches=2, epochs=1)
    budget = 256 steps
    seeds = [4]
    checkpoint = every(128 steps, keep=3)
}
"""
