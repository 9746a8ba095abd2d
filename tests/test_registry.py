# Copyright (c) mmris contributors. All rights reserved.
"""Reusing mmris components from a plain MMSeg config."""
from mmengine.config import Config
from mmengine.registry import init_default_scope


def test_component_built_from_plain_mmseg_config(tmp_path):
    cfg_file = tmp_path / 'fcn_with_ris_neck.py'
    cfg_file.write_text(
        "_base_ = 'mmseg::_base_/default_runtime.py'\n"
        "custom_imports = dict(imports=['mmris'], "
        "allow_failed_imports=False)\n"
        "neck = dict(type='RISNeck', in_channels=(8, 8, 8), text_channels=4, "
        "out_channels=8, nhead=2)\n")
    cfg = Config.fromfile(str(cfg_file))
    assert cfg.default_scope == 'mmseg'
    init_default_scope(cfg.default_scope)
    from mmseg.registry import MODELS
    neck = MODELS.build(cfg.neck)
    assert type(neck).__name__ == 'RISNeck'
    # mmseg's own components are still there, unprefixed
    assert MODELS.get('EncoderDecoder') is not None
