# ETRIS-RN50 on RefCOCO with the frozen ResNet BatchNorms kept in eval mode
# (norm_eval=True): their running statistics stay the pretrained CLIP ones.
# The paper config etris_rn50_refcoco.py trains them in train mode, as the
# official code (kkakkkka/ETRIS, engine/engine.py: model.train()). Same
# parameters and checkpoint keys; only training differs.
_base_ = './etris_rn50_refcoco.py'
model = dict(backbone=dict(norm_eval=True))
