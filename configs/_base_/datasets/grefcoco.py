# gRefCOCO (generalized RIS: zero, one or several targets per expression)
# read straight from the release files of henghuiding/ReLA:
#   data/grefcoco/grefs(unc).json (or grefs(unc).p),
#   data/grefcoco/instances.json,
#   data/images/train2014/COCO_train2014_*.jpg
# Same pipelines, loaders and input size as RefCOCO; the samples carry
# `no_target` / `num_targets` and are evaluated with ReLA's metrics
# (gIoU, cIoU, N-acc, T-acc, Pr@0.7-0.9). Splits: train, val, testA, testB.
_base_ = './refcoco.py'
gref_dataset = dict(
    type='GRefCOCODataset',
    dataset='grefcoco',
    split_by='unc',
    # multi-target expressions ("the two men on the left") are longer than
    # RefCOCO's: 20 tokens instead of 17
    word_len=20)
train_dataloader = dict(dataset=gref_dataset)
val_dataloader = dict(dataset=gref_dataset)
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='GRISMetric')
test_evaluator = val_evaluator
# The method configs keep the checkpoint with the best gIoU:
# default_hooks = dict(checkpoint=dict(save_best='gIoU'))
