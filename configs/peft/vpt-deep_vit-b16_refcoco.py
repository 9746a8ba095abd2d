_base_ = ['../etris/etris_vit-b16_refcoco.py']
# VPT-deep: 10 learned tokens after the class token before every block of
# the frozen CLIP ViT-B/16 image tower, each block its own, with the ETRIS
# neck and head (mmris/models/adapters/visual_prompts.py). The text tower is
# entirely frozen.
model = dict(
    backbone=dict(
        adapters=dict(
            _delete_=True,
            prompts=dict(
                point='tokens',
                tower='visual',
                replace=True,
                name='prompts',
                module=dict(
                    type='DeepVisualPrompts',
                    num_tokens=10,
                    embed_dims=768,
                    num_layers=12,
                    patch_size=16))),
        trainable=()))
