# Copyright (c) mmris contributors. All rights reserved.
"""Bad data through the full pipeline LoadRefImage -> LoadRefMask ->
LetterboxAffine -> CLIPTokenize -> PackRISInputs (and the tiny model): each
case works correctly or fails naming the file / ref and what was expected.

Covered elsewhere: decoding of grayscale / RGBA / 16-bit PNG and corrupt or
empty files at the transform level (tests/test_datasets/test_transforms.py),
a ref whose ann_id is absent from instances.json
(tests/test_datasets/test_refcoco.py::test_missing_ann_id), tokenizer ids of
empty / unicode / long / "!" sentences (tests/test_datasets/test_tokenizer.py),
corrupt / Python 2 / malicious refs pickles and corrupt instances.json
(tests/test_datasets/test_refer_io.py), degenerate annotations
(tests/test_datasets/test_refcoco.py), damaged roots in the check script
(tests/test_tools/test_check_refer_root.py).
"""
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmris  # noqa: F401
from mmris.datasets import RefCOCODataset
from mmris.datasets.refer_io import RefusedGlobalError
from mmris.datasets.transforms import EOT_TOKEN_ID, SOT_TOKEN_ID
from mmris.models.backbones.adapted_encoder_pair import text_padding_mask
from ._helpers import (ROOT, TEST, TINY_CONFIG, run_tool_inprocess,
                       small_options, tiny_model_cfg)
from ._malicious_refer import REFUSED, malicious_refs

SIZE, L = 64, 17


def _pipeline(train=True):
    init_default_scope('mmseg')
    return Compose([
        dict(type='LoadRefImage'),
        dict(type='LoadRefMask'),
        dict(type='LetterboxAffine', size=SIZE, warp_mask=train),
        dict(type='CLIPTokenize', context_length=L),
        dict(type='PackRISInputs')
    ])


def _results(img_path, h, w, text='the red square on the left', box=None):
    x0, y0, x1, y1 = box or (w * 0.25, h * 0.25, w * 0.75, h * 0.75)
    return dict(
        img_path=str(img_path),
        segmentation=[[x0, y0, x1, y0, x1, y1, x0, y1]],
        height=h,
        width=w,
        text=text,
        ref_id=7,
        sent_id=70,
        ann_id=700,
        image_id=1)


def _write(path, array):
    assert cv2.imwrite(str(path), array)
    return path


IMAGES = {
    'gray8':
    lambda: np.full((30, 40), 90, np.uint8),
    'rgba':
    lambda: np.dstack(
        [np.full((30, 40, 3), 60, np.uint8),
         np.full((30, 40), 7, np.uint8)]),
    'gray16':
    lambda: np.full((30, 40), 25600, np.uint16),
    'rgb16':
    lambda: np.full((30, 40, 3), 65535, np.uint16),
    '1x1':
    lambda: np.full((1, 1, 3), 200, np.uint8),
    '6000x4000':
    lambda: np.full((4000, 6000, 3), 30, np.uint8),
}


