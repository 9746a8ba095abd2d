# DETRIS-B (DETRIS_base): frozen DINOv2-B/14 with 4 registers + frozen CLIP
# ViT-B/16 text tower, Dense Aligners (m=128) and Text Adapters (a=64) in
# blocks 1,3,5,7,9,11. Point `pretrained` to the local Meta / OpenAI files
# (dinov2_vitb14_reg4_pretrain.pth, ViT-B-16.pt).
model = dict(
    type='RISEncoderDecoder',
    data_preprocessor=dict(type='RISDataPreprocessor'),
    backbone=dict(
        type='AdaptedEncoderPair',
        # img_size 526 -> 37x37 positional table, as the official builder.
        visual=dict(
            type='DINOv2',
            arch='vit-b',
            img_size=526,
            patch_size=14,
            num_register_tokens=4,
            pretrained=None),
        text=dict(type='CLIPTextTransformer', embed_dim=512, pretrained=None),
        order='text_first',
        adapters=dict(
            # Dense Aligner (model/adapter.py) next to the FFN of DINOv2
            # blocks, fed with norm2(x), times 0.2 and LayerScale
            dense_aligner=dict(
                point='ffn_parallel',
                tower='visual',
                layers=[1, 3, 5, 7, 9, 11],
                scale=0.2,
                input='norm',
                name='adapter',
                module=dict(
                    type='DenseAligner',
                    in_channels=768,
                    hidden_channels=128,
                    text_channels=512,
                    embed_dims=128,
                    num_heads=8,
                    dropout=0.1)),
            # Text Adapter next to the FFN of CLIP text blocks, fed with the
            # residual stream, times 0.2
            text_adapter=dict(
                point='ffn_parallel',
                tower='text',
                layers=[1, 3, 5, 7, 9, 11],
                scale=0.2,
                input='residual',
                name='adapter',
                module=dict(
                    type='TextAdapter', in_channels=512, hidden_channels=64))),
        out_indices=(4, 8),  # raw block outputs; the head map is norm(x)
        # (no BatchNorm in the frozen towers: norm_eval has no effect)
        norm_eval=False,
        # Decoder padding mask of the official code: ids == 0 (kkakkkka/ETRIS,
        # model/segmenter.py). BPE id 0 is "!", so a "!" inside a sentence is
        # masked too; 'after_eot' masks only the positions after EOT (use it
        # for models trained with it, not with official checkpoints).
        pad_mask_mode='zero_id',
        trainable=()),  # the text positional table is frozen in DETRIS
    neck=dict(
        type='RISNeck',
        in_channels=(768, 768, 768),
        text_channels=512,
        stride=(1, 1, 1),
        residual_coordconv=True),
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
    'model.backbone.visual.pretrained':
    'Meta DINOv2 dinov2_vitb14_reg4_pretrain.pth',
    'model.backbone.text.pretrained': 'OpenAI CLIP ViT-B-16.pt',
}

# The official scripts convert every BatchNorm to SyncBatchNorm (`sync_bn:
# True` in all released configs), so BN statistics are taken over the global
# batch in distributed training (mmengine: sync_bn='torch').
sync_bn = 'torch'
