_base_ = [
    '../_base_/models/detris-b.py', '../_base_/datasets/refcocog_google.py',
    '../_base_/schedules/schedule_50e.py', '../_base_/default_runtime.py'
]
# DETRIS uses word_len 17 on G-Ref (Google) too (official config).
# Input 448 (32x32 patches of 14 px); global batch 32 = 8 GPUs x 4.
train_dataloader = dict(batch_size=4, dataset=dict(img_size=448, word_len=17))
val_dataloader = dict(dataset=dict(img_size=448, word_len=17))
test_dataloader = val_dataloader
