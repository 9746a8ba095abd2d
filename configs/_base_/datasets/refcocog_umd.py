_base_ = './refcoco.py'
# G-Ref, UMD splits (train / val / test), expressions up to 22 tokens.
train_dataloader = dict(
    dataset=dict(dataset='refcocog', split_by='umd', word_len=22))
val_dataloader = dict(
    dataset=dict(dataset='refcocog', split_by='umd', word_len=22))
test_dataloader = val_dataloader
