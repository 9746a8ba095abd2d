# Copyright (c) mmris contributors. All rights reserved.
"""A web page to try a referring segmentation model on your own image and
sentences (Gradio, an optional dependency: ``pip install -r
requirements/optional.txt``).

Example:
    python tools/webui.py --config configs/quickstart/etris-tiny_synthetic.py \
        --checkpoint work_dirs/quickstart/epoch_4.pth --port 7860

Then open http://127.0.0.1:7860. Upload or paste an image, type one or
several sentences (one per line) and press "Segment": per sentence the page
shows the overlay (drawn as ``tools/demo.py`` and ``tools/test.py
--show-dir`` draw it, the sentence on its caption strip), the probability
map, the mask area and, for gRefCOCO models, "no target". The threshold
slider re-thresholds the kept probability maps without running the model
again; the mask PNGs and ``results.json`` can be downloaded.

Limits (each a flag): 16 sentences of at most 250 characters per request,
images up to 4096 pixels on the longer side and 67,108,864 pixels in all
(read from the file's header before anything is decoded).
"""
import argparse
import inspect
import logging
import os
import os.path as osp
import runpy
import tempfile
import traceback
from typing import TYPE_CHECKING, Any, List, Optional, Tuple


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
from mmengine.config import DictAction  # noqa: E402

if TYPE_CHECKING:
    from mmris.apis.webui_backend import Rendering, Segmentation, WebUIBackend

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
logger = logging.getLogger('mmris.webui')
#: The page's style: sentences of the examples table on their own lines.
CSS = '#mmris-examples td, #mmris-examples button {white-space: pre-line}'
#: Defaults of the limits (mmris.apis.webui_backend; repeated here so that
#: ``--help`` imports nothing heavy, and checked by the tests).
DEFAULT_MAX_SIDE = 4096
DEFAULT_MAX_SENTENCES = 16
DEFAULT_MAX_SENTENCE_CHARS = 250


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
        '--max-sentence-chars',
        type=int,
        default=DEFAULT_MAX_SENTENCE_CHARS,
        help='longest sentence in characters (the model reads only its '
        'first 17-22 tokens)')
    parser.add_argument(
        '--max-pixels',
        type=int,
        default=None,
        help='largest image, width x height, read from the header before '
        'decoding (default: $MMRIS_MAX_IMAGE_PIXELS or 67108864)')
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


def results_markdown(backend: 'WebUIBackend', seg: 'Segmentation',
                     rendering: 'Rendering') -> str:
    """A Markdown table: sentence (escaped: shown as typed), mask area, max
    probability, no target."""
    from mmris.apis.webui_backend import escape_markdown
    rows = [
        f'{backend.timing_text(seg)}; threshold {rendering.threshold:.2f}', '',
        '| # | sentence | mask area | max prob | no target |',
        '|---:|---|---:|---:|---|'
    ]
    for i, rec in enumerate(rendering.records):
        sentence = escape_markdown(rec['sentence'])
        no_target = 'yes' if rec['no_target'] else 'no'
        if rec['no_target_score'] is not None:
            no_target += f' (p={rec["no_target_score"]:.2f})'
        rows.append(f'| {i} | {sentence} | {rec["mask_area_percent"]:.1f}% '
                    f'| {rec["max_prob"]:.3f} | {no_target} |')
    return '\n'.join(rows)


def uploaded_file(payload: Any) -> Tuple[Optional[str], Optional[str]]:
    """(server path, name to show) of the image input as Gradio hands it
    over without preprocessing.

    The Segment button runs with ``preprocess=False``: Gradio's own
    ``Image.preprocess`` would open every upload with PIL (and may decode
    and re-save it), so an undecodable file failed inside Gradio with a raw
    "Could not preprocess input" toast and a huge image was decoded before
    the handler could refuse it. Patching a component instance does not
    hold either: once an Example has updated the image, Gradio rebuilds the
    session's component from its class. Without preprocessing the handler
    gets the upload's file data (a dict, the file already in Gradio's
    cache) and reads the file itself, header first.

    Args:
        payload: ``None``, a dict with ``path`` (and ``orig_name``), or a
            path.

    Returns:
        tuple: The path (None for no image) and the uploaded file's own
        name (for messages; never the server's folder).
    """
    if payload is None:
        return None, None
    if isinstance(payload, dict):
        path = payload.get('path')
        name = payload.get('orig_name') or (osp.basename(path)
                                            if path else None)
        return path, name
    path = str(payload)
    return path, osp.basename(path)


def launch_kwargs(gr) -> dict:
    """``css`` goes to ``launch()`` in Gradio 6, to ``Blocks()`` before."""
    if 'css' in inspect.signature(gr.Blocks.launch).parameters:
        return dict(css=CSS)
    return {}


