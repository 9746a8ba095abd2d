_base_ = ['../etris/etris_vit-b16_refcoco.py']
# LoRA (rank 8, alpha 8) on the q and v projections of every block of the
# frozen CLIP ViT-B/16 image and text towers, with the ETRIS neck and head
# (mmris/models/adapters/lora.py). The encoders are entirely frozen.
model = dict(
    backbone=dict(
        adapters=dict(
            _delete_=True,
            visual_lora=dict(
                point='qkv',
                tower='visual',
                name='lora',
                module=dict(type='LoRAQKV', dim=768, rank=8, alpha=8)),
            text_lora=dict(
                point='qkv',
                tower='text',
                name='lora',
                module=dict(type='LoRAQKV', dim=512, rank=8, alpha=8))),
        trainable=()))
