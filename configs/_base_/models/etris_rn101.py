# ETRIS with a frozen CLIP RN101 (released config bridge_r101).
_base_ = './etris_rn50.py'
model = dict(
    backbone=dict(
        visual=dict(layers=(3, 4, 23, 3), output_dim=512),
        text=dict(embed_dim=512)),
    neck=dict(in_channels=(512, 1024, 512), text_channels=512),
    decode_head=dict(text_channels=512))

# Training refuses to start while these frozen-encoder files are unset or
# missing (they would train as random networks); the weights of a
# `load_from` / `--resume` checkpoint count as set. Opt out for experiments:
# --cfg-options allow_random_encoders=True
required_pretrained = {
    'model.backbone.visual.pretrained': 'OpenAI CLIP RN101.pt',
    'model.backbone.text.pretrained': 'OpenAI CLIP RN101.pt',
}
