# Copyright (c) mmris contributors. All rights reserved.
"""A web page to try a referring segmentation model on your own image and
sentences (Gradio, an optional dependency: ``pip install -r
requirements/optional.txt``).

Example:
    python tools/webui.py --config configs/quickstart/etris-tiny_synthetic.py \
        --checkpoint work_dirs/quickstart/epoch_4.pth --port 7860

Then open http://127.0.0.1:7860. Upload or paste an image, type one or
several sentences (one per line) and press "Segment": per sentence the page
shows the overlay (mask tinted and outlined as ``tools/demo.py`` draws it),
the probability map, the mask area and, for gRefCOCO models, "no target".
The threshold slider re-thresholds the kept probability maps without running
the model again; the mask PNGs and ``results.json`` can be downloaded.
"""
import argparse
import logging
import os
import os.path as osp
import tempfile
import traceback
from typing import Any, List, Optional

import mmris  # noqa: F401  (compat + registries first)
from mmengine.config import DictAction

from mmris.apis.webui_backend import (DEFAULT_MAX_SENTENCES,
                                      DEFAULT_MAX_SIDE, Rendering,
                                      Segmentation, WebUIBackend,
                                      WebUIInputError, example_inputs)
from mmris.checkpoint import unsafe_checkpoint_loading

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
logger = logging.getLogger('mmris.webui')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Referring image segmentation web demo (Gradio)')
    parser.add_argument('--config', required=True, help='model config file')
    parser.add_argument(
        '--checkpoint',
        default=None,
        help='checkpoint file (an mmris checkpoint, e.g. one converted by '
        'tools/model_converters/ris2mmris.py); without it the model has '
        'random weights and the page says so')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--host', default='127.0.0.1', help='address to listen on')
    parser.add_argument('--port', type=int, default=7860, help='port')
    parser.add_argument(
        '--threshold',
        type=float,
        default=None,
        help="initial slider value (default: the model's "
        'test_cfg.threshold, 0.35)')
    parser.add_argument(
        '--batch-size', type=int, default=8, help='sentences per forward')
    parser.add_argument(
        '--max-side',
        type=int,
        default=DEFAULT_MAX_SIDE,
        help='largest accepted image side in pixels')
    parser.add_argument(
        '--max-sentences',
        type=int,
        default=DEFAULT_MAX_SENTENCES,
        help='most sentences per request')
    parser.add_argument(
        '--unsafe-load',
        action='store_true',
        help='allow checkpoints with arbitrary pickled objects (only for '
        'files you trust)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config (key=value)')
    return parser.parse_args(argv)


def results_markdown(backend: WebUIBackend, seg: Segmentation,
                     rendering: Rendering) -> str:
    """A Markdown table: sentence, mask area, max probability, no target."""
    rows = [
        f'{backend.timing_text(seg)}; threshold {rendering.threshold:.2f}',
        '', '| # | sentence | mask area | max prob | no target |',
        '|---:|---|---:|---:|---|'
    ]
    for i, rec in enumerate(rendering.records):
        sentence = rec['sentence'].replace('|', '\\|')
        no_target = 'yes' if rec['no_target'] else 'no'
        if rec['no_target_score'] is not None:
            no_target += f' (p={rec["no_target_score"]:.2f})'
        rows.append(f'| {i} | {sentence} | {rec["mask_area_percent"]:.1f}% '
                    f'| {rec["max_prob"]:.3f} | {no_target} |')
    return '\n'.join(rows)


def safe_preprocess(component: Any) -> None:
    """Let an undecodable upload reach the handler (which names the file)
    instead of failing inside Gradio's own PIL decoding."""
    original = component.preprocess

    def preprocess(payload):
        try:
            return original(payload)
        except Exception:
            path = getattr(payload, 'path', None)
            return path if path else None

    component.preprocess = preprocess


