# Copyright (c) mmris contributors. All rights reserved.
"""The errors and warnings of the checkpoint readers.

Every error names the file; :class:`CheckpointError` is the base class a
caller (or a fuzzer) can catch for "this file was refused".
"""
import pickle

__all__ = [
    'CheckpointError', 'CorruptCheckpointError', 'UnsafeCheckpointError',
    'LegacyCheckpointWarning'
]


class CheckpointError(Exception):
    """A checkpoint file was refused (base class)."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint pickles a global, or uses a pickle operation, outside
    the allow-list of plain data (nothing of it is executed)."""


class CorruptCheckpointError(CheckpointError, RuntimeError):
    """A checkpoint is damaged, malformed, or not a PyTorch checkpoint:
    failed CRC-32, truncated, records of the wrong size, tensors outside
    their storage, compressed or overlapping records, ..."""


class LegacyCheckpointWarning(UserWarning):
    """A legacy (pre-zip) ``torch.save`` file was read: it has no
    checksums, so damage to its values cannot be detected."""
