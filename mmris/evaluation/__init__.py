# Copyright (c) mmris contributors. All rights reserved.
from .metrics import (GRIS_METRIC_NAMES, PR_NAMES, PR_THRESHOLDS, GRISMetric,
                      RISMetric, compute_iou_stats, gris_metrics_from_stats,
                      ris_metrics_from_stats)

__all__ = [
    'GRISMetric', 'gris_metrics_from_stats', 'GRIS_METRIC_NAMES', 'RISMetric',
    'compute_iou_stats', 'ris_metrics_from_stats', 'PR_NAMES', 'PR_THRESHOLDS'
]
