_base_ = ['./etris-tiny_synthetic.py']
# The quick-start model with VPT-deep (4 prompt tokens per image block)
# instead of the Bridger.
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
                    num_tokens=4,
                    embed_dims=96,
                    num_layers=4,
                    patch_size=8)))))
