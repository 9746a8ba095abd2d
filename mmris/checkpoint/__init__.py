# Copyright (c) mmris contributors. All rights reserved.
"""Everything about checkpoint files, used by every mmris tool and model:

* :mod:`.loading`: :func:`safe_torch_load`, the one loader (plain data
  only, memory bounded by the file, CRC-32 checked), strict matching
  against a model, the optimizer-state check before a resume;
* :mod:`.reader` and :mod:`.unpickler`: zip / legacy / TorchScript readers
  on a data-only unpickler (never ``torch.load`` or ``torch.jit.load``);
* :mod:`.pretrained`: OpenAI CLIP archives and encoder state dicts;
* :mod:`.saving`: crash-safe (atomic) file replacement;
* :mod:`.convert`: official RIS checkpoints -> mmris key names.
"""
from .convert import KEY_MAPS, TIED_KEYS, convert_official_state_dict
from .errors import (CheckpointError, CorruptCheckpointError,
                     LegacyCheckpointWarning, UnsafeCheckpointError)
from .loading import (CheckpointMismatchError, OptimizerMismatchError,
                      StateDictReport, check_checkpoint_integrity,
                      check_optimizer_state, check_state_dict,
                      extract_state_dict, load_ris_checkpoint,
                      load_state_dict_strict, register_mmengine_loader,
                      safe_torch_load, unsafe_checkpoint_loading,
                      unsafe_loading_enabled)
from .pretrained import (load_clip_state_dict, load_state_dict_file,
                         sub_state_dict)
from .reader import is_torchscript_archive, read_torchscript_weights
from .saving import (commit_file, is_temporary, remove_stale_temporaries,
                     temporary_name, write_text_atomic)

__all__ = [
    'CheckpointError', 'CorruptCheckpointError', 'UnsafeCheckpointError',
    'LegacyCheckpointWarning', 'CheckpointMismatchError',
    'OptimizerMismatchError', 'StateDictReport', 'safe_torch_load',
    'unsafe_checkpoint_loading', 'unsafe_loading_enabled',
    'check_checkpoint_integrity', 'check_optimizer_state', 'check_state_dict',
    'extract_state_dict', 'load_ris_checkpoint', 'load_state_dict_strict',
    'register_mmengine_loader', 'load_clip_state_dict', 'load_state_dict_file',
    'sub_state_dict', 'is_torchscript_archive', 'read_torchscript_weights',
    'commit_file', 'is_temporary', 'remove_stale_temporaries',
    'temporary_name', 'write_text_atomic', 'KEY_MAPS', 'TIED_KEYS',
    'convert_official_state_dict'
]
