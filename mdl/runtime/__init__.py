"""mdl.runtime: environments, PPO, the training loop, checkpoints, metrics, export, sweeps.

Nothing heavy is imported here: `import mdl` and `import mdl.runtime` leave numpy, gymnasium and torch
out of `sys.modules`. Import the submodule you need (`mdl.runtime.envs` registers the 2048 env).
"""
