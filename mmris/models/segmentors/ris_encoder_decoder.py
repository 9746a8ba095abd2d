# Copyright (c) mmris contributors. All rights reserved.
"""Referring segmentor: adapted encoders -> neck -> referring head."""
from typing import Dict, Optional, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, SampleList
from torch import Tensor

from ..backbones.adapted_encoder_pair import EncoderOutput
from ..utils.affine_warp import warp_affine_cubic


@MODELS.register_module()
class RISEncoderDecoder(BaseSegmentor):
    """Segment the object a sentence refers to.

    Each data sample carries the token ids of its sentence (``text_ids``),
    the letterbox warp (``affine``/``inv_affine`` in its metainfo), and for
    training the warped soft mask (``gt_mask``).

    Args:
        backbone (dict): An :class:`AdaptedEncoderPair` config.
        neck (dict): A :class:`RISNeck` config.
        decode_head (dict): A :class:`RISDecodeHead` config.
        side_network (dict, optional): A side network (e.g.
            :class:`BarLeRIaSideNetwork`) called as ``side_network(inputs,
            feats.side, feats.word)``; it returns a map added to the neck
            output before the head and a dict of auxiliary losses merged into
            the training losses. Defaults to None.
        train_cfg (dict, optional): Unused. Defaults to None.
        test_cfg (dict, optional): ``threshold`` (0.35), ``upsample``
            ('bicubic', the official test recipe) and ``postprocess``: 'cv2'
            (default, the official per-sample ``cv2.warpAffine``) or
            'device' (the inverse letterbox warp of the whole batch on the
            model's device, :func:`~mmris.models.utils.warp_affine_cubic`;
            masks agree with 'cv2' to within a few boundary pixels).
            Defaults to None.
        data_preprocessor (dict, optional): Defaults to None.
        init_cfg (dict, optional): Defaults to None.
        no_target_head (dict, optional): A :class:`NoTargetHead` config for
            generalized RIS (gRefCOCO): trained on the samples'
            ``no_target`` flags (``loss_no_target``); at test time a
            no-target decision empties the mask (the mask predicted before
            the decision is kept as ``target_pred_sem_seg``: ReLA's
            evaluator scores it in the cIoU union), and every prediction
            carries ``pred_no_target`` and ``no_target_score`` in its
            metainfo. Defaults to None (classic RIS, no extra parameter).
    """

    def __init__(self,
                 backbone: ConfigType,
                 neck: ConfigType,
                 decode_head: ConfigType,
                 side_network: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptConfigType = None,
                 no_target_head: OptConfigType = None):
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck)
        self.decode_head = MODELS.build(decode_head)
        if side_network is not None:
            self.side_network = MODELS.build(side_network)
        else:
            self.side_network = None
        self.no_target_head = (None if no_target_head is None else
                               MODELS.build(no_target_head))
        self.train_cfg = train_cfg or {}
        self.test_cfg = dict(
            threshold=0.35, upsample='bicubic', postprocess='cv2')
        self.test_cfg.update(test_cfg or {})
        if self.test_cfg['postprocess'] not in ('cv2', 'device'):
            raise ValueError("test_cfg.postprocess must be 'cv2' or 'device', "
                             f"got {self.test_cfg['postprocess']!r}")

    # -- helpers --------------------------------------------------------------
    @staticmethod
    def _text_ids(data_samples: SampleList) -> Tensor:
        try:
            return torch.stack([ds.text_ids for ds in data_samples])
        except AttributeError:
            raise KeyError('every data sample needs `text_ids` (pack the '
                           'samples with PackRISInputs after CLIPTokenize)')

    def extract_feat(self, inputs: Tensor,
                     data_samples: SampleList) -> EncoderOutput:
        return self.backbone(inputs, self._text_ids(data_samples))

    def encode_decode(self, inputs: Tensor,
                      data_samples: SampleList) -> Tensor:
        """Mask logits (B, 1, h, w) at the head's resolution."""
        return self._encode_decode_with_aux(inputs, data_samples)[0]

    def _encode_decode_with_aux(
            self, inputs: Tensor,
            data_samples: SampleList) -> Tuple[Tensor, Dict[str, Tensor]]:
        """Mask logits and the auxiliary losses of the side network."""
        return self._forward_heads(inputs, data_samples)[:2]

    def _forward_heads(
        self, inputs: Tensor, data_samples: SampleList
    ) -> Tuple[Tensor, Dict[str, Tensor], Optional[Tensor]]:
        """Mask logits, side-network losses and no-target logits (None
        without a ``no_target_head``)."""
        return self.forward_ids(inputs, self._text_ids(data_samples))

    def forward_ids(
        self, inputs: Tensor, text_ids: Tensor
    ) -> Tuple[Tensor, Dict[str, Tensor], Optional[Tensor]]:
        """The network on normalised images and token ids, without data
        samples (what an ONNX export traces, see :mod:`mmris.deployment`).

        Args:
            inputs (Tensor): Normalised images (B, 3, H, W).
            text_ids (Tensor): Token ids (B, L).

        Returns:
            tuple: Mask logits (B, 1, h, w), the side network's auxiliary
            losses (a dict) and the no-target logits (B,) (None without a
            ``no_target_head``).
        """
        feats = self.backbone(inputs, text_ids)
        fq = self.neck(feats.visual, feats.state)
        aux: Dict[str, Tensor] = {}
        if self.side_network is not None:
            side_map, aux = self.side_network(inputs, feats.side, feats.word)
            fq = fq + side_map
        logits = self.decode_head(fq, feats.word, feats.state, feats.pad_mask)
        nt_logits = (None if self.no_target_head is None else
                     self.no_target_head(fq, feats.state, logits))
        return logits, aux, nt_logits

    def _forward(self,
                 inputs: Tensor,
                 data_samples: OptConfigType = None) -> Tensor:
        return self.encode_decode(inputs, data_samples)

    # -- training -------------------------------------------------------------
    def loss(self, inputs: Tensor,
             data_samples: SampleList) -> Dict[str, Tensor]:
        logits, aux, nt_logits = self._forward_heads(inputs, data_samples)
        try:
            gt = torch.stack([ds.gt_mask.data for ds in data_samples])
        except AttributeError:
            raise KeyError('training samples need `gt_mask` (the warped mask '
                           'packed by PackRISInputs)')
        losses = self.decode_head.loss_by_feat(logits, gt.to(logits.device))
        clash = set(losses) & set(aux)
        if clash:
            raise KeyError(f'side-network losses {sorted(clash)} clash with '
                           'the head losses')
        losses.update(aux)
        if nt_logits is not None:
            flags = torch.tensor([
                bool(ds.metainfo.get('no_target', False))
                for ds in data_samples
            ])
            losses.update(self.no_target_head.loss_by_feat(nt_logits, flags))
        return losses

    # -- inference ------------------------------------------------------------
    def predict(self, inputs: Tensor, data_samples: SampleList) -> SampleList:
        logits, _, nt_logits = self._forward_heads(inputs, data_samples)
        probs = self.probabilities(logits, inputs.shape[-2:])
        if nt_logits is None:
            return self.postprocess_result(probs, data_samples)
        no_target, score = self.no_target_head.predict(nt_logits)
        data_samples = self.postprocess_result(probs, data_samples)
        for ds, nt, p in zip(data_samples, no_target.tolist(), score.tolist()):
            ds.set_metainfo(dict(pred_no_target=nt, no_target_score=p))
            if nt:
                # "no target": an empty mask; the mask predicted before the
                # decision is kept (ReLA scores it in the cIoU union)
                ds.target_pred_sem_seg = ds.pred_sem_seg
                ds.set_data(
                    dict(
                        seg_logits=PixelData(
                            data=torch.zeros_like(ds.seg_logits.data)),
                        pred_sem_seg=PixelData(
                            data=torch.zeros_like(ds.pred_sem_seg.data))))
        return data_samples

    def probabilities(self, logits: Tensor, size) -> Tensor:
        """Sigmoid, then upsampling to the network input size (official test
        recipe: sigmoid before bicubic with align_corners=True)."""
        probs = torch.sigmoid(logits.float())
        mode = self.test_cfg['upsample']
        align = None if mode == 'nearest' else True
        return F.interpolate(
            probs, size=tuple(size), mode=mode, align_corners=align)

    def postprocess_result(self, probs: Tensor,
                           data_samples: SampleList) -> SampleList:
        """Warp each probability map back to its original image with the
        inverse letterbox affine (cubic) and threshold it."""
        thr = self.test_cfg['threshold']
        sizes, invs = [], []
        for ds in data_samples:
            inv = ds.metainfo.get('inv_affine')
            if inv is None:
                raise KeyError('data sample metainfo lacks `inv_affine` '
                               '(produced by LetterboxAffine)')
            sizes.append(tuple(int(s) for s in ds.metainfo['ori_shape'][:2]))
            invs.append(inv)
        if self.test_cfg['postprocess'] == 'device':
            warped = warp_affine_cubic(probs.float(), invs, sizes)
        else:
            warped = [
                torch.from_numpy(
                    cv2.warpAffine(
                        prob,
                        np.asarray(inv, dtype=np.float64), (w, h),
                        flags=cv2.INTER_CUBIC,
                        borderMode=cv2.BORDER_CONSTANT,
                        borderValue=0))[None]
                for prob, inv, (h,
                                w) in zip(probs[:,
                                                0].cpu().numpy(), invs, sizes)
            ]
        for prob_t, ds in zip(warped, data_samples):
            # Bicubic upsampling and the cubic warp overshoot [0, 1] a little;
            # clipping leaves the thresholded mask unchanged.
            prob_t = prob_t.clamp(0, 1)
            ds.set_data(
                dict(
                    seg_logits=PixelData(data=prob_t),
                    pred_sem_seg=PixelData(
                        data=(prob_t > thr).to(torch.uint8))))
        return data_samples