def build_demo(backend: WebUIBackend,
               threshold: Optional[float] = None,
               out_root: Optional[str] = None):
    """The Gradio page around ``backend`` (built once, shared by every
    request)."""
    import gradio as gr
    out_root = out_root or tempfile.mkdtemp(prefix='mmris-webui-')
    threshold = backend.default_threshold if threshold is None \
        else threshold

    def error_outputs(message: str):
        return (f'**Error:** {message}', None, None, '', None, None)

    def show(seg: Segmentation, thr: float, alpha: float):
        rendering = backend.render(seg, thr, alpha)
        files = backend.export(seg, rendering,
                               tempfile.mkdtemp(dir=out_root))
        status = f'**Done:** {backend.timing_text(seg)}'
        return (status, rendering.overlays, rendering.prob_maps,
                results_markdown(backend, seg, rendering), files, seg)

    def segment(image, text, thr, alpha):
        try:
            seg = backend.segment(image, text)
            return show(seg, thr, alpha)
        except WebUIInputError as err:
            return error_outputs(str(err))
        except Exception as err:  # never let a request kill the server
            logger.error(traceback.format_exc())
            return error_outputs(f'{type(err).__name__}: {err}')

    def rethreshold(seg, thr, alpha):
        if seg is None:
            return (gr.update(), ) * 5 + (None, )
        try:
            return show(seg, thr, alpha)
        except Exception as err:
            logger.error(traceback.format_exc())
            return error_outputs(f'{type(err).__name__}: {err}')

    with gr.Blocks(title='mmris referring segmentation') as demo:
        gr.Markdown('## mmris: referring image segmentation\n'
                    'Upload or paste an image, type one or several '
                    'sentences (one per line), press **Segment**.')
        gr.Markdown(backend.describe(), elem_id='mmris-model')
        with gr.Row():
            with gr.Column():
                image = gr.Image(
                    type='filepath',
                    sources=['upload', 'clipboard'],
                    label='Image',
                    elem_id='mmris-image')
                safe_preprocess(image)
                text = gr.Textbox(
                    lines=3,
                    label='Sentences (one per line)',
                    placeholder='the red circle\nthe big green square',
                    elem_id='mmris-text')
                thr = gr.Slider(
                    0., 1., value=threshold, step=0.01,
                    label='Mask threshold (re-thresholds, no new run)',
                    elem_id='mmris-threshold')
                alpha = gr.Slider(
                    0., 1., value=0.5, step=0.05, label='Tint opacity')
                button = gr.Button(
                    'Segment', variant='primary', elem_id='mmris-run')
            with gr.Column():
                status = gr.Markdown('', elem_id='mmris-status')
                overlays = gr.Gallery(
                    label='Overlays', format='png', columns=2,
                    elem_id='mmris-overlays')
                table = gr.Markdown('', elem_id='mmris-table')
                probs = gr.Gallery(
                    label='Probability maps', format='png', columns=2,
                    elem_id='mmris-probs')
                files = gr.File(
                    label='Masks (PNG) and results.json',
                    file_count='multiple',
                    elem_id='mmris-files')
        state = gr.State(None)
        examples = example_inputs(ROOT, osp.join(out_root, 'examples'))
        if examples:
            gr.Examples(examples, [image, text], cache_examples=False)
        outputs = [status, overlays, probs, table, files, state]
        button.click(segment, [image, text, thr, alpha], outputs)
        for slider in (thr, alpha):
            slider.release(rethreshold, [state, thr, alpha], outputs)
    return demo


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    # no usage statistics sent from a demo that may run offline
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise SystemExit('webui.py needs Gradio: pip install -r '
                         'requirements/optional.txt')
    with unsafe_checkpoint_loading(args.unsafe_load):
        try:
            backend = WebUIBackend.build(
                args.config,
                args.checkpoint,
                device=args.device,
                cfg_options=args.cfg_options,
                batch_size=args.batch_size,
                max_side=args.max_side,
                max_sentences=args.max_sentences)
        except FileNotFoundError as err:
            raise SystemExit(str(err))
    print(f'[webui] {backend.describe()}'.replace('**', ''), flush=True)
    demo = build_demo(backend, args.threshold)
    demo.queue(default_concurrency_limit=1)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        show_error=True,
        max_file_size='200mb')


if __name__ == '__main__':
    main()
