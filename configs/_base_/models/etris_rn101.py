# ETRIS with a frozen CLIP RN101 (released config bridge_r101).
_base_ = './etris_rn50.py'
model = dict(
    backbone=dict(
        visual=dict(layers=(3, 4, 23, 3), output_dim=512),
        text=dict(embed_dim=512)),
    neck=dict(in_channels=(512, 1024, 512), txt_in=512),
    decode_head=dict(word_dim=512))
