_base_ = './refcoco.py'
# G-Ref, Google splits (train / val).
train_dataloader = dict(
    dataset=dict(dataset='refcocog', split_by='google', word_len=22))
val_dataloader = dict(
    dataset=dict(dataset='refcocog', split_by='google', word_len=22))
test_dataloader = val_dataloader
