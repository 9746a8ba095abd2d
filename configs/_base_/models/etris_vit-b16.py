# ETRIS with a frozen CLIP ViT-B/16 (kkakkkka/ETRIS, released config
# bridge_v16). Point both `pretrained` fields to the local OpenAI archive
# (ViT-B-16.pt).
model = dict(
    type='RISEncoderDecoder',
    data_preprocessor=dict(type='RISDataPreprocessor'),
    backbone=dict(
        type='AdaptedEncoderPair',
        visual=dict(
            type='CLIPVisionTransformer',
            img_size=416,
            patch_size=16,
            width=768,
            layers=12,
            heads=12,
            output_dim=512,
            pretrained=None),
        text=dict(type='CLIPTextTransformer', embed_dim=512, pretrained=None),
        order='lockstep',
        # Bridger (model/bridger.py) after CLIP blocks 3, 7 and 11 of both
        # towers.
        adapters=dict(
            bridger=dict(
                point='bridge',
                layers=(3, 7, 11),
                name='bridge',
                module=dict(
                    type='BridgerViT',
                    d_img=(768, 768, 768),
                    d_model=64,
                    nhead=8))),
        out_indices=(3, 7),
        # (no BatchNorm in the frozen towers: norm_eval has no effect)
        norm_eval=False,
        # Decoder padding mask of the official code: ids == 0 (kkakkkka/ETRIS,
        # model/segmenter.py). BPE id 0 is "!", so a "!" inside a sentence is
        # masked too; 'after_eot' masks only the positions after EOT (use it
        # for models trained with it, not with official checkpoints).
        pad_mask_mode='zero_id',
        # ETRIS also trains both positional tables, as the official code
        # (kkakkkka/ETRIS, model/segmenter.py).
        trainable=('positional_embedding', )),
    neck=dict(
        type='RISNeck',
        in_channels=(768, 768, 512),
        text_channels=512,
        stride=(1, 1, 1)),
    decode_head=dict(
        type='RISDecodeHead',
        num_layers=3,
        d_model=512,
        nhead=8,
        dim_ffn=512,
        dropout=0.1,
        text_channels=512),
    test_cfg=dict(threshold=0.35))

# Training refuses to start while these frozen-encoder files are unset or
# missing (they would train as random networks); the weights of a
# `load_from` / `--resume` checkpoint count as set. Opt out for experiments:
# --cfg-options allow_random_encoders=True
required_pretrained = {
    'model.backbone.visual.pretrained': 'OpenAI CLIP ViT-B-16.pt',
    'model.backbone.text.pretrained': 'OpenAI CLIP ViT-B-16.pt',
}

# The official scripts convert every BatchNorm to SyncBatchNorm (`sync_bn:
# True` in all released configs), so BN statistics are taken over the global
# batch in distributed training (mmengine: sync_bn='torch').
sync_bn = 'torch'
