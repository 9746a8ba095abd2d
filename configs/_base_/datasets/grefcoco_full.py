# gRefCOCO + RefCOCO training (ReLA's `grefcoco_full`): the gRefCOCO and
# RefCOCO (UNC) train splits concatenated; evaluation on gRefCOCO val.
# RefCOCO samples are one-target samples (no_target False). gRefCOCO follows
# RefCOCO's UNC partition of the images, so the two train splits hold no
# gRefCOCO val/test image; RefCOCOg (umd/google) partitions the same COCO
# train2014 images differently: adding its train split leaks gRefCOCO
# val/test images into training.
_base_ = './grefcoco.py'
_full = dict(
    data_root='data/',
    split='train',
    mode='train',
    split_by='unc',
    img_size=416,
    word_len=20,
    pipeline={{_base_.train_pipeline}})
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(**_full, type='GRefCOCODataset', dataset='grefcoco'),
            dict(**_full, type='RefCOCODataset', dataset='refcoco'),
        ]))
