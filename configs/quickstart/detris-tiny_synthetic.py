# A tiny DETRIS-shaped model (DINOv2 with registers + CLIP text tower, Dense
# Aligners and Text Adapters, text-first order) on the synthetic data, for
# CPU smoke tests of the whole DETRIS path through the tools.
_base_ = ['./etris-tiny_synthetic.py']

img_size = 56  # 4 x 4 patches of 14
width = 64
model = dict(
    _delete_=True,
    type='RISEncoderDecoder',
    data_preprocessor=dict(type='RISDataPreprocessor'),
    backbone=dict(
        type='AdaptedEncoderPair',
        visual=dict(
            type='DINOv2',
            arch=dict(embed_dims=32, num_layers=4, num_heads=2),
            img_size=img_size,
            patch_size=14,
            num_register_tokens=4),
        text=dict(
            type='CLIPTextTransformer',
            width=width,
            heads=4,
            layers=4,
            embed_dim=width),
        order='text_first',
        adapters=dict(
            dense_aligner=dict(
                point='ffn_parallel',
                tower='visual',
                layers=[1, 3],
                scale=0.2,
                input='norm',
                name='adapter',
                module=dict(
                    type='DenseAligner',
                    in_channels=32,
                    hidden_channels=32,
                    text_channels=width,
                    embed_dims=32,
                    num_heads=4)),
            text_adapter=dict(
                point='ffn_parallel',
                tower='text',
                layers=[1, 3],
                scale=0.2,
                input='residual',
                name='adapter',
                module=dict(
                    type='TextAdapter', in_channels=width,
                    hidden_channels=32))),
        out_indices=(1, 2),
        # trained from scratch here: keep "!" (BPE id 0) visible to the
        # decoder (the paper configs use the official 'zero_id')
        pad_mask_mode='after_eot',
        trainable=()),
    neck=dict(
        type='RISNeck',
        in_channels=(32, 32, 32),
        text_channels=width,
        out_channels=width,
        nhead=4,
        residual_coordconv=True),
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
