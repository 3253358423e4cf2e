"""The paper's comparison on one detector, over seeds: search mAP of J2, J3, J4 and Disj in domain
and on the held-out style, from `evaluate.py` JSON files, as a markdown table and a plot.

    python experiments/sharing_depth_table.py \
        --runs=J3:0:gt=runs/gt_h_frozen,J3:1:gt=runs/gt_k_j3_s1,J4:0:gt=runs/gt_i_j4,... \
        --plot=experiments/results_sharing_depth_frozen.png

Each run is `VARIANT:SEED:BOXES=PREFIX`: BOXES is `gt` (ground-truth gallery boxes) or `det` (the
model's own detections), and `PREFIX_default.json` / `PREFIX_domain_b.json` are `evaluate.py
--output_json` files of `synthetic_person_search/default` and `.../domain_b`. A domain whose file
is missing is left out of that run (and said so). Values are mean ± sample standard deviation over
the seeds given, with the seeds' own values beside them, at the gallery size `--gallery_size`.
The plot (matplotlib, the `experiments` extra) shows GT-box mAP per variant, one bar per domain,
each seed a dot.
"""

from __future__ import annotations

import collections
import json
import os

import numpy as np
from absl import app, flags

import findings_plots

DOMAINS = ('default', 'domain_b')
BOXES = ('gt', 'det')
VARIANT_ORDER = ('J2', 'J3', 'J4', 'Disj')

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command's flags, defined only when it runs as a script: the tests import this module
    beside other experiment scripts whose flags share names (`gallery_size`)."""
    flags.DEFINE_list('runs', [], 'VARIANT:SEED:BOXES=PREFIX entries (module docstring).')
    flags.DEFINE_integer('gallery_size', 100, 'The gallery size whose result is read.')
    flags.DEFINE_string('plot', None, 'PNG path of the GT-box plot (none without it).')
    flags.DEFINE_string('title', 'GT-box search mAP on one detector', 'The plot\'s title.')


def parse_run(entry: str) -> tuple[str, int, str, str]:
    """(variant, seed, boxes, prefix) of a `VARIANT:SEED:BOXES=PREFIX` entry.

    Raises:
        ValueError: naming the entry and what is wrong with it.
    """
    key, separator, prefix = entry.partition('=')
    parts = key.split(':')
    if not separator or not prefix or len(parts) != 3:
        raise ValueError(f'run {entry!r} is not VARIANT:SEED:BOXES=PREFIX')
    variant, seed, boxes = parts
    if not seed.isdigit():
        raise ValueError(f'run {entry!r}: the seed {seed!r} is not a number')
    if boxes not in BOXES:
        raise ValueError(f'run {entry!r}: boxes must be one of {BOXES}, got {boxes!r}')
    return variant, int(seed), boxes, prefix


def read_result(path: str, gallery_size: int) -> dict:
    """The result at `gallery_size` of one `evaluate.py --output_json` file.

    Raises:
        ValueError: the file holds no result at that gallery size.
    """
    with open(path) as file:
        results = json.load(file)['results']
    for result in results:
        if result.get('gallery_size') == gallery_size:
            return result
    raise ValueError(f'{path} has no result at gallery size {gallery_size} (it has '
                     f'{sorted(r.get("gallery_size") for r in results)})')


def collect(runs: list[str], gallery_size: int) -> tuple[dict, list[str]]:
    """{(variant, boxes, domain): {seed: mAP}} and the files that were missing."""
    values = collections.defaultdict(dict)
    missing = []
    for entry in runs:
        variant, seed, boxes, prefix = parse_run(entry)
        for domain in DOMAINS:
            path = f'{prefix}_{domain}.json'
            if not os.path.exists(path):
                missing.append(path)
                continue
            values[(variant, boxes, domain)][seed] = read_result(path, gallery_size)['mAP']
    return dict(values), missing


def _summary(by_seed: dict[int, float] | None) -> str:
    if not by_seed:
        return '–'
    ordered = [by_seed[seed] for seed in sorted(by_seed)]
    spread = f' ± {np.std(ordered, ddof=1):.3f}' if len(ordered) > 1 else ''
    seeds = ', '.join(f'{value:.3f}' for value in ordered)
    return f'{np.mean(ordered):.3f}{spread} ({seeds})'


def variants_of(values: dict) -> list[str]:
    """The variants present, in the paper's order (J2, J3, J4, Disj), then any other."""
    present = {variant for variant, _, _ in values}
    return ([v for v in VARIANT_ORDER if v in present]
            + sorted(present.difference(VARIANT_ORDER)))


def markdown_table(values: dict) -> str:
    """One row per variant and box source: mAP per domain, mean ± std (each seed's value)."""
    lines = ['| variant | boxes | mAP, `default`: mean ± std (per seed) | mAP, `domain_b` '
             '| seeds |', '|---|---|---|---|---|']
    for variant in variants_of(values):
        for boxes in BOXES:
            cells = [values.get((variant, boxes, domain)) for domain in DOMAINS]
            if not any(cells):
                continue
            seeds = sorted({seed for cell in cells if cell for seed in cell})
            lines.append(f'| {variant} | {boxes} | {_summary(cells[0])} | {_summary(cells[1])} | '
                         f'{", ".join(map(str, seeds))} |')
    return '\n'.join(lines)


def plot(values: dict, path: str, title: str) -> str:
    """GT-box mAP (%) per variant, one bar per domain, each seed a dot."""
    variants = variants_of(values)
    groups = {domain: [[100 * v for _, v in sorted(values.get((variant, 'gt', domain),
                                                              {}).items())]
                       for variant in variants]
              for domain in DOMAINS}
    return findings_plots.grouped_plot(path, title, variants, groups,
                                       {'default': 'C0', 'domain_b': 'C1'})


def main(argv):
    del argv
    try:
        values, missing = collect(FLAGS.runs, FLAGS.gallery_size)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    for path in missing:
        print(f'missing (left out): {path}')
    print(markdown_table(values))
    if FLAGS.plot:
        if not findings_plots.available():
            raise app.UsageError('--plot needs matplotlib (pip install -e ".[experiments]")')
        print(f'plot: {plot(values, FLAGS.plot, FLAGS.title)}')


if __name__ == '__main__':
    define_flags()
    app.run(main)
