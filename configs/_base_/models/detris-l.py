# DETRIS-L (jiaqihuang01/DETRIS, DETRIS_large): DINOv2-L/14 with 4
# registers (dinov2_vitl14_reg4_pretrain.pth), Dense Aligners (m=128) in
# blocks 2,6,...,22, Text Adapters (a=64) in text blocks 1,3,...,11, taps
# after blocks 8 and 16.
_base_ = './detris-b.py'
model = dict(
    backbone=dict(
        visual=dict(arch='vit-l'),
        adapters=dict(
            dense_aligner=dict(
                module=dict(in_channels=1024), layers=[2, 6, 10, 14, 18, 22])),
        out_indices=(8, 16)),
    neck=dict(in_channels=(1024, 1024, 1024)))

# Training refuses to start while these frozen-encoder files are unset or
# missing (they would train as random networks); the weights of a
# `load_from` / `--resume` checkpoint count as set. Opt out for experiments:
# --cfg-options allow_random_encoders=True
required_pretrained = {
    'model.backbone.visual.pretrained':
    'Meta DINOv2 dinov2_vitl14_reg4_pretrain.pth',
    'model.backbone.text.pretrained': 'OpenAI CLIP ViT-B-16.pt',
}
