# Copyright (c) mmris contributors. All rights reserved.
"""Count the memory and FLOPs of one training step exactly, on any device.

Peak-memory readings need a GPU and mix in allocator caching and
fragmentation. The quantities counted here do not: the bytes autograd keeps
for the backward pass (every tensor packed through
:func:`torch.autograd.graph.saved_tensors_hooks`, each underlying storage
counted once and the model's own parameters and buffers left out), the bytes
of the parameters, of their gradients and of the optimizer state, and the
FLOPs of the forward and of the backward pass as
:class:`torch.utils.flop_counter.FlopCounterMode` counts them (through
:func:`flop_counter`, which also counts the CPU flash-attention kernels that
PyTorch's table leaves at 0). They are the same on CPU and GPU for the same
dtype, so a CPU run predicts the GPU footprint: ``static + batch *
activations per image`` (plus workspace and allocator slack).
"""
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Iterator, Optional, Set, Tuple

import torch
import torch.nn as nn
from torch import Tensor
from torch.utils import flop_counter as _fc
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten


def _cpu_sdpa_flop(query_shape,
                   key_shape,
                   value_shape,
                   *args,
                   out_shape=None,
                   **kwargs) -> int:
    return _fc.sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward_flop(grad_out_shape,
                            query_shape,
                            key_shape,
                            value_shape,
                            *args,
                            out_shape=None,
                            **kwargs) -> int:
    return _fc.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape,
                                        value_shape)


#: Formulas PyTorch's FLOP table lacks: the CPU flash-attention kernel that
#: ``scaled_dot_product_attention`` runs on CPU and its backward, counted
#: like the CUDA flash kernels.
EXTRA_FLOP_FORMULAS = {
    op: formula
    for op, formula in (
        (aten._scaled_dot_product_flash_attention_for_cpu, _cpu_sdpa_flop),
        (aten._scaled_dot_product_flash_attention_for_cpu_backward,
         _cpu_sdpa_backward_flop),
    ) if op not in _fc.flop_registry
}


def flop_counter() -> FlopCounterMode:
    """A silent :class:`FlopCounterMode` that also counts the kernels of
    :data:`EXTRA_FLOP_FORMULAS`."""
    return FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS)


def _storage_key(t: Tensor) -> Tuple[str, int]:
    storage = t.untyped_storage()
    return str(t.device), storage.data_ptr()


def _storage_keys(tensors: Iterable[Tensor]) -> Set[Tuple[str, int]]:
    return {_storage_key(t) for t in tensors}


class SavedTensorCounter:
    """Context manager summing the bytes of the tensors saved for backward.

    Each storage is counted once (a view saved by several nodes, or a layer
    output saved both by its activation and by the next layer, occupies its
    memory once), with its full size (a saved view keeps its whole storage
    alive). Storages of ``exclude`` (typically the model's parameters and
    buffers, which exist anyway) are not counted.

    Args:
        exclude (Iterable[Tensor]): Tensors whose storages are not
            activations. Defaults to none.

    Attributes:
        bytes (int): Bytes counted so far.
        count (int): Distinct storages counted so far.
    """

    def __init__(self, exclude: Iterable[Tensor] = ()):
        self._exclude = _storage_keys(exclude)
        self._seen: Set[Tuple[str, int]] = set()
        self.bytes = 0
        self.count = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(
            self._pack, lambda t: t)

    def _pack(self, t: Tensor) -> Tensor:
        if t.layout != torch.strided:  # sparse / nested: count their values
            nbytes = t.numel() * t.element_size()
            key = (str(t.device), id(t))
        else:
            key = _storage_key(t)
            nbytes = t.untyped_storage().nbytes()
        if key not in self._exclude and key not in self._seen:
            self._seen.add(key)
            self.bytes += nbytes
            self.count += 1
        return t

    def __enter__(self) -> 'SavedTensorCounter':
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


def tensor_bytes(tensors: Iterable[Optional[Tensor]]) -> int:
    """Bytes of distinct storages among ``tensors`` (``None`` skipped)."""
    seen: Dict[Tuple[str, int], int] = {}
    for t in tensors:
        if isinstance(t, Tensor):
            seen.setdefault(_storage_key(t), t.untyped_storage().nbytes())
    return sum(seen.values())


def _state_tensors(optimizer: torch.optim.Optimizer) -> Iterator[Tensor]:
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, Tensor):
                yield value


