_base_ = [
    '../_base_/models/barleria_eva02-b16.py', '../_base_/datasets/grefcoco.py',
    '../_base_/schedules/schedule_50e.py', '../_base_/default_runtime.py'
]
# Generalized RIS (gRefCOCO): BarLeRIa EVA02-CLIP-B/16 plus a no-target
# classifier (NoTargetHead) on the fused map (neck + side network) and the
# sentence feature; a no-target decision empties the mask.
model = dict(
    no_target_head=dict(
        type='NoTargetHead', in_channels=512, text_channels=512))
default_hooks = dict(checkpoint=dict(save_best='gIoU'))
