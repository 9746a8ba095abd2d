_base_ = ['./barleria-tiny_synthetic.py']
# The quick-start BarLeRIa model with an EVA02-shaped image tower (sub-LN
# attention with 2-D rotary embeddings, SwiGLU) and a GELU text tower, all
# trained from scratch on the synthetic shapes.
model = dict(
    backbone=dict(
        visual=dict(
            _delete_=True,
            type='EVA02VisionTransformer',
            img_size=64,
            patch_size=8,
            width=64,
            layers=4,
            heads=4,
            mlp_ratio=2.6667,
            output_dim=64,
            rope_ref_grid=8),
        text=dict(act='gelu')))
