# Copyright (c) mmris contributors. All rights reserved.
from .broadcast_buffers_hook import BroadcastBuffersHook  # noqa: F401
from .lazy_runtime_info_hook import LazyRuntimeInfoHook  # noqa: F401
from .nonfinite_loss_hook import NonFiniteLossError  # noqa: F401
from .nonfinite_loss_hook import NonFiniteLossHook, NonFiniteParametersError
from .pretrained_check_hook import PretrainedCheckHook  # noqa: F401
from .progress_bar_hook import EvalProgressBarHook  # noqa: F401
from .ris_checkpoint_hook import RISCheckpointHook  # noqa: F401
from .ris_train_state_hook import RISTrainStateHook  # noqa: F401
from .ris_visualization_hook import RISVisualizationHook  # noqa: F401,E501
from .ris_visualization_hook import sample_name
