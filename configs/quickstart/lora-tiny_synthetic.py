_base_ = ['./etris-tiny_synthetic.py']
# The quick-start model with LoRA (rank 4) on q and v of every block of both
# towers instead of the Bridger.
model = dict(
    backbone=dict(
        adapters=dict(
            _delete_=True,
            visual_lora=dict(
                point='qkv',
                tower='visual',
                name='lora',
                module=dict(type='LoRAQKV', dim=96, rank=4, alpha=4)),
            text_lora=dict(
                point='qkv',
                tower='text',
                name='lora',
                module=dict(type='LoRAQKV', dim=64, rank=4, alpha=4)))))
