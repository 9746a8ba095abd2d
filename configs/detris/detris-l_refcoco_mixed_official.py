_base_ = [
    '../_base_/models/detris-l.py',
    '../_base_/datasets/refcoco_mixed_official.py',
    '../_base_/schedules/schedule_50e.py', '../_base_/default_runtime.py'
]
# DETRIS-L* as published (jiaqihuang01/DETRIS,
# config/refcoco/DETRIS_large_mixed.yaml and tools/mix.py): the same model as
# detris-l_refcoco_mixed.py trained on the three training sets as they are,
# i.e. also on images of the other datasets' val/test splits (the OFFICIAL,
# LEAKING recipe; tools/analysis_tools/dataset_overlap.py counts them). Use
# it only to reproduce the paper's DETRIS-L* numbers.
model = dict(
    backbone=dict(
        adapters=dict(
            dense_aligner=dict(
                module=dict(hidden_channels=384), layers=list(range(1, 24))),
            text_adapter=dict(
                module=dict(hidden_channels=384), layers=list(range(1, 12))))))
train_dataloader = dict(batch_size=4)
val_dataloader = dict(dataset=dict(img_size=448))
test_dataloader = val_dataloader
