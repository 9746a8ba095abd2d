# Official recipe (kkakkkka/ETRIS, train.py and config/*.yaml): Adam lr 1e-4,
# no weight decay, no clipping, MultiStepLR x0.1 at epoch 35, 50 epochs. Mixed
# precision: `--amp`.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-4, weight_decay=0.0))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[35], gamma=0.1)
]
# MMEngine's EpochBasedTrainLoop, reproducible and resumable in the middle
# of an epoch (RISEpochSampler, samples counted in the checkpoint meta)
train_cfg = dict(type='RISEpochBasedTrainLoop', max_epochs=50, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# Global batch 32 = 8 GPUs x 4 samples. Scale lr with the batch if you change
# it.
auto_scale_lr = dict(enable=False, base_batch_size=32)
