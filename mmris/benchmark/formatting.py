# Copyright (c) mmris contributors. All rights reserved.
"""Text of counted training steps, as the benchmark tools print it."""
from typing import Optional, Tuple

from mmris.utils.memory_count import StepCounts, split_activations

__all__ = ['format_counts']

MiB = 2**20


def format_counts(counts: StepCounts,
                  memory_at: Tuple[int, ...] = (),
                  other: Optional[StepCounts] = None) -> str:
    """The lines ``benchmark.py --mode train`` prints about ``counts`` (and
    the batch split and estimates at ``memory_at`` from a second count
    ``other`` at another batch size).

    Raises:
        ValueError: ``memory_at`` is given without ``other``.
    """
    b = counts.batch
    lines = [
        'counted per training image (batch %d): activations saved for '
        'backward %.2f MiB (%d bytes; %d storages in the step); GFLOP '
        'forward %.3f, backward %.3f' %
        (b, counts.activation_bytes_per_sample() / MiB,
         round(counts.activation_bytes_per_sample()), counts.saved_tensors,
         counts.forward_flops / b / 1e9, counts.backward_flops / b / 1e9),
        'counted static: parameters %.2f MiB + gradients %.2f MiB + '
        'optimizer state %.2f MiB = %.2f MiB (%d bytes)' %
        (counts.param_bytes / MiB, counts.grad_bytes / MiB,
         counts.optimizer_state_bytes / MiB, counts.static_bytes / MiB,
         counts.static_bytes)
    ]
    if not memory_at:
        return '\n'.join(lines)
    if other is None:
        raise ValueError('memory_at needs a second count at another batch')
    constant, per_sample = split_activations(counts, other)
    lines.append(
        'counted activations vs batch (batches %d and %d): %.2f MiB + batch '
        'x %.2f MiB (%d + batch x %d bytes)' %
        (counts.batch, other.batch, constant / MiB, per_sample / MiB,
         round(constant), round(per_sample)))
    for n in memory_at:
        lines.append(
            'counted memory at batch %d (static + constant + %d x per '
            'image): %.2f GiB' %
            (n, n, counts.estimate_bytes(n, per_sample, constant) / 2**30))
    return '\n'.join(lines)
