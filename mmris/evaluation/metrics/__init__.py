# Copyright (c) mmris contributors. All rights reserved.
from .gris_metric import (GRIS_METRIC_NAMES, GRISMetric,
                          gris_metrics_from_stats, predicted_no_target)
from .ris_metric import (PR_NAMES, PR_THRESHOLDS, RISMetric, compute_iou_stats,
                         ris_metrics_from_stats)

__all__ = [
    'GRISMetric', 'gris_metrics_from_stats', 'GRIS_METRIC_NAMES',
    'predicted_no_target', 'RISMetric', 'compute_iou_stats',
    'ris_metrics_from_stats', 'PR_NAMES', 'PR_THRESHOLDS'
]
