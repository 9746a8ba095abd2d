_base_ = [
    '../_base_/models/etris_vit-b16.py',
    '../_base_/datasets/refcocog_google.py',
    '../_base_/schedules/schedule_50e.py', '../_base_/default_runtime.py'
]
