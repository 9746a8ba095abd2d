# Copyright (c) mmris contributors. All rights reserved.
import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from pycocotools import mask as mask_utils

import mmris  # noqa: F401
from mmris.datasets import RefCOCODataset
from mmris.datasets.transforms import (CLIP_BORDER, CLIP_MEAN, CLIP_STD,
                                       LetterboxAffine, LoadRefImage,
                                       LoadRefMask, PackRISInputs,
                                       decode_segmentation,
                                       get_letterbox_affine)


def _blob_mask(h, w, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(3):
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (max(1, int(w * rng.uniform(0.1, 0.4))),
                max(1, int(h * rng.uniform(0.1, 0.4))))
        cv2.ellipse(mask, center, axes, float(rng.uniform(0, 180)), 0, 360, 1,
                    -1)
    return mask


def _iou(a, b):
    return np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1)


def test_clip_constants():
    np.testing.assert_allclose(CLIP_MEAN, CLIP_BORDER, atol=0.01)
    np.testing.assert_allclose(
        CLIP_STD, (68.5005, 66.6322, 70.3232), atol=1e-3)


@pytest.mark.parametrize('hw', [(100, 60), (60, 100), (37, 211), (416, 416),
                                (500, 300)])
def test_letterbox_round_trip(hw):
    h, w = hw
    size = 416
    mask = _blob_mask(h, w)
    img = np.zeros((h, w, 3), np.uint8)
    out = LetterboxAffine(size=size)(dict(img=img, gt_seg_map=mask.copy()))
    assert out['img'].shape == (size, size, 3) and out['img'].dtype == np.uint8
    assert out['img_shape'] == (size, size) and out['ori_shape'] == (h, w)
    assert 'gt_seg_map' not in out
    gt_mask = out['gt_mask']
    assert gt_mask.dtype == np.float32 and gt_mask.shape == (size, size)
    assert 0 <= gt_mask.min() and gt_mask.max() <= 1
    # inverse warp (as the official test: cubic, then threshold 0.35)
    back = cv2.warpAffine(
        gt_mask,
        out['inv_affine'], (w, h),
        flags=cv2.INTER_CUBIC,
        borderValue=0)
    assert _iou(back > 0.35, mask > 0) >= 0.98
    # matrices: corners and inverse
    s = min(size / h, size / w)
    bx, by = (size - w * s) / 2, (size - h * s) / 2
    np.testing.assert_allclose(
        out['affine'] @ [w, 0, 1], [bx + w * s, by], atol=1e-3)
    np.testing.assert_allclose(
        out['affine'] @ [0, h, 1], [bx, by + h * s], atol=1e-3)
    full = np.vstack([out['affine'], [0, 0, 1]])
    full_inv = np.vstack([out['inv_affine'], [0, 0, 1]])
    np.testing.assert_allclose(full @ full_inv, np.eye(3), atol=1e-4)


def test_letterbox_border_and_degenerate():
    img = np.full((10, 40, 3), 7, np.uint8)
    out = LetterboxAffine(size=64)(dict(img=img))
    expected = np.round(np.array(CLIP_MEAN)).astype(np.uint8)
    assert (out['img'][0, 0] == expected).all()
    assert (out['img'][-1, -1] == expected).all()
    assert (out['img'][32, 32] == 7).all()
    assert 'gt_mask' not in out
    # 1x1 image must not crash
    out = LetterboxAffine(size=32)(
        dict(
            img=np.full((1, 1, 3), 200, np.uint8),
            gt_seg_map=np.ones((1, 1), np.uint8)))
    assert out['img'].shape == (32, 32, 3) and out['gt_mask'].shape == (32, 32)
    assert out['gt_mask'].max() > 0.5
    # rectangular output size and argument checks
    out = LetterboxAffine(size=(32, 48))(dict(img=img))
    assert out['img'].shape == (32, 48, 3)
    with pytest.raises(ValueError):
        LetterboxAffine(size=0)
    with pytest.raises(ValueError):
        LetterboxAffine(border=(1, 2))
    with pytest.raises(ValueError):
        get_letterbox_affine((0, 5), 16)


def test_letterbox_soft_mask_and_eval_mode():
    mask = _blob_mask(50, 70, seed=3)
    res = LetterboxAffine(size=100)(
        dict(img=np.zeros((50, 70, 3), np.uint8), gt_seg_map=mask.copy()))
    soft = res['gt_mask']
    assert ((soft > 0) & (soft < 1)).any()  # not re-binarised
    # the exact official recipe: 0/255 uint8 warped bilinearly, then /255
    ref = cv2.warpAffine(
        mask * 255,
        res['affine'], (100, 100),
        flags=cv2.INTER_LINEAR,
        borderValue=0) / 255.
    np.testing.assert_allclose(soft, ref, atol=1e-6)
    kept = LetterboxAffine(
        size=100, keep_gt_seg_map=True)(
            dict(img=np.zeros((50, 70, 3), np.uint8), gt_seg_map=mask.copy()))
    assert kept['gt_seg_map'].shape == (50, 70) and 'gt_mask' in kept
    ev = LetterboxAffine(
        size=100, warp_mask=False)(
            dict(img=np.zeros((50, 70, 3), np.uint8), gt_seg_map=mask.copy()))
    assert 'gt_mask' not in ev and (ev['gt_seg_map'] == mask).all()


