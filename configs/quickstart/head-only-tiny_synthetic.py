_base_ = ['./etris-tiny_synthetic.py']
# The quick-start towers with the neck and head and no adapter: trained
# whole, it is the "pretrained" model of
# tools/analysis_tools/compare_methods_quickstart.sh; with frozen towers it is
# the head-only baseline of that comparison.
model = dict(backbone=dict(adapters=dict(_delete_=True)))
