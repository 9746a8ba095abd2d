# Copyright (c) mmris contributors. All rights reserved.
from .ris_epoch_based_train_loop import RISEpochBasedTrainLoop  # noqa: F401
