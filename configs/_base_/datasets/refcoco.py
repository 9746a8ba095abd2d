# RefCOCO (UNC splits) read straight from the REFER files:
#   data/refcoco/refs(unc).p, data/refcoco/instances.json,
#   data/images/train2014/COCO_train2014_*.jpg
dataset_type = 'RefCOCODataset'
data_root = 'data/'
ref_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    dataset='refcoco',
    split_by='unc',
    img_size=416,
    word_len=17)
train_pipeline = [
    dict(type='LoadRefImage'),
    dict(type='LoadRefMask'),
    dict(type='LetterboxAffine'),
    dict(type='CLIPTokenize'),
    dict(type='PackRISInputs')
]
test_pipeline = [
    dict(type='LoadRefImage'),
    dict(type='LoadRefMask'),
    dict(type='LetterboxAffine', warp_mask=False),
    dict(type='CLIPTokenize'),
    dict(type='PackRISInputs')
]
train_dataloader = dict(
    batch_size=4,  # per GPU: 8 GPUs x 4 = the official global batch 32
    num_workers=4,
    persistent_workers=True,
    drop_last=True,
    # DefaultSampler's order; its indices carry (seed, epoch) into the
    # loader workers, so the sentence draw is exact on resume
    sampler=dict(type='RISEpochSampler', shuffle=True),
    dataset=dict(
        **ref_dataset, split='train', mode='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        **ref_dataset, split='val', mode='test', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='RISMetric')
test_evaluator = val_evaluator
