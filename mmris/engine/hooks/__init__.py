# Copyright (c) mmris contributors. All rights reserved.
from .ris_visualization_hook import RISVisualizationHook, sample_name  # noqa: F401,E501
from .nonfinite_loss_hook import (  # noqa: F401
    NonFiniteLossError, NonFiniteLossHook, NonFiniteParametersError)
from .lazy_runtime_info_hook import LazyRuntimeInfoHook  # noqa: F401
from .progress_bar_hook import EvalProgressBarHook  # noqa: F401
from .ris_checkpoint_hook import RISCheckpointHook  # noqa: F401
from .ris_train_state_hook import RISTrainStateHook  # noqa: F401
from .broadcast_buffers_hook import BroadcastBuffersHook  # noqa: F401
from .pretrained_check_hook import PretrainedCheckHook  # noqa: F401
