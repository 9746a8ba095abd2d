_base_ = './refcoco.py'
# RefCOCO+ (UNC). The official code selects models on testB (their refcoco+
# configs); mmris validates on val: set `val_dataloader.dataset.split='testB'`
# to match.
train_dataloader = dict(dataset=dict(dataset='refcoco+'))
val_dataloader = dict(dataset=dict(dataset='refcoco+'))
test_dataloader = val_dataloader