@dataclass
class StepCounts:
    """Counted footprint of one training step.

    Attributes:
        batch (int): Images (samples) in the step.
        activation_bytes (int): Bytes saved for backward (see
            :class:`SavedTensorCounter`).
        saved_tensors (int): Distinct storages saved for backward.
        param_bytes (int): All parameters, frozen ones included.
        grad_bytes (int): Gradients present after the backward pass.
        optimizer_state_bytes (int): Optimizer state after the step.
        forward_flops (int): FLOPs of the forward pass (with the loss).
        backward_flops (int): FLOPs of the backward pass.
    """
    batch: int
    activation_bytes: int
    saved_tensors: int
    param_bytes: int
    grad_bytes: int
    optimizer_state_bytes: int
    forward_flops: int
    backward_flops: int

    @property
    def static_bytes(self) -> int:
        """Parameters + gradients + optimizer state."""
        return self.param_bytes + self.grad_bytes + self.optimizer_state_bytes

    def activation_bytes_per_sample(self) -> float:
        """Saved-for-backward bytes per image."""
        return self.activation_bytes / self.batch

    def estimate_bytes(self,
                       batch: int,
                       per_sample: Optional[float] = None,
                       constant: float = 0.0) -> float:
        """The counted training memory at another batch size, ``static +
        constant + batch * per_sample`` (without workspace or allocator
        slack).

        Args:
            batch (int): The batch size.
            per_sample (float, optional): Saved bytes per sample. Defaults to
                :meth:`activation_bytes_per_sample` (everything saved is
                taken to scale with the batch).
            constant (float): Saved bytes independent of the batch (see
                :func:`split_activations`). Defaults to 0.
        """
        if per_sample is None:
            per_sample = self.activation_bytes_per_sample()
        return self.static_bytes + constant + batch * per_sample


def split_activations(first: StepCounts,
                      second: StepCounts) -> Tuple[float, float]:
    """Split the saved bytes into a batch-independent part and a per-sample
    part from two counts at different batch sizes (saved bytes are affine
    in the batch: e.g. autocast's low-precision copies of frozen weights or
    resized position embeddings are saved once per step).

    Args:
        first (StepCounts): Counts at one batch size.
        second (StepCounts): Counts at another batch size.

    Returns:
        tuple[float, float]: ``(constant, per_sample)`` bytes.
    """
    if first.batch == second.batch:
        raise ValueError('split_activations needs two different batch sizes, '
                         f'got {first.batch} twice')
    per_sample = ((second.activation_bytes - first.activation_bytes) /
                  (second.batch - first.batch))
    return first.activation_bytes - per_sample * first.batch, per_sample


def count_train_step(model: nn.Module,
                     forward: Callable[[], Tensor],
                     backward: Callable[[Tensor], None],
                     optimizer: Optional[torch.optim.Optimizer] = None,
                     step: Optional[Callable[[], None]] = None,
                     batch: int = 1) -> StepCounts:
    """Run one training step and count its memory and FLOPs.

    Args:
        model (nn.Module): The model (its parameters and buffers are not
            counted as activations; its parameters give ``param_bytes`` and
            ``grad_bytes``).
        forward (Callable[[], Tensor]): Runs the forward pass, returns the
            scalar loss.
        backward (Callable[[Tensor], None]): Back-propagates the loss (e.g.
            ``loss.backward`` or ``optim_wrapper.backward``).
        optimizer (torch.optim.Optimizer, optional): Read for
            ``optimizer_state_bytes`` after ``step``. Defaults to None (0).
        step (Callable[[], None], optional): The parameter update, run after
            the gradients are read (e.g. ``optimizer.step``). Defaults to
            ``optimizer.step`` when an optimizer is given.
        batch (int): Samples in the step, for the per-sample numbers.

    Returns:
        StepCounts: The counts.
    """
    if batch < 1:
        raise ValueError(f'batch must be >= 1, got {batch}')
    params = list(model.parameters())
    keep = params + list(model.buffers())
    with flop_counter() as fwd_flops, \
            SavedTensorCounter(exclude=keep) as saved:
        loss = forward()
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        raise TypeError('forward must return a scalar loss tensor, got '
                        f'{type(loss).__name__}')
    with flop_counter() as bwd_flops:
        backward(loss)
    grad_bytes = tensor_bytes(p.grad for p in params)
    if step is None and optimizer is not None:
        step = optimizer.step
    if step is not None:
        step()
    state_bytes = tensor_bytes(_state_tensors(optimizer)) if optimizer else 0
    return StepCounts(
        batch=batch,
        activation_bytes=saved.bytes,
        saved_tensors=saved.count,
        param_bytes=tensor_bytes(params),
        grad_bytes=grad_bytes,
        optimizer_state_bytes=state_bytes,
        forward_flops=fwd_flops.get_total_flops(),
        backward_flops=bwd_flops.get_total_flops())
