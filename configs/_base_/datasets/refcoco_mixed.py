# Mixed training WITHOUT evaluation images (mmris's default mixed recipe):
# the refcoco, refcoco+ and refcocog-umd training sets concatenated as in
# DETRIS-L* (jiaqihuang01/DETRIS, tools/mix.py; word_len 17, input 448), but
# each leaves out every ref whose image is in an evaluation split of
# refcoco (val, testA, testB), refcoco+ (val, testA, testB) or refcocog-umd
# (val, test): the splits a mixed model is evaluated on. The three datasets
# draw their images from COCO train2014 and split them independently; the
# count of what is left out is logged when the datasets load. To leave out
# the evaluation images of refcocog-google and gRefCOCO too, use
# exclude_images_of='all' (configs/detris/detris-l_refcoco_mixed_strict.py).
# The official (leaking) recipe: refcoco_mixed_official.py.
_base_ = './refcoco.py'
_mixed = dict(
    type='RefCOCODataset',
    data_root='data/',
    split='train',
    mode='train',
    img_size=448,
    word_len=17,
    exclude_images_of=['refcoco', 'refcoco+', 'refcocog_umd'],
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
