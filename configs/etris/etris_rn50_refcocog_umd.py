_base_ = [
    '../_base_/models/etris_rn50.py', '../_base_/datasets/refcocog_umd.py',
    '../_base_/schedules/schedule_50e.py', '../_base_/default_runtime.py'
]
