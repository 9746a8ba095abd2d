_base_ = ['./etris-tiny_synthetic.py']
# The quick-start model with AdaptFormer (bottleneck 16, scale 0.1) next to
# the MLP of every block of both towers instead of the Bridger.
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
                module=dict(type='AdaptMLP', in_channels=96, bottleneck=16)),
            text_adaptmlp=dict(
                point='ffn_parallel',
                tower='text',
                input='residual',
                scale=0.1,
                name='adaptmlp',
                module=dict(type='AdaptMLP', in_channels=64, bottleneck=16)))))
