_base_ = ['./detris-l_refcoco_mixed.py']
# DETRIS-L* on the mixed data without the images of ANY evaluation split of
# refcoco, refcoco+, refcocog (umd and google) and gRefCOCO
# (exclude_images_of='all'), e.g. to evaluate one model on all of them.
_mixed = dict(
    type='RefCOCODataset',
    data_root='data/',
    split='train',
    mode='train',
    img_size=448,
    word_len=17,
    exclude_images_of='all',
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