@pytest.mark.parametrize('kind', list(IMAGES))
def test_image_kinds_full_pipeline(kind, tmp_path):
    ext = '.jpg' if kind == '6000x4000' else '.png'
    path = _write(tmp_path / f'{kind}{ext}', IMAGES[kind]())
    h, w = IMAGES[kind]().shape[:2]
    box = (0, 0, w, h) if kind == '1x1' else None
    train = _pipeline(True)(_results(path, h, w, box=box))
    img, ds = train['inputs'], train['data_samples']
    assert img.dtype == torch.uint8 and img.shape == (3, SIZE, SIZE)
    assert ds.ori_shape == (h, w) and ds.img_path == str(path)
    gt = ds.gt_mask.data
    assert gt.shape == (1, SIZE, SIZE) and 0 <= gt.min() <= gt.max() <= 1
    assert gt.max() > 0.99  # the object survived the warp
    # letterbox centre pixel = image content (not border)
    centre = img[:, SIZE // 2, SIZE // 2].tolist()
    if kind == '1x1':
        # one pixel blown up to S x S: the corner-mapped affine samples it
        # blended with the CLIP-mean border, strictly between the two
        assert all(b + 5 < c < 200 for b, c in zip((122, 116, 104), centre))
    else:
        expected = {
            'gray8': [90] * 3,
            'rgba': [60] * 3,
            'gray16': [100] * 3,
            'rgb16': [255] * 3,
            '6000x4000': [30] * 3
        }[kind]
        assert np.allclose(centre, expected, atol=2), centre
    test = _pipeline(False)(_results(path, h, w, box=box))
    assert test['data_samples'].gt_sem_seg.data.shape == (1, h, w)


def _copy_root(synthetic_root, tmp_path):
    root = tmp_path / 'root'
    shutil.copytree(synthetic_root, root)
    return str(root)


def _dataset(root, mode='train'):
    init_default_scope('mmseg')
    return RefCOCODataset(
        root,
        split='val',
        mode=mode,
        img_size=SIZE,
        word_len=L,
        pipeline=[
            dict(type='LoadRefImage'),
            dict(type='LoadRefMask'),
            dict(type='LetterboxAffine', warp_mask=mode == 'train'),
            dict(type='CLIPTokenize'),
            dict(type='PackRISInputs')
        ])


def test_missing_and_corrupt_image_through_dataset(synthetic_root, tmp_path):
    root = _copy_root(synthetic_root, tmp_path)
    ds = _dataset(root)
    info = ds.get_data_info(0)
    ds[0]  # fine before damage
    path = info['img_path']
    with open(path, 'wb') as f:
        f.write(b'\xff\xd8\xff\xe0 truncated jpeg')
    with pytest.raises(OSError, match=f'{osp.basename(path)}.*corrupt'):
        ds[0]
    os.remove(path)
    with pytest.raises(
            FileNotFoundError,
            match=f'Image file not found: .*{osp.basename(path)}'):
        ds[0]


def _info_with_aspect(ds):
    """Index and data info of a sample whose image is not square."""
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        if info['height'] != info['width']:
            return i, info
    raise AssertionError('no non-square image')


def _save_with_orientation(path, rgb, orientation):
    from PIL import Image
    exif = Image.Exif()
    exif[0x0112] = orientation  # EXIF Orientation
    Image.fromarray(rgb).save(path, exif=exif.tobytes(), quality=95)


def test_exif_rotated_jpeg_stays_in_annotation_pixel_order(
        synthetic_root, tmp_path):
    """COCO annotations are in the stored pixel order of the JPEG; OpenCV
    would rotate an Orientation=6 file by 90 degrees (misaligned target)."""
    root = _copy_root(synthetic_root, tmp_path)
    ds = _dataset(root, mode='test')
    idx, info = _info_with_aspect(ds)
    h, w, path = info['height'], info['width'], info['img_path']
    stored = cv2.imread(path)[..., ::-1]
    _save_with_orientation(path, np.ascontiguousarray(stored), 6)
    assert cv2.imread(path).shape[:2] == (w, h)  # what OpenCV does
    expected = cv2.imread(path, cv2.IMREAD_COLOR
                          | cv2.IMREAD_IGNORE_ORIENTATION)[..., ::-1]
    init_default_scope('mmseg')
    loaded = Compose([dict(type='LoadRefImage'),
                      dict(type='LoadRefMask')])(
                          dict(info))
    assert loaded['img'].shape[:2] == loaded['gt_seg_map'].shape == (h, w)
    assert np.array_equal(loaded['img'], expected)
    # the object's pixels are where the annotation says: the masked region
    # is uniform (one shape colour), not half background
    obj = loaded['img'][loaded['gt_seg_map'] > 0].astype(float)
    assert obj.std(axis=0).max() < 20
    # full pipeline: ground truth at the annotation size
    packed = ds[idx]['data_samples']
    assert packed.ori_shape == (h, w)
    assert packed.gt_sem_seg.data.shape == (1, h, w)
    # a free image (inference on a photo) is still shown upright
    from mmris.datasets.transforms import LoadRefImage
    assert LoadRefImage()(dict(img_path=path))['img'].shape[:2] == (w, h)


@pytest.mark.parametrize('mode', ['train', 'test'])
def test_resized_image_fails_naming_file_ref_and_sizes(synthetic_root,
                                                       tmp_path, mode):
    root = _copy_root(synthetic_root, tmp_path)
    ds = _dataset(root, mode=mode)
    info = ds.get_data_info(0)
    h, w, path = info['height'], info['width'], info['img_path']
    cv2.imwrite(path, cv2.resize(cv2.imread(path), (w + 8, h)))
    with pytest.raises(ValueError) as err:
        ds[0]
    msg = str(err.value)
    assert osp.basename(path) in msg and f"ref_id {info['ref_id']}" in msg
    assert f'{h}x{w + 8}' in msg and f'{h}x{w}' in msg


def _union_baseline(root):
    import runpy
    tool = runpy.run_path(
        osp.join(ROOT, 'tools', 'analysis_tools', 'union_baseline.py'))
    return tool['union_baseline'](root, 'refcoco', 'unc', 'val')


def _check_refer_root(root, capsys):
    import runpy
    tool = runpy.run_path(
        osp.join(ROOT, 'tools', 'dataset_converters', 'check_refer_root.py'))
    assert tool['main']([root, '--datasets', 'refcoco']) == 1
    out = capsys.readouterr().out
    assert 'All checks passed' not in out
    return out


#: entry point -> payload kind (every kind is tested on load_refs in
#: tests/test_datasets/test_refer_io.py).
ENTRY_POINTS = {
    'RefCOCODataset': 'py3_reduce',
    'tools/test.py': 'py2_os_system',
    'check_refer_root.py': 'py2_builtin_eval',
    'union_baseline.py': 'py2_os_system',
}


@pytest.mark.parametrize('entry', list(ENTRY_POINTS))
def test_malicious_refs_refused_at_every_entry_point(synthetic_root, tmp_path,
                                                     monkeypatch, capsys,
                                                     entry):
    """A refs(unc).p from a mirror must not run code anywhere."""
    root = tmp_path / 'root'
    (root / 'refcoco').mkdir(parents=True)
    shutil.copy(
        osp.join(synthetic_root, 'refcoco', 'instances.json'),
        root / 'refcoco')
    (root / 'images').symlink_to(osp.join(synthetic_root, 'images'))
    marker = tmp_path / 'pwned'
    refs_file = root / 'refcoco' / 'refs(unc).p'
    refs_file.write_bytes(malicious_refs(ENTRY_POINTS[entry], str(marker)))
    if entry == 'check_refer_root.py':  # reports, exits with 1
        text = _check_refer_root(str(root), capsys)
    else:
        with pytest.raises(RefusedGlobalError) as info:
            if entry == 'RefCOCODataset':
                RefCOCODataset(str(root), split='val', mode='test')
            elif entry == 'tools/test.py':
                run_tool_inprocess(
                    TEST,
                    [TINY_CONFIG, 'none', '--work-dir', tmp_path / 'work'] +
                    small_options(root), monkeypatch)
            else:
                _union_baseline(str(root))
        text = str(info.value)
    assert str(refs_file) in text
    assert f'"{REFUSED[ENTRY_POINTS[entry]]}"' in text
    assert not marker.exists()


@pytest.fixture(scope='module')
def tiny_model():
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(32))
    model.eval()
    return model


