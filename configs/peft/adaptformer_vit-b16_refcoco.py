_base_ = ['../etris/etris_vit-b16_refcoco.py']
# AdaptFormer (bottleneck 64, fixed scale 0.1, fed with the residual stream)
# next to the MLP of every block of the frozen CLIP ViT-B/16 image and text
# towers, with the ETRIS neck and head (mmris/models/adapters/adapt_mlp.py).
model = dict(
    backbone=dict(
        adapters=dict(
            _delete_=True,
            visual_adaptmlp=dict(
                point='ffn_parallel',
                tower='visual',
                input='residual',
                scale=0.1,
                name='adaptmlp',
                module=dict(type='AdaptMLP', in_channels=768, bottleneck=64)),
            text_adaptmlp=dict(
                point='ffn_parallel',
                tower='text',
                input='residual',
                scale=0.1,
                name='adaptmlp',
                module=dict(type='AdaptMLP', in_channels=512, bottleneck=64))),
        trainable=()))
