# Copyright (c) mmris contributors. All rights reserved.
"""Cheap finiteness checks of parameter / state-dict tensors."""
from typing import Dict, Iterable, List, Sequence, Tuple

import torch

__all__ = ['all_finite', 'nonfinite_names', 'floating_items']


def floating_items(state: Dict[str, object]) -> List[Tuple[str, torch.Tensor]]:
    """The ``(name, tensor)`` pairs of the floating-point tensors of a
    state dict (integer buffers such as ``num_batches_tracked`` are always
    finite)."""
    return [(k, v) for k, v in state.items() if isinstance(v, torch.Tensor)
            and v.is_floating_point() and v.numel() > 0]


def all_finite(tensors: Sequence[torch.Tensor]) -> bool:
    """Whether every element of ``tensors`` is finite, with one host sync.

    Uses the fused ``torch._foreach_norm`` per device and dtype (a few
    kernels for hundreds of tensors). A norm also overflows for finite
    values above ~1e19 (fp32); such tensors are then checked one by one, so
    the answer is exact.
    """
    tensors = [t.detach() for t in tensors if t.numel() > 0]
    if not tensors:
        return True
    groups: Dict[Tuple[torch.device, torch.dtype], List[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    flags = []
    for group in groups.values():
        norms = torch._foreach_norm(group)
        flags.append(torch.isfinite(torch.stack(norms).sum()).to('cpu'))
    if all(bool(f) for f in flags):
        return True
    return not nonfinite_names((str(i), t) for i, t in enumerate(tensors))


def nonfinite_names(named: Iterable[Tuple[str, torch.Tensor]]) -> List[str]:
    """The names of the tensors holding a NaN or an infinity (exact, one
    check per tensor; for the error path)."""
    return [
        name for name, t in named
        if t.numel() > 0 and not bool(torch.isfinite(t.detach()).all())
    ]
