# The quick-start BarLeRIa model on the towers, input size and loss of the
# ETRIS quick start (96 px images, a 96-wide image tower, a 64-wide text
# tower, BCE + Dice), so that it can start from the same pretrained towers
# as the other methods in tools/analysis_tools/compare_methods_quickstart.sh
# (barleria-tiny_synthetic.py uses 64 px images and 64-wide towers).
_base_ = ['./barleria-tiny_synthetic.py']

img_size = 96
width = 64  # text tower, neck and head
vis_width = 96  # image tower
model = dict(
    backbone=dict(
        visual=dict(img_size=img_size, width=vis_width, output_dim=vis_width),
        adapters=dict(
            visual_flow=dict(module=dict(dim=vis_width)),
            visual_flow2=dict(module=dict(dim=vis_width)),
            intertwiner=dict(module=dict(d_img=vis_width)))),
    neck=dict(in_channels=(vis_width, vis_width, vis_width)),
    side_network=dict(clip_channels=vis_width, img_size=img_size),
    decode_head=dict(dice_weight=1.0))

train_dataloader = dict(dataset=dict(img_size=img_size))
val_dataloader = dict(dataset=dict(img_size=img_size))
test_dataloader = val_dataloader
