# Quick start, generalized RIS: the tiny ETRIS-style model of
# etris-tiny_synthetic.py plus a no-target classifier (NoTargetHead),
# trained from scratch on CPU on the synthetic gRefCOCO-format data: single
# objects ("the red circle"), several ("the two circles", "all the shapes")
# and none ("the purple square" where there is none). Data:
#   python tools/dataset_converters/make_synthetic_refer.py \
#       data/quickstart_grefcoco --datasets grefcoco \
#       --splits train=320 val=80 testA=20 testB=20
# Evaluated with ReLA's metrics (gIoU, cIoU, N-acc, T-acc, Pr@0.7-0.9).
_base_ = ['./etris-tiny_synthetic.py']

width = {{_base_.width}}
data_root = 'data/quickstart_grefcoco/'
gref = dict(
    type='GRefCOCODataset',
    data_root=data_root,
    dataset='grefcoco',
    split_by='unc')
model = dict(
    no_target_head=dict(
        type='NoTargetHead',
        in_channels=width,
        text_channels=width,
        hidden_channels=width))
train_dataloader = dict(dataset=gref)
val_dataloader = dict(dataset=gref)
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='GRISMetric')
test_evaluator = val_evaluator
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[4], gamma=0.1)
]
train_cfg = dict(max_epochs=5, val_interval=5)
default_hooks = dict(checkpoint=dict(interval=5, save_best='gIoU'))
