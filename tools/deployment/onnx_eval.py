# Copyright (c) mmris contributors. All rights reserved.
"""Evaluate an exported ONNX model on a dataset split with the config's
metric (RISMetric / GRISMetric), as ``tools/test.py`` evaluates a
checkpoint.

Example:
    python tools/deployment/onnx_eval.py \
        configs/quickstart/etris-tiny_synthetic.py work_dirs/onnx/model.onnx

The config's test pipeline prepares the samples (letterbox, tokenizer,
ground truth); onnxruntime runs the graph and
``ORTReferringSegmenter.postprocess`` (the runtime of
``tools/deployment/onnx_demo.py``) warps each probability map back and
thresholds it. Use it to measure what an export (or its int8 version)
changes: run ``tools/test.py`` with the checkpoint on the same split.
"""
import argparse
import os.path as osp
import runpy
import time


def load_tool_env() -> dict:
    """``mmris/utils/tool_env.py`` run by path, before any heavy import:
    ``--help`` stays fast and a Python without the project's packages gets
    one line (or the checkout's ``.venv``)."""
    folder = osp.dirname(osp.abspath(__file__))
    while osp.dirname(folder) != folder:
        path = osp.join(folder, 'mmris', 'utils', 'tool_env.py')
        if osp.isfile(path):
            return runpy.run_path(path)
        folder = osp.dirname(folder)
    from mmris.utils import tool_env  # an installed mmris
    return vars(tool_env)


TOOL_ENV = load_tool_env()
TOOL_ENV['ensure_environment'](__file__)
import numpy as np  # noqa: E402
import torch
from mmengine.config import Config, DictAction
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

import mmris  # noqa: F401  (compat + registries first)
from mmris.apis import find_ref_dataset
from mmris.deployment import runtime_settings
from mmris.deployment.ort_inference import ORTReferringSegmenter


def parse_args():
    parser = argparse.ArgumentParser(
        description='Evaluate an exported ONNX model on a dataset split')
    parser.add_argument(
        'config',
        help='the config the model was exported '
        'from (its test dataset and metric are used)')
    parser.add_argument('model', help='.onnx file of pytorch2onnx.py')
    parser.add_argument(
        '--split',
        default=None,
        help='split to evaluate (default: the '
        "config's test split)")
    parser.add_argument(
        '--batch-size', type=int, default=16, help='samples per run')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='onnxruntime intra-op threads (default: the CPU thread rule '
        'of every tool: OMP_NUM_THREADS, else the idle cores)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config (key=value)')
    return parser.parse_args()


def main():
    args = parse_args()
    threads = TOOL_ENV['setup_cpu_threads']('onnx_eval.py')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    runner = ORTReferringSegmenter.from_file(
        args.model, num_threads=args.threads or threads)
    settings = runtime_settings(cfg)
    for key, value in settings.items():
        if runner.meta.get(key) != value:
            raise SystemExit(
                f'onnx_eval.py: {args.model} was exported with {key}='
                f'{runner.meta.get(key)!r}, the config says {value!r}')
    dataset_cfg = cfg.test_dataloader.dataset
    if args.split is not None:
        find_ref_dataset(dataset_cfg)['split'] = args.split
    from mmseg.registry import DATASETS
    dataset = DATASETS.build(dataset_cfg)
    evaluator = Evaluator(cfg.test_evaluator)
    evaluator.dataset_meta = dataset.metainfo
    threshold = runner.meta['threshold']
    start = time.perf_counter()
    for first in range(0, len(dataset), args.batch_size):
        samples = [
            dataset[i]
            for i in range(first, min(first + args.batch_size, len(dataset)))
        ]
        images = np.stack([s['inputs'].numpy() for s in samples])
        ids = np.stack([s['data_samples'].text_ids.numpy() for s in samples])
        outs = runner.run(images.astype(np.float32), ids)
        scores = outs.get('no_target_score')
        preds = []
        for k, sample in enumerate(samples):
            data_sample = sample['data_samples']
            meta = data_sample.metainfo
            res = runner.postprocess(
                outs['mask_prob'][k, 0],
                None if scores is None else float(scores[k]),
                meta['inv_affine'], meta['ori_shape'][:2], threshold)
            data_sample.set_data(
                dict(
                    seg_logits=PixelData(
                        data=torch.from_numpy(res['prob'])[None]),
                    pred_sem_seg=PixelData(
                        data=torch.from_numpy(res['mask'])[None])))
            if scores is not None:
                data_sample.set_metainfo(
                    dict(
                        pred_no_target=res['no_target'],
                        no_target_score=res['no_target_score']))
            preds.append(data_sample)
        evaluator.process(data_samples=preds)
    metrics = evaluator.evaluate(len(dataset))
    print(f'[onnx_eval] {args.model}: {len(dataset)} samples in '
          f'{time.perf_counter() - start:.1f} s')
    print('[onnx_eval] ' +
          '  '.join(f'{k}: {v:.2f}' if isinstance(v, float) else f'{k}: {v}'
                    for k, v in metrics.items()))


if __name__ == '__main__':
    main()