def _forward(model, packed):
    data = model.data_preprocessor(
        dict(
            inputs=[p['inputs'] for p in packed],
            data_samples=[p['data_samples'] for p in packed]), False)
    with torch.no_grad():
        return model._forward(data['inputs'], data['data_samples'])


SENTENCES = {
    'empty': '',
    'words500': ' '.join(['left'] * 500),
    'emoji': 'the 😀 dog 🐕‍🦺 on the right',
    'non_ascii': 'le garçon à gauche, 左边的男人, Ελληνικά',
    'exclamation': 'the man !( on the left',
}


def test_sentences_through_pipeline_and_model(tmp_path, tiny_model):
    path = _write(tmp_path / 'img.png', np.full((30, 40, 3), 90, np.uint8))
    packed = {
        k: _pipeline(True)(_results(path, 30, 40, text=t))
        for k, t in SENTENCES.items()
    }
    ids = {k: p['data_samples'].text_ids.tolist() for k, p in packed.items()}
    # empty sentence: works, [SOT, EOT, 0, ...]
    assert ids['empty'] == [SOT_TOKEN_ID, EOT_TOKEN_ID] + [0] * (L - 2)
    # 500 words: truncated to L, EOT kept as the last id
    assert ids['words500'][0] == SOT_TOKEN_ID
    assert ids['words500'][-1] == EOT_TOKEN_ID and 0 not in ids['words500']
    for k in ('emoji', 'non_ascii', 'exclamation'):
        assert ids[k][0] == SOT_TOKEN_ID and ids[k].count(EOT_TOKEN_ID) == 1
    for k, p in packed.items():
        assert p['data_samples'].text == SENTENCES[k]  # kept for messages
    logits = _forward(tiny_model, list(packed.values()))
    assert torch.isfinite(logits).all()
    assert logits.shape[0] == len(SENTENCES)


def test_exclamation_id0_is_not_padding(tmp_path, tiny_model):
    """The official code (kkakkkka/ETRIS, model/segmenter.py): "!" inside a
    sentence is BPE id 0; the padding mask is
    computed from the EOT position, so the word is attended to, and the
    output differs from the official ``ids == 0`` masking."""
    path = _write(tmp_path / 'img.png', np.full((30, 40, 3), 90, np.uint8))
    bang = _pipeline(True)(
        _results(path, 30, 40, text=SENTENCES['exclamation']))
    plain = _pipeline(True)(_results(path, 30, 40, text='the man on the left'))
    ids = bang['data_samples'].text_ids
    eot = int((ids == EOT_TOKEN_ID).nonzero()[0, 0])
    zero_inside = (ids[:eot] == 0).nonzero()[:, 0].tolist()
    assert zero_inside, ids  # id 0 inside the sentence
    mask = text_padding_mask(ids[None], 'after_eot')[0]
    assert not mask[:eot + 1].any() and mask[eot + 1:].all()
    assert (ids[None] == 0)[0, zero_inside].all()  # what the official masks

    backbone = tiny_model.backbone
    assert backbone.pad_mask_mode == 'after_eot'
    out = _forward(tiny_model, [bang, plain])
    backbone.pad_mask_mode = 'zero_id'
    try:
        official = _forward(tiny_model, [bang, plain])
    finally:
        backbone.pad_mask_mode = 'after_eot'
    assert not torch.allclose(out[0], official[0])  # "!" case differs
    assert torch.allclose(out[1], official[1])  # no id 0: identical