def test_load_image_variants(tmp_path):
    loader = LoadRefImage()
    rgb = np.zeros((5, 6, 3), np.uint8)
    rgb[..., 0] = 250  # red in RGB
    cv2.imwrite(str(tmp_path / 'red.png'), rgb[..., ::-1])
    img = loader(dict(img_path=str(tmp_path / 'red.png')))['img']
    assert img.dtype == np.uint8 and img.shape == (5, 6, 3)
    assert img[0, 0].tolist() == [250, 0, 0]

    cv2.imwrite(str(tmp_path / 'gray.png'), np.full((4, 7), 90, np.uint8))
    res = loader(dict(img_path=str(tmp_path / 'gray.png')))
    assert res['img'].shape == (4, 7, 3) and (res['img'] == 90).all()
    assert res['ori_shape'] == (4, 7) and res['img_shape'] == (4, 7)

    bgra = np.zeros((3, 3, 4), np.uint8)
    bgra[..., 1] = 120
    bgra[..., 3] = 5
    cv2.imwrite(str(tmp_path / 'rgba.png'), bgra)
    img = loader(dict(img_path=str(tmp_path / 'rgba.png')))['img']
    assert img.shape == (3, 3, 3) and img[0, 0].tolist() == [0, 120, 0]

    cv2.imwrite(str(tmp_path / 'g16.png'), np.full((4, 4), 25600, np.uint16))
    img = loader(dict(img_path=str(tmp_path / 'g16.png')))['img']
    assert img.dtype == np.uint8 and img.shape == (4, 4, 3)
    assert (img == 100).all()
    c16 = np.zeros((4, 4, 3), np.uint16)
    c16[..., 2] = 65535  # red channel in BGR order
    cv2.imwrite(str(tmp_path / 'c16.png'), c16)
    img = loader(dict(img_path=str(tmp_path / 'c16.png')))['img']
    assert img.dtype == np.uint8 and img[0, 0].tolist() == [255, 0, 0]


def test_load_image_errors(tmp_path):
    bad = tmp_path / 'corrupt.jpg'
    bad.write_bytes(b'\xff\xd8\xff\xe0 definitely not a jpeg')
    with pytest.raises(OSError, match='corrupt.jpg'):
        LoadRefImage()(dict(img_path=str(bad)))
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    with pytest.raises(OSError, match='empty.jpg'):
        LoadRefImage()(dict(img_path=str(empty)))
    with pytest.raises(FileNotFoundError, match='nope.jpg'):
        LoadRefImage()(dict(img_path=str(tmp_path / 'nope.jpg')))


def test_load_mask_polygon_and_rle():
    h, w = 20, 30
    poly = [[2, 2, 12, 2, 12, 10, 2, 10]]
    res = LoadRefMask()(dict(segmentation=poly, height=h, width=w))
    m = res['gt_seg_map']
    assert m.dtype == np.uint8 and m.shape == (h, w)
    assert set(np.unique(m).tolist()) == {0, 1}
    assert m[5, 5] == 1 and m[15, 20] == 0
    assert res['seg_fields'] == ['gt_seg_map']
    # overlapping parts: union, still {0, 1}
    two = poly + [[8, 6, 20, 6, 20, 16, 8, 16]]
    m2 = decode_segmentation(two, h, w)
    assert m2.max() == 1 and m2[8, 10] == 1 and m2[14, 18] == 1
    assert m2.sum() > m.sum()
    # RLE: uncompressed and compressed give the same mask
    ref = np.zeros((h, w), np.uint8, order='F')
    ref[3:9, 4:15] = 1
    rle = mask_utils.encode(ref)
    assert (decode_segmentation(rle, h, w) == ref).all()
    rle_str = dict(size=rle['size'], counts=rle['counts'].decode())
    assert (decode_segmentation(rle_str, h, w) == ref).all()
    counts, flat, prev, run = [], ref.flatten(order='F'), 0, 0
    for v in flat:
        if v != prev:
            counts.append(run)
            run, prev = 0, v
        run += 1
    counts.append(run)
    unc = dict(size=[h, w], counts=counts)
    assert (decode_segmentation(unc, h, w) == ref).all()
    with pytest.raises(KeyError):
        LoadRefMask()(dict(segmentation=poly))
    with pytest.raises(TypeError):
        decode_segmentation(3, h, w)


