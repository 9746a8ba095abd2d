# ETRIS with a frozen CLIP RN50 (kkakkkka/ETRIS, released config bridge_r50).
# Point both `pretrained` fields to the local OpenAI archive (RN50.pt).
model = dict(
    type='RISEncoderDecoder',
    data_preprocessor=dict(type='RISDataPreprocessor'),
    backbone=dict(
        type='AdaptedEncoderPair',
        visual=dict(
            type='CLIPModifiedResNet',
            layers=(3, 4, 6, 3),
            output_dim=1024,
            heads=32,
            width=64,
            pretrained=None),
        text=dict(type='CLIPTextTransformer', embed_dim=1024, pretrained=None),
        order='lockstep',  # ResNet stage k runs with text block 4k+3
        adapters=dict(
            bridger=dict(
                point='bridge',
                layers=(0, 1, 2),
                name='bridge',
                module=dict(
                    type='BridgerRN',
                    d_img=(512, 1024, 2048),
                    d_model=64,
                    nhead=4,
                    strides=(2, 1, 2)))),
        out_indices=(0, 1),
        # Official training (kkakkkka/ETRIS, engine/engine.py: model.train()):
        # the frozen ResNet BatchNorms (and the random attnpool.connect BN)
        # normalise with batch statistics and update their running
        # statistics. norm_eval=True keeps them in eval mode instead (the
        # *-fixbn configs); it changes training, not the architecture.
        norm_eval=False,
        # Decoder padding mask of the official code: ids == 0 (kkakkkka/ETRIS,
        # model/segmenter.py). BPE id 0 is "!", so a "!" inside a sentence is
        # masked too; 'after_eot' masks only the positions after EOT (use it
        # for models trained with it, not with official checkpoints).
        pad_mask_mode='zero_id',
        trainable=('positional_embedding', )),
    neck=dict(
        type='RISNeck',
        in_channels=(512, 1024, 1024),
        text_channels=1024,
        stride=(2, 1, 2)),
    decode_head=dict(type='RISDecodeHead', text_channels=1024),
    test_cfg=dict(threshold=0.35))

# Training refuses to start while these frozen-encoder files are unset or
# missing (they would train as random networks); the weights of a
# `load_from` / `--resume` checkpoint count as set. Opt out for experiments:
# --cfg-options allow_random_encoders=True
required_pretrained = {
    'model.backbone.visual.pretrained': 'OpenAI CLIP RN50.pt',
    'model.backbone.text.pretrained': 'OpenAI CLIP RN50.pt',
}

# The official scripts convert every BatchNorm to SyncBatchNorm (`sync_bn:
# True` in all released configs), so BN statistics are taken over the global
# batch in distributed training (mmengine: sync_bn='torch').
sync_bn = 'torch'
