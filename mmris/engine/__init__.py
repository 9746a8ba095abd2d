# Copyright (c) mmris contributors. All rights reserved.
from .atomic_local_backend import AtomicLocalBackend  # noqa: F401
from .hooks import *  # noqa: F401,F403
from .loops import RISEpochBasedTrainLoop  # noqa: F401
from .optimizers import AutocastOptimWrapper  # noqa: F401
from .resume import NoResumableCheckpointError  # noqa: F401
from .resume import find_resumable_checkpoint
from .runner import RISRunner, build_runner  # noqa: F401
