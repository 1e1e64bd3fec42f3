"""The `.pt` export: one `torch.save` file of plain data and tensors only (`PT_KEYS`), written
atomically, and verified by loading it back with `load` (weights_only, rebuilt from the carried source,
architecture hash compared) and comparing its weights and outputs with the in-memory module's.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from mdl.runtime.export.common import PT_VERSION, Source, Written, check
from mdl.runtime.export.loading import load


def write(src: Source, path: Path, moe: str, compare) -> Written:
    """Write `src` as an exported `.pt` and check it loads back to the same weights and outputs."""
    import torch

    from mdl.files import atomic_write
    from mdl.runtime import obsnorm
    from mdl.runtime.train import package_versions

    compiled = src.compiled
    versions = {k: str(v) for k, v in package_versions().items()}  # torch's is a TorchVersion object
    versions["python"] = sys.version.split()[0]
    payload = {
        "mdl_export": PT_VERSION, "model": compiled.name, "experiment": src.experiment,
        "architecture_hash": compiled.architecture_hash, "params": compiled.params,
        "weights": {k: v.detach().cpu().clone() for k, v in compiled.module.state_dict().items()},
        "source": compiled.source, "source_name": src.source_name, "imports": src.imports,
        "ir": compiled.ir.to_json(), "training": src.training, "obs_norm": obsnorm.settings(compiled.module),
        "versions": versions,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with atomic_write(path, "wb") as f:
        torch.save(payload, f)
    loaded = load(path)
    checks = [
        check("architecture hash", loaded.architecture_hash == compiled.architecture_hash,
              loaded.architecture_hash[:16]),
        _same_weights(compiled.module, loaded.module, "weights"),
        compare(compiled.module, loaded.module, compiled.ir, "outputs match the model"),
    ]
    return checks, {}


def _same_weights(reference, other, label: str) -> dict[str, Any]:
    """Both modules hold the same tensors under the same names, bit for bit."""
    import torch

    a, b = reference.state_dict(), other.state_dict()
    if a.keys() != b.keys():
        return check(label, False, f"state-dict keys differ: {sorted(a.keys() ^ b.keys())[:4]}")
    different = [k for k in a if not torch.equal(a[k].cpu(), b[k].cpu())]
    return check(label, not different, f"{len(a)} tensors identical" if not different
                 else f"{len(different)} tensors differ, e.g. {different[0]}")
