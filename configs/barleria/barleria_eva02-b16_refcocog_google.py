_base_ = [
    '../_base_/models/barleria_eva02-b16.py',
    '../_base_/datasets/refcocog_google.py',
    '../_base_/schedules/schedule_50e.py', '../_base_/default_runtime.py'
]
# BarLeRIa uses word_len 17 on every dataset, G-Ref included (official
# configs).
train_dataloader = dict(dataset=dict(word_len=17))
val_dataloader = dict(dataset=dict(word_len=17))
test_dataloader = val_dataloader
