_base_ = ['./etris-tiny_synthetic.py']
# The quick-start model with DETRIS's Dense Aligners and Text Adapters in
# blocks 1 and 3 of its CLIP-shaped towers instead of the Bridger.
model = dict(
    backbone=dict(
        order='text_first',
        adapters=dict(
            _delete_=True,
            dense_aligner=dict(
                point='ffn_parallel',
                tower='visual',
                layers=[1, 3],
                scale=0.2,
                input='norm',
                name='adapter',
                module=dict(
                    type='DenseAligner',
                    in_channels=96,
                    hidden_channels=32,
                    text_channels=64,
                    embed_dims=32,
                    num_heads=4)),
            text_adapter=dict(
                point='ffn_parallel',
                tower='text',
                layers=[1, 3],
                scale=0.2,
                input='residual',
                name='adapter',
                module=dict(
                    type='TextAdapter', in_channels=64, hidden_channels=32)))))