def build_demo(backend: 'WebUIBackend',
               threshold: Optional[float] = None,
               out_root: Optional[str] = None):
    """The Gradio page around ``backend`` (built once, shared by every
    request)."""
    import gradio as gr

    from mmris.apis.webui_backend import (WebUIInputError, escape_markdown,
                                          example_inputs, public_message)
    from mmris.visualization import DEFAULT_ALPHA
    out_root = out_root or tempfile.mkdtemp(prefix='mmris-webui-')
    threshold = backend.default_threshold if threshold is None \
        else threshold

    def error_outputs(message: str):
        # the message may carry user text (a file name): shown as typed
        return (f'**Error:** {escape_markdown(message)}', None, None, '', None,
                None)

    def show(seg: 'Segmentation', thr: float, alpha: float):
        rendering = backend.render(seg, thr, alpha)
        files = backend.export(seg, rendering, tempfile.mkdtemp(dir=out_root))
        status = f'**Done:** {backend.timing_text(seg)}'
        # the overlays carry the sentence on their own caption strip: no
        # gallery caption, which Gradio draws over the bottom of the image
        return (status, [image for image, _ in rendering.overlays],
                rendering.prob_maps, results_markdown(backend, seg,
                                                      rendering), files, seg)

    def segment(image, text, thr, alpha):
        path = None
        try:
            path, name = uploaded_file(image)
            seg = backend.segment(path, text, name=name)
            return show(seg, thr, alpha)
        except WebUIInputError as err:
            return error_outputs(str(err))
        except Exception as err:  # never let a request kill the server
            logger.error(traceback.format_exc())
            return error_outputs(
                public_message(f'{type(err).__name__}: {err}', path))

    def rethreshold(seg, thr, alpha):
        if seg is None:
            return (gr.update(), ) * 5 + (None, )
        try:
            return show(seg, thr, alpha)
        except Exception as err:
            logger.error(traceback.format_exc())
            return error_outputs(f'{type(err).__name__}: {err}')

    blocks_kwargs = {} if launch_kwargs(gr) else dict(css=CSS)
    limits = (f'At most {backend.max_sentences} sentences of at most '
              f'{backend.max_sentence_chars} characters each (the model '
              'reads the first words of each); images up to '
              f'{backend.max_side} pixels on the longer side and '
              f'{backend.max_pixels:,} pixels in all.')
    with gr.Blocks(
            title='mmris referring segmentation', **blocks_kwargs) as demo:
        gr.Markdown(
            '## mmris: referring image segmentation\n'
            'Upload or paste an image, type one or several '
            'sentences (one per line), press **Segment**.  \n' + limits,
            elem_id='mmris-intro')
        gr.Markdown(backend.describe(), elem_id='mmris-model')
        with gr.Row():
            with gr.Column():
                image = gr.Image(
                    type='filepath',
                    sources=['upload', 'clipboard'],
                    label='Image',
                    elem_id='mmris-image')
                text = gr.Textbox(
                    lines=3,
                    label='Sentences (one per line)',
                    placeholder='the red circle\nthe big green square',
                    max_length=backend.max_sentences *
                    (backend.max_sentence_chars + 1),
                    elem_id='mmris-text')
                thr = gr.Slider(
                    0.,
                    1.,
                    value=threshold,
                    step=0.01,
                    label='Mask threshold (re-thresholds, no new run)',
                    elem_id='mmris-threshold')
                alpha = gr.Slider(
                    0.,
                    1.,
                    value=DEFAULT_ALPHA,
                    step=0.05,
                    label='Tint opacity')
                button = gr.Button(
                    'Segment', variant='primary', elem_id='mmris-run')
            with gr.Column():
                status = gr.Markdown('', elem_id='mmris-status')
                # 'contain': the whole overlay with its caption strip
                overlays = gr.Gallery(
                    label='Overlays',
                    format='png',
                    columns=2,
                    object_fit='contain',
                    height='auto',
                    elem_id='mmris-overlays')
                table = gr.Markdown('', elem_id='mmris-table')
                probs = gr.Gallery(
                    label='Probability maps',
                    format='png',
                    columns=2,
                    object_fit='contain',
                    elem_id='mmris-probs')
                files = gr.File(
                    label='Masks (PNG) and results.json',
                    file_count='multiple',
                    elem_id='mmris-files')
        state = gr.State(None)
        examples = example_inputs(ROOT, osp.join(out_root, 'examples'))
        if examples:
            gr.Examples(
                examples, [image, text],
                cache_examples=False,
                elem_id='mmris-examples')
        outputs = [status, overlays, probs, table, files, state]
        # no Gradio preprocessing: the handler reads the upload itself
        # (see uploaded_file)
        button.click(
            segment, [image, text, thr, alpha], outputs, preprocess=False)
        for slider in (thr, alpha):
            slider.release(rethreshold, [state, thr, alpha], outputs)
    return demo


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    # no usage statistics sent from a demo that may run offline
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    try:
        import gradio
    except ImportError:
        raise SystemExit('webui.py needs Gradio: pip install -r '
                         'requirements/optional.txt')
    if not osp.isfile(args.config):
        raise SystemExit(f'webui: config file not found: {args.config}')
    TOOL_ENV['check_checkpoint_path'](args.checkpoint, 'webui')
    TOOL_ENV['setup_cpu_threads']('webui.py')
    import mmris  # noqa: F401  (compat + registries first)
    from mmris.apis.webui_backend import WebUIBackend
    from mmris.checkpoint import unsafe_checkpoint_loading
    with unsafe_checkpoint_loading(args.unsafe_load):
        try:
            backend = WebUIBackend.build(
                args.config,
                args.checkpoint,
                device=args.device,
                cfg_options=args.cfg_options,
                batch_size=args.batch_size,
                max_side=args.max_side,
                max_sentences=args.max_sentences,
                max_sentence_chars=args.max_sentence_chars,
                max_pixels=args.max_pixels)
        except FileNotFoundError as err:
            raise SystemExit(str(err))
    print(f'[webui] {backend.describe()}'.replace('**', ''), flush=True)
    demo = build_demo(backend, args.threshold)
    demo.queue(default_concurrency_limit=1)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        show_error=True,
        max_file_size='200mb',
        **launch_kwargs(gradio))


if __name__ == '__main__':
    main()
