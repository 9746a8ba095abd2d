# Copyright (c) mmris contributors. All rights reserved.
"""Check a REFER data root before training: files, splits, images.

Usage::

    python tools/dataset_converters/check_refer_root.py data/ \
        --datasets refcoco refcoco+ refcocog_umd refcocog_google

Expected layout::

    DATA_ROOT/images/train2014/COCO_train2014_*.jpg
    DATA_ROOT/refcoco/{instances.json, refs(unc).p}
    DATA_ROOT/refcoco+/{instances.json, refs(unc).p}
    DATA_ROOT/refcocog/{instances.json, refs(umd).p, refs(google).p}
    DATA_ROOT/grefcoco/{instances.json, grefs(unc).json | grefs(unc).p}

``--datasets grefcoco`` checks the gRefCOCO layout (henghuiding/ReLA's
release) and prints per split the refs, sentences and the shares of
no-target (``ann_id == [-1]``) and multi-target expressions.

Prints per split the number of referred objects (compared with the
official counts: ✓ equal, ✗ different), sentences and images present /
missing, then lists images whose size (read from the header, stored pixel
order: the EXIF orientation is ignored, as the COCO annotations and
``LoadRefImage`` do) differs from ``instances.json`` and degenerate
annotations (empty segmentation, polygons with < 3 points, an odd number of
coordinates or no area). Annotation pickles are read safely (any pickled
global is refused) and corrupt files are reported, not raised.

With ``--word-len N`` (or ``--config CONFIG``, whose datasets' ``word_len``
is used) it also reports per split how many sentences are longer than the
text context: CLIP ids (SOT + BPE tokens + EOT) beyond ``word_len`` are cut
off before the text encoder (all official configs use 17, also for the long
G-Ref expressions), with the longest sentence and the mean excess. The text
read is the dataset's: REFER's ``sent``, gRefCOCO's ``raw`` (as ReLA).

Exits with 1 if a file is missing or corrupt, a split is absent, an image
is missing or has another size than its annotation, or an annotation is
absent or malformed (RLE counts that do not cover the image included); with
``--strict`` also if a count differs from the official one or an annotation
is degenerate. Long sentences are reported, never fatal.
"""
import argparse
import os.path as osp
import runpy
import sys
from collections import OrderedDict
from typing import List, Optional, Tuple


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
import mmris  # noqa: F401,E402  (compat first)
from mmris.datasets.grefcoco import gref_paths, load_grefs  # noqa: E402
from mmris.datasets.refcoco import OFFICIAL_SPLIT_SIZES  # noqa: E402
from mmris.datasets.refcoco import (REFER_DATASETS, load_instances, load_refs,
                                    refer_paths)
from mmris.datasets.refer_io import AnnotationFileError  # noqa: E402
from mmris.datasets.refer_io import RefusedGlobalError
from mmris.datasets.transforms.loading import \
    inspect_segmentation  # noqa: E402
from mmris.datasets.transforms.tokenizer import count_tokens  # noqa: E402

LAYOUT = """Expected layout:
  DATA_ROOT/images/train2014/COCO_train2014_*.jpg   (COCO train2014 images)
  DATA_ROOT/<dataset>/instances.json
  DATA_ROOT/<dataset>/refs(<split_by>).p
with (dataset, split_by) in (refcoco, unc), (refcoco+, unc), (refcocog, umd),
(refcocog, google); gRefCOCO: DATA_ROOT/grefcoco/grefs(unc).json (or .p)
with DATA_ROOT/grefcoco/instances.json (--datasets grefcoco)."""

#: ``--datasets`` name of the gRefCOCO layout.
GREFCOCO = 'grefcoco'

#: What is looked for when ``--datasets`` is not given.
DEFAULT_DATASETS = ('refcoco', 'refcoco+', 'refcocog_umd', 'refcocog_google',
                    GREFCOCO)


