# Quick start: a tiny BarLeRIa-style model (CLIP-ViT-shaped towers with
# shortcut flows, an Intertwiner and the AbS-ViT side network) trained from
# scratch on the synthetic REFER-format dataset, on CPU. The towers are tiny
# and randomly initialised, so they are trained here (trainable='.*'); the
# paper configs freeze pretrained CLIP towers.
# Data, schedule and runtime as the ETRIS quick start; only the model differs.
_base_ = ['./etris-tiny_synthetic.py']

img_size = 64
width = 64
model = dict(
    _delete_=True,
    type='RISEncoderDecoder',
    data_preprocessor=dict(type='RISDataPreprocessor'),
    backbone=dict(
        type='AdaptedEncoderPair',
        visual=dict(
            type='CLIPVisionTransformer',
            img_size=img_size,
            patch_size=8,
            width=width,
            layers=4,
            heads=4,
            output_dim=width),
        text=dict(
            type='CLIPTextTransformer',
            width=width,
            heads=4,
            layers=4,
            embed_dim=width),
        adapters=dict(
            visual_flow=dict(
                point='attn_shortcut',
                tower='visual',
                name='flow',
                module=dict(type='ShortcutNormalizingFlow', dim=width)),
            visual_flow2=dict(
                point='ffn_shortcut',
                tower='visual',
                name='flow2',
                module=dict(type='ShortcutNormalizingFlow', dim=width)),
            text_flow=dict(
                point='attn_shortcut',
                tower='text',
                name='flow',
                module=dict(type='ShortcutNormalizingFlow', dim=width)),
            text_flow2=dict(
                point='ffn_shortcut',
                tower='text',
                name='flow2',
                module=dict(type='ShortcutNormalizingFlow', dim=width)),
            intertwiner=dict(
                point='tokens',
                tower='visual',
                layers=[0],
                name='token_injector',
                module=dict(
                    type='Intertwiner',
                    text_channels=width,
                    d_img=width,
                    hidden=16))),
        out_indices=(1, 2),
        side_indices=(0, 1, 2, 3),
        # trained from scratch here: keep "!" (BPE id 0) visible to the
        # decoder (the paper configs use the official 'zero_id')
        pad_mask_mode='after_eot',
        trainable=('.*', )),
    neck=dict(
        type='RISNeck',
        in_channels=(width, width, width),
        text_channels=width,
        out_channels=width,
        nhead=4),
    side_network=dict(
        type='BarLeRIaSideNetwork',
        out_channels=width,
        clip_channels=width,
        text_channels=width,
        img_size=img_size,
        patch_size=8,
        embed_dim=48,
        depth=4,
        num_heads=3,
        num_queries=8,
        fusion_blocks=(0, 1, 2, 3),
        out_blocks=(4, )),
    decode_head=dict(
        type='RISDecodeHead',
        num_layers=2,
        d_model=width,
        nhead=4,
        dim_ffn=width,
        dropout=0.0,
        text_channels=width))

train_dataloader = dict(dataset=dict(img_size=img_size))
val_dataloader = dict(dataset=dict(img_size=img_size))
test_dataloader = val_dataloader
