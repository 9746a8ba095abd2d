_base_ = ['../etris/etris_vit-b16_refcoco.py']
# A cross combination of the paper parts: DETRIS's Dense Aligners and Text
# Adapters (as configured in DETRIS-B) on the frozen CLIP ViT-B/16 towers of
# ETRIS, with the ETRIS neck and head. Nothing new is written: the Dense
# Aligner reads the patch grid and the position of the first patch (after
# CLIP's single class token, where DINOv2 has 5 tokens) from its context.
model = dict(
    backbone=dict(
        order='text_first',
        adapters=dict(
            _delete_=True,
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
            text_adapter=dict(
                point='ffn_parallel',
                tower='text',
                layers=[1, 3, 5, 7, 9, 11],
                scale=0.2,
                input='residual',
                name='adapter',
                module=dict(
                    type='TextAdapter', in_channels=512, hidden_channels=64))),
        trainable=()))