def present_datasets(data_root: str) -> List[str]:
    """The datasets of :data:`DEFAULT_DATASETS` whose refs file (or, for
    gRefCOCO, grefs file) exists under ``data_root``."""
    found = []
    for name in DEFAULT_DATASETS:
        if name == GREFCOCO:
            refs_file = gref_paths(data_root, 'grefcoco', 'unc')[0]
        else:
            refs_file = refer_paths(data_root, *REFER_DATASETS[name])[0]
        if osp.isfile(refs_file):
            found.append(name)
    return found


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Check a REFER (RefCOCO/+/g) data root')
    parser.add_argument('data_root', help='data root directory')
    parser.add_argument(
        '--datasets',
        nargs='+',
        default=None,
        choices=sorted(REFER_DATASETS) + [GREFCOCO],
        help='datasets to check ("grefcoco": the gRefCOCO layout; default: '
        'every dataset whose annotation file is in the root)')
    parser.add_argument(
        '--img-prefix',
        default='images/train2014',
        help='image folder relative to data_root')
    parser.add_argument(
        '--strict',
        action='store_true',
        help='also fail when object counts differ from the official ones '
        'or annotations are degenerate')
    parser.add_argument(
        '--max-list',
        type=int,
        default=10,
        help='problems listed per kind (all are counted)')
    parser.add_argument(
        '--max-pixels',
        type=int,
        default=None,
        help='largest image (width x height, read from its header) that '
        'training accepts (default: $MMRIS_MAX_IMAGE_PIXELS or 67108864); '
        'larger images are listed as problems')
    parser.add_argument(
        '--word-len',
        type=int,
        default=None,
        help='report per split the sentences longer than this many CLIP '
        'ids (SOT + tokens + EOT; the datasets\' word_len)')
    parser.add_argument(
        '--config',
        default=None,
        help='take --word-len from this config (its training dataset\'s '
        'word_len)')
    args = parser.parse_args(argv)
    if args.word_len is not None and args.word_len < 2:
        parser.error(f'--word-len must be >= 2 (SOT + EOT), got '
                     f'{args.word_len}')
    return args