def test_pack_inputs():
    img = np.random.default_rng(0).integers(0, 255, (8, 8, 3), np.uint8)
    results = dict(
        img=img,
        text_ids=np.arange(17),
        gt_mask=np.full((8, 8), 0.5, np.float32),
        gt_seg_map=np.eye(5, 6, dtype=np.uint8),
        text='dog',
        ref_id=3,
        sent_id=4,
        img_shape=(8, 8),
        ori_shape=(5, 6),
        unrelated=1)
    packed = PackRISInputs()(results)
    inputs, ds = packed['inputs'], packed['data_samples']
    assert inputs.dtype == torch.uint8 and inputs.shape == (3, 8, 8)
    assert (inputs.permute(1, 2, 0).numpy() == img).all()
    assert ds.text_ids.dtype == torch.int64 and ds.text_ids.shape == (17, )
    assert ds.gt_mask.data.dtype == torch.float32
    assert ds.gt_mask.data.shape == (1, 8, 8)
    assert ds.gt_sem_seg.data.dtype == torch.uint8
    assert ds.gt_sem_seg.data.shape == (1, 5, 6)
    assert ds.text == 'dog' and ds.ref_id == 3 and ds.ori_shape == (5, 6)
    assert 'unrelated' not in ds.metainfo_keys()
    assert 'text_ids' in ds.keys()
    moved = ds.to('cpu')
    assert torch.equal(moved.text_ids, ds.text_ids)


def test_full_pipelines(synthetic_root):
    init_default_scope('mmseg')
    common = [dict(type='LoadRefImage'), dict(type='LoadRefMask')]
    tail = [
        dict(type='CLIPTokenize', context_length=17),
        dict(type='PackRISInputs')
    ]
    train = RefCOCODataset(
        synthetic_root,
        split='train',
        mode='train',
        pipeline=common + [dict(type='LetterboxAffine', size=64)] + tail)
    test = RefCOCODataset(
        synthetic_root,
        split='val',
        mode='test',
        pipeline=common +
        [dict(type='LetterboxAffine', size=64, warp_mask=False)] + tail)
    batch = pseudo_collate([train[0], train[1]])
    assert len(
        batch['inputs']) == 2 and batch['inputs'][0].shape == (3, 64, 64)
    s = batch['data_samples'][0]
    assert s.gt_mask.data.shape == (1, 64, 64) and 'gt_sem_seg' not in s
    assert s.gt_mask.data.max() == 1.0
    assert s.text_ids.shape == (17, )
    for key in ('img_path', 'ori_shape', 'img_shape', 'affine', 'inv_affine',
                'text', 'ref_id', 'sent_id', 'ann_id', 'image_id',
                'sample_idx'):
        assert key in s.metainfo_keys(), key
    t = test[0]['data_samples']
    info = test.get_data_info(0)
    assert 'gt_mask' not in t
    assert t.gt_sem_seg.data.shape == (1, info['height'], info['width'])
    assert t.ori_shape == (info['height'], info['width'])
    assert t.gt_sem_seg.data.sum() > 0


def test_rle_counts_decodes_coco_strings_like_pycocotools():
    """The run lengths read from COCO's compressed string rebuild exactly
    the mask pycocotools decodes (random masks, runs up to 2**16)."""
    import warnings

    from pycocotools import mask as mask_utils

    from mmris.datasets.transforms.loading import rle_counts
    rng = np.random.default_rng(0)
    for h, w, p in [(1, 1, 0.5), (7, 3, 0.5), (40, 50, 0.02),
                    (300, 400, 0.9999)]:
        mask = (rng.random((h, w)) < p).astype(np.uint8)
        if h > 100:  # long runs: a filled block in an empty image
            mask[:] = 0
            mask[10:290, 5:395] = 1
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', DeprecationWarning)
            rle = mask_utils.encode(np.asfortranarray(mask))
        runs = rle_counts(rle['counts'].decode('ascii'))
        flat = np.repeat(np.arange(len(runs)) % 2, runs).astype(np.uint8)
        assert flat.size == h * w
        np.testing.assert_array_equal(flat.reshape(w, h).T, mask)
    for bad, match in (('0o', 'ends inside'), ('0\x7f', 'outside'),
                       ('\u0101', 'not ASCII'), ([1, -2], 'outside'),
                       ([1, 2.5], 'not an integer')):
        with pytest.raises(ValueError, match=match):
            rle_counts(bad)


def test_long_polygon_outline_is_refused():
    from mmris.datasets.transforms.loading import (POLYGON_OUTLINE_FACTOR,
                                                   check_segmentation)
    h, w = 20, 30
    zigzag = [v for k in range(POLYGON_OUTLINE_FACTOR) for v in (0, 0, 30, 19)]
    # 400 edges of max(|dx|, |dy|) = 30: 12000 > 200 x (20 + 30)
    check_segmentation([zigzag[:40]], h, w)  # 20 edges: fine
    with pytest.raises(ValueError, match='outline is 12000 pixels long'):
        check_segmentation([zigzag], h, w)
    with pytest.raises(ValueError, match='not a positive integer'):
        check_segmentation([[0, 0, 1, 0, 1, 1]], 0, w)
    with pytest.raises(ValueError, match='more than'):
        check_segmentation([[0, 0, 1, 0, 1, 1]], 2**15, 2**15)
