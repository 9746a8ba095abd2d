_base_ = [
    '../_base_/models/barleria_eva02-b16.py', '../_base_/datasets/refcoco.py',
    '../_base_/schedules/schedule_50e.py', '../_base_/default_runtime.py'
]
