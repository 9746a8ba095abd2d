# DETRIS-L* mixed training (jiaqihuang01/DETRIS, tools/mix.py): refcoco +
# refcoco+ + refcocog-umd train sets concatenated (word_len 17, input 448);
# validation on refcoco val.
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
