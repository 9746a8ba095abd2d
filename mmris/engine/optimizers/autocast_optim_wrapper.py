# Copyright (c) mmris contributors. All rights reserved.
"""Mixed precision without a loss scaler (bf16)."""
import contextlib
from typing import Union

import torch
import torch.nn as nn
from mmengine.device import get_device
from mmengine.optim import OptimWrapper
from mmseg.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """Runs the forward under ``torch.autocast`` and steps without a
    ``GradScaler``.

    bfloat16 has the exponent range of float32, so no loss scaling is needed;
    MMEngine's ``AmpOptimWrapper`` still runs a ``GradScaler`` whose overflow
    check synchronises the host on every step.

    Args:
        dtype (str | torch.dtype): Autocast dtype. Defaults to 'bfloat16'.
        **kwargs: ``OptimWrapper`` arguments (``optimizer``, ``clip_grad``,
            ``accumulative_counts``).
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', **kwargs):
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype) if isinstance(dtype,
                                                              str) else dtype

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module):
        device = get_device()
        device = 'cpu' if device not in ('cuda', 'cpu') else device
        with super().optim_context(model), torch.autocast(
                device_type=device, dtype=self.cast_dtype):
            yield
