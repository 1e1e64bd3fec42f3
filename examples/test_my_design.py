"""A user's property test of their own design: `examples/moe_2048.mdl`'s `Moe2048` over its parameter
space, with mdl.testing (run it with `pytest examples/test_my_design.py`; `pip install mdl[testing]`).

For every width, depth and expert count hypothesis tries (only combinations the checker accepts),
the editor's parameter count and every shape are torch's, and on any 2048 boards the policy gives one
logit per move for each board, the same whatever the other boards in the batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mdl.testing import assert_matches_torch
from mdl.testing.strategies import boards, variants

DESIGN = Path(__file__).with_name("moe_2048.mdl")
MOE_2048 = variants(DESIGN.read_text(encoding="utf-8"), "Moe2048", path=str(DESIGN),
                    d=st.sampled_from([16, 24, 32]), layers=st.integers(1, 2), experts=st.integers(1, 4))


@settings(max_examples=50, deadline=None)
@given(MOE_2048, st.lists(boards(max_tile=2048), min_size=1, max_size=3))
def test_moe_2048_variants_match_torch_and_score_each_board_alone(compiled, batch) -> None:
    assert_matches_torch(compiled, batches=(len(batch),))
    module = compiled.module.eval()
    together = torch.from_numpy(np.stack(batch))
    with torch.no_grad():
        logits = module(together)["policy"]
        assert logits.shape == (len(batch), 4) and torch.isfinite(logits).all()
        for i in range(len(batch)):
            alone = module(together[i:i + 1])["policy"]
            torch.testing.assert_close(alone, logits[i:i + 1], atol=1e-4, rtol=1e-4)
