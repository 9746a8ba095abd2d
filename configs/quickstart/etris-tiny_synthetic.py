# Quick start: a tiny ETRIS-style model (CLIP-ViT-shaped towers + Bridger)
# trained from scratch on the synthetic REFER-format dataset, on CPU.
# `bash tools/quickstart.sh` generates the data (1280 training images,
# `make_synthetic_refer.py data/quickstart --splits train=1280 val=80
# testA=20 testB=20`) and runs train + test.
# The towers are tiny and randomly initialised, so they are trained here
# (trainable='.*'); the paper configs freeze pretrained CLIP towers. Unlike
# the paper recipes the loss adds a Dice term (dice_weight): it weighs every
# sentence's mask equally, which speeds up learning the rarer shape, size
# and position sentences.
_base_ = ['../_base_/datasets/refcoco.py', '../_base_/default_runtime.py']

data_root = 'data/quickstart/'
img_size = 96
width = 64  # text tower, neck and head
vis_width = 96  # image tower
model = dict(
    type='RISEncoderDecoder',
    data_preprocessor=dict(type='RISDataPreprocessor'),
    backbone=dict(
        type='AdaptedEncoderPair',
        visual=dict(
            type='CLIPVisionTransformer',
            img_size=img_size,
            patch_size=8,
            width=vis_width,
            layers=4,
            heads=4,
            output_dim=vis_width),
        text=dict(
            type='CLIPTextTransformer',
            width=width,
            heads=4,
            layers=4,
            embed_dim=width),
        adapters=dict(
            bridger=dict(
                point='bridge',
                layers=(1, 2, 3),
                name='bridge',
                module=dict(
                    type='BridgerViT',
                    d_img=(vis_width, vis_width, vis_width),
                    text_channels=width,
                    d_model=32,
                    nhead=4))),
        out_indices=(1, 2),
        # trained from scratch here: keep "!" (BPE id 0) visible to the
        # decoder (the paper configs use the official 'zero_id')
        pad_mask_mode='after_eot',
        trainable=('.*', )),
    neck=dict(
        type='RISNeck',
        in_channels=(vis_width, vis_width, vis_width),
        text_channels=width,
        out_channels=width,
        nhead=4),
    decode_head=dict(
        type='RISDecodeHead',
        num_layers=2,
        d_model=width,
        nhead=4,
        dim_ffn=width,
        dropout=0.0,
        text_channels=width,
        dice_weight=1.0))

# one loader worker: the 2-core box has no core to spare for a second one
train_dataloader = dict(
    batch_size=16,
    num_workers=1,
    dataset=dict(data_root=data_root, img_size=img_size))
val_dataloader = dict(
    batch_size=32,
    num_workers=1,
    dataset=dict(data_root=data_root, img_size=img_size))
test_dataloader = val_dataloader

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-3))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[3], gamma=0.1)
]
train_cfg = dict(type='RISEpochBasedTrainLoop', max_epochs=4, val_interval=4)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(interval=4),
    visualization=dict(type='RISVisualizationHook', draw=False))

# printed by tools/demo.py (and the web demo) next to the weights in use
model_note = ('quick-start model: trained only on the synthetic coloured '
              'shapes of make_synthetic_refer.py; on real photos its masks '
              'are meaningless (use a paper config and checkpoint)')
