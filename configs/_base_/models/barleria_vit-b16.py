# BarLeRIa with a frozen CLIP ViT-B/16 (NastrondAd/BarLeRIa, released config
# barleria_v16). Point both `pretrained` fields to the local OpenAI archive
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
        adapters=dict(
            # Local tuning (snf.py): a flow pair replaces both shortcuts of
            # every block of both towers.
            visual_flow=dict(
                point='attn_shortcut',
                tower='visual',
                name='flow',
                module=dict(
                    type='ShortcutNormalizingFlow', dim=768, flow_length=4)),
            visual_flow2=dict(
                point='ffn_shortcut',
                tower='visual',
                name='flow2',
                module=dict(
                    type='ShortcutNormalizingFlow', dim=768, flow_length=4)),
            text_flow=dict(
                point='attn_shortcut',
                tower='text',
                name='flow',
                module=dict(
                    type='ShortcutNormalizingFlow', dim=512, flow_length=4)),
            text_flow2=dict(
                point='ffn_shortcut',
                tower='text',
                name='flow2',
                module=dict(
                    type='ShortcutNormalizingFlow', dim=512, flow_length=4)),
            # Intertwining (model/intertwiner.py): L projected text tokens
            # after the visual CLS, before block 0.
            intertwiner=dict(
                point='tokens',
                tower='visual',
                layers=[0],
                name='token_injector',
                module=dict(type='Intertwiner', text_channels=512,
                            d_img=768))),
        out_indices=(3, 7),
        # CLIP blocks feeding the side network (SIDE_ADAPTER.FUSION_MAP).
        side_indices=(0, 3, 6, 9),
        # (no BatchNorm in the frozen towers: norm_eval has no effect)
        norm_eval=False,
        # Decoder padding mask of the official code: ids == 0 (kkakkkka/ETRIS,
        # model/segmenter.py). BPE id 0 is "!", so a "!" inside a sentence is
        # masked too; 'after_eot' masks only the positions after EOT (use it
        # for models trained with it, not with official checkpoints).
        pad_mask_mode='zero_id',
        # Both positional tables train, as in the official code
        # (NastrondAd/BarLeRIa, model/segmenter.py).
        trainable=('positional_embedding', )),
    neck=dict(
        type='RISNeck',
        in_channels=(768, 768, 512),
        text_channels=512,
        stride=(1, 1, 1)),
    # Global side tuning (model/side_adapter/). prior_norm='per_sample'
    # makes every prediction independent of its batch-mates (equal to the
    # official model at batch 1); 'batch_axis' reproduces the official
    # batch-axis normalisation for batch > 1.
    side_network=dict(
        type='BarLeRIaSideNetwork',
        out_channels=512,
        clip_channels=768,
        text_channels=512,
        img_size=416,
        patch_size=16,
        embed_dim=144,
        depth=8,
        num_heads=3,
        num_queries=128,
        fusion_blocks=(0, 1, 2, 3),
        out_blocks=(8, ),
        prior_norm='per_sample',
        loss_weight=1.0),
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
