_base_ = [
    '../_base_/models/etris_vit-b16.py', '../_base_/datasets/grefcoco.py',
    '../_base_/schedules/schedule_50e.py', '../_base_/default_runtime.py'
]
# Generalized RIS (gRefCOCO): the ETRIS ViT-B/16 model of the RefCOCO config
# plus a no-target classifier on the fused neck map and the sentence feature
# (NoTargetHead, BCE on the samples' no_target flag; a no-target decision
# empties the mask). Multi-target ground truth is the union of the masks:
# the mask loss is unchanged.
model = dict(
    no_target_head=dict(
        type='NoTargetHead', in_channels=512, text_channels=512))
default_hooks = dict(checkpoint=dict(save_best='gIoU'))