def config_word_len(path: str) -> int:
    """The ``word_len`` of a config's training dataset (the first dataset
    of a ``ConcatDataset``), else of its test dataset."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)

    def find(node):
        if isinstance(node, dict):
            if node.get('word_len') is not None:
                return int(node['word_len'])
            for key in ('dataset', 'datasets'):
                found = find(node.get(key))
                if found is not None:
                    return found
        if isinstance(node, (list, tuple)):
            for item in node:
                found = find(item)
                if found is not None:
                    return found
        return None

    for loader in ('train_dataloader', 'test_dataloader', 'val_dataloader'):
        found = find(cfg.get(loader))
        if found is not None:
            return found
    raise SystemExit(f'{path}: no dataset with a word_len')


def long_sentences(refs: List[dict], word_len: int,
                   field: str) -> 'OrderedDict[str, dict]':
    """Per split: sentences, those longer than ``word_len`` CLIP ids, the
    longest (ids) and the mean excess of the long ones; sentences without
    ``field`` are counted apart."""
    stats: 'OrderedDict[str, dict]' = OrderedDict()
    for ref in refs:
        st = stats.setdefault(
            ref['split'],
            dict(sentences=0, longer=0, excess=0, longest=0, no_text=0))
        for sent in ref.get('sentences', []):
            text = sent.get(field)
            if not isinstance(text, str):
                st['no_text'] += 1
                continue
            n = count_tokens(text.strip())
            st['sentences'] += 1
            st['longest'] = max(st['longest'], n)
            if n > word_len:
                st['longer'] += 1
                st['excess'] += n - word_len
    return stats


def report_long_sentences(refs: List[dict], word_len: Optional[int],
                          field: str) -> None:
    """Print :func:`long_sentences` as a table."""
    if word_len is None:
        return
    print(f'  sentences longer than word_len {word_len} (CLIP ids: SOT + '
          f'tokens + EOT; the rest is cut off), text {field!r}:')
    print(f'    {"split":<8}{"sentences":>10}{"longer":>8}{"share":>8}'
          f'{"longest":>9}{"mean excess":>13}')
    for split, st in long_sentences(refs, word_len, field).items():
        mean = st['excess'] / st['longer'] if st['longer'] else 0.0
        print(f'    {split!s:<8}{st["sentences"]:>10}{st["longer"]:>8}'
              f'{_share(st["longer"], st["sentences"]):>8}'
              f'{st["longest"]:>9}{mean:>13.1f}')
        if st['no_text']:
            print(f'      {st["no_text"]} sentences have no {field!r}')


def _report_list(title: str, items: List[str], max_list: int) -> None:
    print(f'    {len(items)} {title}:')
    for item in items[:max_list]:
        print(f'      {item}')
    if len(items) > max_list:
        print(f'      ... and {len(items) - max_list} more (--max-list)')


def _image_size_problem(path: str,
                        img: dict,
                        max_pixels: Optional[int] = None) -> Optional[str]:
    """Compare the header size of an image with its annotation and the
    pixel limit.

    Reads the header only (no decoding), as ``LoadRefImage`` does before
    decoding: the stored pixel order, ignoring the EXIF orientation, like
    the annotations; an image over the limit (``max_pixels``, see
    ``mmris.datasets.transforms.max_image_pixels``) is a problem, as
    training would refuse it.
    """
    from mmris.datasets.transforms import (ImageTooLargeError,
                                           check_image_pixels)
    try:
        with open(path, 'rb') as f:
            w, h = check_image_pixels(f.read(), path, max_pixels)
    except ImageTooLargeError as err:
        return str(err)
    except OSError as err:
        return f'{path}: unreadable image ({err})'
    if (h, w) != (int(img['height']), int(img['width'])):
        return (f'{path}: {h}x{w} (height x width) but instances.json says '
                f'{img["height"]}x{img["width"]} (image_id {img["id"]})')
    return None


def _check_images(image_ids,
                  imgs: dict,
                  img_dir: str,
                  size_problems: List[str],
                  max_pixels: Optional[int] = None) -> int:
    """Count the images of ``image_ids`` that are absent from ``img_dir``
    (or from ``instances.json``) and collect size mismatches of the others
    into ``size_problems``."""
    missing = 0
    for image_id in sorted(image_ids, key=str):
        img = imgs.get(image_id)
        path = None if img is None else osp.join(img_dir, img['file_name'])
        if path is None or not osp.isfile(path):
            missing += 1
            continue
        problem = _image_size_problem(path, img, max_pixels)
        if problem:
            size_problems.append(problem)
    return missing


def check_dataset(data_root: str,
                  name: str,
                  img_dir: str,
                  strict: bool,
                  max_list: int = 10,
                  word_len: Optional[int] = None,
                  notes: Optional[List[str]] = None,
                  max_pixels: Optional[int] = None) -> bool:
    """Check one dataset; print a report. Returns True when all is fine.

    Fails on a missing or corrupt file, a split absent from the refs file,
    a missing image, an image whose size differs from ``instances.json`` or
    is over the pixel limit, a ref whose annotation is absent or malformed,
    and (``strict``) object counts that differ from the official ones or
    degenerate annotations. Counts that differ without ``strict`` are
    reported in a note (appended to ``notes`` too).
    """
    dataset, split_by = REFER_DATASETS[name]
    refs_file, instances_file = refer_paths(data_root, dataset, split_by)
    print(f'== {name} ({dataset}, split_by={split_by})')
    ok = True
    for path in (refs_file, instances_file):
        if not osp.isfile(path):
            print(f'  MISSING: {path}')
            ok = False
    if not ok:
        return False
    try:
        refs = load_refs(refs_file)
        imgs, anns, _ = load_instances(instances_file)
    except (AnnotationFileError, RefusedGlobalError, OSError) as err:
        print(f'  ERROR: {err}')
        return False
    official = OFFICIAL_SPLIT_SIZES.get((dataset, split_by), {})
    stats = OrderedDict()
    for ref in refs:
        st = stats.setdefault(
            ref['split'],
            dict(objects=0, sentences=0, images=set(), missing_ann=0))
        st['objects'] += 1
        st['sentences'] += len(ref.get('sentences', []))
        st['images'].add(ref.get('image_id'))
        if ref['ann_id'] not in anns:
            st['missing_ann'] += 1
    order = list(official) + sorted(
        (s for s in stats if s not in official), key=str)
    print(f'  {"split":<8}{"objects":>9}{"official":>10}   '
          f'{"sentences":>9}{"images":>8}{"missing":>9}')
    size_problems: List[str] = []
    differ: List[str] = []
    for split in order:
        st = stats.get(split)
        if st is None:
            print(f'  {split:<8}{0:>9}{official[split]:>10} ✗ split absent '
                  f'from {refs_file}')
            ok = False
            continue
        missing = _check_images(st['images'], imgs, img_dir, size_problems,
                                max_pixels)
        ref_count = official.get(split)
        if ref_count is None:
            mark = ' '
            ref_text = '-'
        else:
            mark = '✓' if ref_count == st['objects'] else '✗'
            ref_text = str(ref_count)
            if mark == '✗':
                differ.append(split)
                ok = ok and not strict
        print(f'  {split!s:<8}{st["objects"]:>9}{ref_text:>10} {mark} '
              f'{st["sentences"]:>9}{len(st["images"]):>8}{missing:>9}')
        if missing:
            ok = False
        if st['missing_ann']:
            print(f'    {st["missing_ann"]} refs point to ann ids absent from '
                  f'{instances_file}')
            ok = False
    report_long_sentences(refs, word_len, 'sent')
    if differ and not strict:
        note = (f'{name}: the object counts of {len(differ)} split(s) '
                f'({", ".join(map(str, differ))}) differ from the official '
                'release (✗): these are not the official annotation files '
                '(e.g. the synthetic quick-start data); --strict makes this '
                'an error')
        print(f'  note: {note}')
        if notes is not None:
            notes.append(note)
    return _report_images_and_annotations(ok, size_problems, refs, imgs, anns,
                                          instances_file, strict, max_list)


def _report_images_and_annotations(ok: bool, size_problems: List[str],
                                   refs: List[dict], imgs: dict, anns: dict,
                                   instances_file: str, strict: bool,
                                   max_list: int) -> bool:
    """Report image-size problems and malformed / degenerate annotations
    (shared by the REFER and gRefCOCO checks); returns the updated ``ok``.
    """
    if size_problems:
        _report_list(
            'image(s) whose size differs from instances.json (resized or '
            'rotated copies? the masks would be misaligned) or is over the '
            'pixel limit (--max-pixels)', size_problems, max_list)
        ok = False
    degenerate, malformed = _annotation_problems(refs, imgs, anns)
    if malformed:
        _report_list(f'malformed annotation(s) in {instances_file}', malformed,
                     max_list)
        ok = False
    if degenerate:
        n_empty = sum(d.endswith('the mask is empty') for d in degenerate)
        _report_list(
            f'target annotation(s) that are degenerate ({n_empty} with an '
            'empty mask: skipped in training, IoU 0 in evaluation)',
            degenerate, max_list)
        ok = ok and not strict
    return ok


def _annotation_problems(refs: List[dict], imgs: dict,
                         anns: dict) -> Tuple[List[str], List[str]]:
    """Degenerate (warned) and malformed (refused) annotations of refs."""
    degenerate, malformed = [], []
    pairs = [(ref, ann_id) for ref in refs for ann_id in _ann_ids(ref)]
    for ref, ann_id in pairs:
        ann = anns.get(ann_id)
        img = None if ann is None else imgs.get(ann['image_id'])
        if img is None:
            continue
        where = f'{ref["split"]}: ref_id {ref["ref_id"]} ann_id {ann["id"]}'
        try:
            problems, _ = inspect_segmentation(ann['segmentation'],
                                               img['height'], img['width'])
        except (TypeError, ValueError) as err:
            malformed.append(f'{where}: {err}')
            continue
        if any(p.startswith('RLE size') for p in problems):
            malformed.append(f'{where}: ' + ', '.join(problems))
        elif problems:
            degenerate.append(f'{where}: ' + ', '.join(problems))
    return degenerate, malformed


def _ann_ids(ref: dict) -> List:
    """Annotation ids of a REFER ref (one) or gRefCOCO ref (a list, [-1]
    for no target: none)."""
    ann_ids = ref['ann_id']
    if not isinstance(ann_ids, (list, tuple)):
        return [ann_ids]
    return [a for a in ann_ids if a != -1]


def _share(part: int, whole: int) -> str:
    return f'{100.0 * part / whole:.1f}%' if whole else '-'


def check_grefcoco(data_root: str,
                   img_dir: str,
                   strict: bool,
                   max_list: int = 10,
                   word_len: Optional[int] = None,
                   max_pixels: Optional[int] = None) -> bool:
    """Check the gRefCOCO files; print per-split counts and shares.

    Per split: refs, sentences, the share of no-target refs / sentences
    (``ann_id == [-1]``), of multi-target refs / sentences (several ann
    ids), images and missing images. Fails like :func:`check_dataset`
    (missing or corrupt file, a split of train/val/testA/testB absent,
    missing or resized images, absent or malformed annotations; with
    ``strict`` degenerate annotations).
    """
    refs_file, instances_file = gref_paths(data_root)
    print(f'== {GREFCOCO} (split_by=unc, {osp.basename(refs_file)})')
    missing_files = [
        p for p in (refs_file, instances_file) if not osp.isfile(p)
    ]
    for path in missing_files:
        print(f'  MISSING: {path}')
    if missing_files:
        return False
    try:
        refs = load_grefs(refs_file)
        imgs, anns, _ = load_instances(instances_file)
    except (AnnotationFileError, RefusedGlobalError, OSError) as err:
        print(f'  ERROR: {err}')
        return False
    ok = True
    stats = OrderedDict((s, None) for s in ('train', 'val', 'testA', 'testB'))
    for ref in refs:
        st = stats.get(ref['split']) or dict(
            refs=0,
            sentences=0,
            nt_refs=0,
            nt_sents=0,
            mt_refs=0,
            mt_sents=0,
            images=set(),
            missing_ann=0)
        stats[ref['split']] = st
        ids = _ann_ids(ref)
        n_sents = len(ref.get('sentences', []))
        st['refs'] += 1
        st['sentences'] += n_sents
        st['nt_refs'] += int(not ids)
        st['nt_sents'] += n_sents * int(not ids)
        st['mt_refs'] += int(len(ids) > 1)
        st['mt_sents'] += n_sents * int(len(ids) > 1)
        st['images'].add(ref.get('image_id'))
        st['missing_ann'] += sum(a not in anns for a in ids)
    print(f'  {"split":<8}{"refs":>8}{"sentences":>10}{"no-target":>18}'
          f'{"multi-target":>18}{"images":>8}{"missing":>9}')
    print(f'  {"":<8}{"":>8}{"":>10}{"refs / sents":>18}'
          f'{"refs / sents":>18}')
    size_problems: List[str] = []
    for split, st in stats.items():
        if st is None:
            print(f'  {split:<8} ✗ split absent from {refs_file}')
            ok = False
            continue
        missing = _check_images(st['images'], imgs, img_dir, size_problems,
                                max_pixels)
        nt = (f'{_share(st["nt_refs"], st["refs"])} / '
              f'{_share(st["nt_sents"], st["sentences"])}')
        mt = (f'{_share(st["mt_refs"], st["refs"])} / '
              f'{_share(st["mt_sents"], st["sentences"])}')
        print(f'  {split!s:<8}{st["refs"]:>8}{st["sentences"]:>10}{nt:>18}'
              f'{mt:>18}{len(st["images"]):>8}{missing:>9}')
        if missing:
            ok = False
        if st['missing_ann']:
            print(f'    {st["missing_ann"]} target ids point to annotations '
                  f'absent from {instances_file}')
            ok = False
    crowd = sum(1 for ref in refs for a in _ann_ids(ref)
                if (anns.get(a) or {}).get('iscrowd'))
    if crowd:
        print(f'    {crowd} target ids are crowd regions (iscrowd): left out '
              'of the ground truth, as ReLA (include_crowd=True keeps them)')
    report_long_sentences(refs, word_len, 'raw')
    return _report_images_and_annotations(ok, size_problems, refs, imgs, anns,
                                          instances_file, strict, max_list)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isdir(args.data_root):
        print(f'MISSING: data root {args.data_root} is not a directory.\n'
              f'{LAYOUT}')
        return 1
    img_dir = osp.join(args.data_root, args.img_prefix)
    all_ok = True
    if not osp.isdir(img_dir):
        print(f'MISSING: image folder {img_dir}')
        all_ok = False
    word_len = args.word_len
    if word_len is None and args.config is not None:
        word_len = config_word_len(args.config)
        print(f'word_len {word_len} (from {args.config})')
    notes: List[str] = []
    names = args.datasets
    if names is None:
        names = present_datasets(args.data_root)
        absent = [n for n in DEFAULT_DATASETS if n not in names]
        print(f'Datasets found in {args.data_root}: '
              f'{", ".join(names) or "none"}' +
              (f' (not present: {", ".join(absent)})' if absent else ''))
        if not names:
            print(f'MISSING: no REFER or gRefCOCO annotation file.\n{LAYOUT}')
            return 1
    for name in names:
        if name == GREFCOCO:
            all_ok = check_grefcoco(args.data_root, img_dir, args.strict,
                                    args.max_list, word_len,
                                    args.max_pixels) and all_ok
            continue
        all_ok = check_dataset(args.data_root, name, img_dir, args.strict,
                               args.max_list, word_len, notes,
                               args.max_pixels) and all_ok
    if not all_ok:
        print(f'\nSome checks failed.\n{LAYOUT}')
        return 1
    if notes:
        print('\nAll checks passed, but the object counts are not the '
              'official ones (see the notes above): not the official '
              'annotation files.')
        return 0
    print('\nAll checks passed.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
