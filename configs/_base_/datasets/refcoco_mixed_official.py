# DETRIS-L* mixed training, the OFFICIAL recipe (jiaqihuang01/DETRIS,
# tools/mix.py): the refcoco, refcoco+ and refcocog-umd training sets
# concatenated as they are (word_len 17, input 448); validation on refcoco
# val. No image filter: the three datasets draw their images from COCO
# train2014 and split them independently, so this trains on images of the
# other datasets' val/test splits (count them with
# tools/analysis_tools/dataset_overlap.py). Kept to reproduce the paper's
# DETRIS-L* numbers; refcoco_mixed.py is the clean recipe.
_base_ = './refcoco.py'
_mixed = dict(
    type='RefCOCODataset',
    data_root='data/',
    split='train',
    mode='train',
    img_size=448,
    word_len=17,
    pipeline={{_base_.train_pipeline}})
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(**_mixed, dataset='refcoco', split_by='unc'),
            dict(**_mixed, dataset='refcoco+', split_by='unc'),
            dict(**_mixed, dataset='refcocog', split_by='umd'),
        ]))
val_dataloader = dict(dataset=dict(img_size=448))
test_dataloader = val_dataloader
