_base_ = [
    '../_base_/models/detris-b.py', '../_base_/datasets/grefcoco.py',
    '../_base_/schedules/schedule_65e.py', '../_base_/default_runtime.py'
]
# Generalized RIS (gRefCOCO): DETRIS-B plus a no-target classifier
# (NoTargetHead) on the fused neck map and the sentence feature; a no-target
# decision empties the mask. Input 448 (32x32 patches of 14 px); global
# batch 32 = 8 GPUs x 4.
model = dict(
    no_target_head=dict(
        type='NoTargetHead', in_channels=512, text_channels=512))
default_hooks = dict(checkpoint=dict(save_best='gIoU'))
train_dataloader = dict(batch_size=4, dataset=dict(img_size=448))
val_dataloader = dict(dataset=dict(img_size=448))
test_dataloader = val_dataloader
