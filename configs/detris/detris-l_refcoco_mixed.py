_base_ = [
    '../_base_/models/detris-l.py', '../_base_/datasets/refcoco_mixed.py',
    '../_base_/schedules/schedule_50e.py', '../_base_/default_runtime.py'
]
# DETRIS-L* model (jiaqihuang01/DETRIS,
# config/refcoco/DETRIS_large_mixed.yaml):
# Dense Aligners (m=384) in blocks 1..23, Text Adapters (a=384) in text blocks
# 1..11; input 448, batch 8 GPUs x 4. Trained on the mixed data WITHOUT the
# images of the refcoco / refcoco+ / refcocog-umd evaluation splits (mmris's
# clean recipe); detris-l_refcoco_mixed_official.py is the paper's recipe.
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
