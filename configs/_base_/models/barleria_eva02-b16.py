# BarLeRIa with a frozen EVA02-CLIP-B/16 (NastrondAd/BarLeRIa, released
# config barleria_v16_eva: eva_clip EVA02-CLIP-B-16 with rope_size 416).
# Point both `pretrained` fields to the local EVA-CLIP release file
# (EVA02_CLIP_B_psz16_s8B.pt). Everything else is the CLIP ViT-B/16 model.
_base_ = './barleria_vit-b16.py'
model = dict(
    backbone=dict(
        visual=dict(
            _delete_=True,
            type='EVA02VisionTransformer',
            img_size=224,  # the 14x14 table, resized to 26x26 on every call
            patch_size=16,
            width=768,
            layers=12,
            heads=12,
            mlp_ratio=2.6667,
            output_dim=512,
            # official: no final norm before `head` (Intertwiner_EVA)
            final_norm=False,
            pretrained=None),
        # eva_clip's text tower: exact GELU, keys under `text.`
        text=dict(act='gelu', layout='eva_clip'),
        # only the text table trains: the EVA image table is `pos_embed`
        trainable=('positional_embedding', )))

required_pretrained = {
    'model.backbone.visual.pretrained': 'EVA02-CLIP EVA02_CLIP_B_psz16_s8B.pt',
    'model.backbone.text.pretrained': 'EVA02-CLIP EVA02_CLIP_B_psz16_s8B.pt',
}
