# Copyright (c) mmris contributors. All rights reserved.
from .ris_metric import (PR_NAMES, PR_THRESHOLDS, RISMetric, compute_iou_stats,
                         ris_metrics_from_stats)

__all__ = [
    'RISMetric', 'compute_iou_stats', 'ris_metrics_from_stats', 'PR_NAMES',
    'PR_THRESHOLDS'
]
