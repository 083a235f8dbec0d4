"""dnn_gating: the C++ library's gated and quantized layers inside PyTorch.

Drop-in modules for the original dnn-gating's `utils/pg_utils.py` and
`utils/cg_utils.py` (same constructors, attributes, state-dict keys and gate
counters), computed by the library's kernels through PyTorch operators
(`torch.ops.dnn_gating.*`, `torch.classes.dnn_gating.*`):

    import dnn_gating.pg_utils as q      # instead of: import utils.pg_utils as q
    import dnn_gating.cg_utils as cg     # instead of: import utils.cg_utils as cg
    net = dnn_gating.models.resnet20(kind="pg", wbits=8, abits=3, pred_bits=2, pact=True)
"""

import os as _os

import torch as _torch

_LIBRARY = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "libdnn_gating_ops.so")
if not _os.path.exists(_LIBRARY):
    raise ImportError(
        f"dnn_gating: {_LIBRARY} is missing; build the project first (scripts/setup.sh)")
_torch.ops.load_library(_LIBRARY)

from . import cg_utils, models, pg_utils  # noqa: E402
from .gating import gate, gated_layers, gating_loss, total_counts  # noqa: E402

__all__ = ["pg_utils", "cg_utils", "models", "gate", "gated_layers", "gating_loss", "total_counts"]
