default_scope = 'mmseg'
custom_imports = dict(imports=['mmris'], allow_failed_imports=False)
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='RISLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=True),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # crash-safe CheckpointHook: new file written atomically, then
    # last_checkpoint, then the outdated / previous best files removed
    checkpoint=dict(
        type='RISCheckpointHook',
        by_epoch=True,
        interval=1,
        max_keep_ckpts=1,
        save_best='mIoU',
        rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # exact resume: RNG states and the samples trained in the epoch in the
    # checkpoint meta, restored after --resume (with RISEpochBasedTrainLoop,
    # train_cfg in schedules/*.py); the sentence draw keyed by the epoch
    train_state=dict(type='RISTrainStateHook'),
    # distributed: every rank evaluates rank 0's (the checkpointed) buffers
    broadcast_buffers=dict(type='BroadcastBuffersHook'),
    # refuse to train a paper config whose frozen encoders would be random
    # (opt out: allow_random_encoders = True)
    pretrained_check=dict(type='PretrainedCheckHook'),
    # draws GT | prediction with the sentence and IoU when draw=True
    # (`tools/test.py --show-dir`), also during validation
    visualization=dict(type='RISVisualizationHook', draw=False))
# mmris runner: strict load_from/resume (opt out: strict_load = False),
# --resume takes the newest checkpoint that opens and is finite, CPU-only
# --launcher pytorch (gloo)
runner_type = 'RISRunner'
# stop with the iteration and the batch's ref/sent ids on a NaN/inf loss or
# NaN/inf parameters after an update (checked every param_interval steps
# and before every save: no non-finite checkpoint is written)
custom_hooks = [
    dict(type='NonFiniteLossHook'),
    dict(type='EvalProgressBarHook'),  # progress bar over val/test batches
]
