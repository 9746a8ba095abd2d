# Copyright (c) mmris contributors. All rights reserved.
"""RISMetric under 2-process (gloo, CPU) evaluation with a padded sampler."""
import os
import pickle
import socket
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

NUM_SAMPLES = 7  # odd: DefaultSampler pads one duplicate for 2 ranks


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _make_dataset():
    rng = np.random.default_rng(0)
    data = []
    for k in range(NUM_SAMPLES):
        h, w = int(rng.integers(5, 12)), int(rng.integers(5, 12))
        gt = rng.random((h, w)) < 0.4
        pred = gt ^ (rng.random((h, w)) < 0.2 * k / NUM_SAMPLES)
        data.append((pred, gt, k))
    return data


def _samples(data, indices):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    out = []
    for i in indices:
        pred, gt, k = data[i]
        s = SegDataSample()
        s.pred_sem_seg = PixelData(data=torch.from_numpy(pred[None]))
        s.gt_sem_seg = PixelData(
            data=torch.from_numpy(gt[None].astype(np.uint8)))
        s.set_metainfo(dict(ref_id=k, sent_id=k))
        out.append(s.to_dict())
    return out


def _worker(rank, world_size, port, out_file, collect_dir):
    os.environ['MASTER_ADDR'] = '127.0.0.1'
    os.environ['MASTER_PORT'] = str(port)
    dist.init_process_group(
        'gloo', rank=rank, world_size=world_size, init_method='env://')
    try:
        from mmengine.dataset import DefaultSampler

        import mmris  # noqa: F401
        from mmris.evaluation import RISMetric
        data = _make_dataset()
        sampler = DefaultSampler(data, shuffle=False, round_up=True)
        indices = list(iter(sampler))
        metric = RISMetric(collect_dir=collect_dir)
        for start in range(0, len(indices), 2):  # batches of 2
            metric.process({}, _samples(data, indices[start:start + 2]))
        res = metric.evaluate(len(data))
        with open(f'{out_file}.{rank}', 'wb') as f:
            pickle.dump(dict(res=res, indices=indices), f)
    finally:
        dist.destroy_process_group()


def test_distributed_equals_single(tmp_path):
    import mmris  # noqa: F401
    from mmris.evaluation import RISMetric

    data = _make_dataset()
    single = RISMetric()
    single.process({}, _samples(data, range(len(data))))
    expected = single.evaluate(len(data))
    # padding would change the result: the duplicated sample differs
    padded = RISMetric()
    padded.process({}, _samples(data, list(range(len(data))) + [0]))
    assert padded.evaluate(len(data) + 1) != expected

    out_file = str(tmp_path / 'res')
    # fork: the children inherit the imported modules (spawn would re-import
    # torch/mmseg/mmris in each child, ~10 s on 2 cores)
    ctx = mp.start_processes(
        _worker,
        args=(2, _free_port(), out_file, str(tmp_path / 'collect')),
        nprocs=2,
        join=False,
        start_method='fork')
    deadline = time.monotonic() + 60
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            raise TimeoutError('distributed metric workers hung')
    outs = []
    for rank in range(2):
        with open(f'{out_file}.{rank}', 'rb') as f:
            outs.append(pickle.load(f))
    assert outs[0]['indices'] == [0, 2, 4, 6]
    assert outs[1]['indices'] == [1, 3, 5, 0]  # padded with a duplicate
    for out in outs:  # broadcast to every rank, exactly equal
        assert out['res'] == expected
