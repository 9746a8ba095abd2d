_base_ = './schedule_50e.py'
# DETRIS-B on refcoco / refcoco+ / refcocog-umd: 65 epochs, milestones
# [35, 55].
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[35, 55], gamma=0.1)
]
train_cfg = dict(max_epochs=65)
