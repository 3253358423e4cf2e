"""RESULTS.md and its plots for `cpu_findings.py`: the three findings over seeds, mean ± std.

Reads what the runs left under the root: the evaluate.py JSON files
(`seed<N>/eval/<mix>_<variant>__<role>.json`), the step markers (wall-clock minutes,
`step_runner.py`) and the speed table (`speed/runtime.json`, `benchmarks/runtime_table.py`).
Anything not finished shows as '–', so the report can be written at any time. Spreads are the
sample standard deviation over seeds; the aggregation and cross-domain effects are paired per
seed (same seed, same variant, only the detection data differ), with the number of seeds where
aggregation helped.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import time

import numpy as np

import step_runner

SPEED_JSON = 'speed/runtime.json'
MISSING = '–'
MIXES = ('single', 'aggregated')
GT_CHOICES = ('all', 'pairs', 'none')
NO_PLOTS = 'None yet: no evaluation has finished.'
PLOT_COLORS = {'single': '#8c8c8c', 'aggregated': '#1f77b4'}


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One evaluation of every model: `role` names it in file names and tables."""
    role: str
    dataset: str
    gt: bool


def evaluations(default: str, unseen: str) -> list[Evaluation]:
    return [Evaluation('default', default, False), Evaluation('default_gt', default, True),
            Evaluation('unseen', unseen, False), Evaluation('unseen_gt', unseen, True)]


def planned_evaluations(default: str, unseen: str, *, gt_boxes: str,
                        pair: bool) -> list[Evaluation]:
    """The evaluations one model gets: always the training domain; the unseen domain for the
    single/aggregated pair variants; each also with ground-truth boxes when `gt_boxes` ('all',
    'pairs' or 'none') covers the model. GT boxes separate re-ID from detection, which matters
    most on the unseen domain, where detection may fail."""
    with_gt = gt_boxes == 'all' or (gt_boxes == 'pairs' and pair)
    return [evaluation for evaluation in evaluations(default, unseen)
            if (with_gt or not evaluation.gt) and (pair or evaluation.dataset != unseen)]


def mix_variants(mix: str, variants: list[str], pair_variants: list[str]) -> list[str]:
    """The variants trained on a mix's detector: all on the aggregated one (finding 1), the
    pair variants on the single one (findings 2 and 3)."""
    return list(dict.fromkeys(variants + pair_variants)) if mix == 'aggregated' else pair_variants


def eval_output(base: str, name: str, evaluation: Evaluation) -> str:
    """'seed0/eval/aggregated_J3__unseen.json' (relative to the root)."""
    return f'{base}/eval/{name}__{evaluation.role}.json'


def pick_row(rows: list[dict], gallery: int) -> dict | None:
    """The row of gallery size `gallery`, else the largest finite gallery, else PRW's one."""
    sized = {row['gallery_size']: row for row in rows if 'gallery_size' in row}
    if gallery in sized:
        return sized[gallery]
    finite = [size for size in sized if size > 0]
    if finite:
        return sized[max(finite)]
    return rows[0] if rows else None


def read_metric_row(path: str, gallery: int) -> dict | None:
    """The chosen evaluate.py row of a file, None when it does not exist (yet)."""
    if not os.path.exists(path):
        return None
    with open(path) as stream:
        return pick_row(json.load(stream)['results'], gallery)


def step_minutes(root: str, key: str) -> float | None:
    path = step_runner.marker_path(root, key)
    if not os.path.exists(path):
        return None
    with open(path) as stream:
        return json.load(stream)['minutes']


@dataclasses.dataclass
class Collected:
    """metric[(mix, variant, role, metric)] = per-seed values (None where missing)."""
    seeds: int
    metrics: dict[tuple[str, str, str, str], list[float | None]]
    minutes: dict[tuple[str, str], list[float | None]]   # (mix, 'detection' | variant)
    galleries: dict[str, set]                              # role -> gallery sizes reported

    def values(self, mix: str, variant: str, role: str, metric: str) -> list[float]:
        return [v for v in self.metrics.get((mix, variant, role, metric), []) if v is not None]


def collect(root: str, seeds: int, variants: list[str], pair_variants: list[str], default: str,
            unseen: str, gallery: int, gt_boxes: str = 'all') -> Collected:
    data = Collected(seeds, {}, {}, {})
    for seed in range(seeds):
        base = f'seed{seed}'
        for mix in MIXES:
            data.minutes.setdefault((mix, 'detection'), []).append(
                step_minutes(root, f'{base}/detection/{mix}'))
            for variant in mix_variants(mix, variants, pair_variants):
                name = f'{mix}_{variant}'
                parts = [step_minutes(root, f'{base}/reid/{name}:{stage}')
                         for stage in ('features', 'reid')]
                data.minutes.setdefault((mix, variant), []).append(
                    None if None in parts else sum(parts))
                for evaluation in planned_evaluations(default, unseen, gt_boxes=gt_boxes,
                                                      pair=variant in pair_variants):
                    row = read_metric_row(os.path.join(root, eval_output(base, name, evaluation)),
                                          gallery)
                    if row is not None:
                        data.galleries.setdefault(evaluation.role, set()).add(
                            row.get('gallery_size', row.get('gallery')))
                    for metric in ('mAP', 'top1', 'det_ap', 'mean_recall'):
                        data.metrics.setdefault((mix, variant, evaluation.role, metric), []) \
                            .append(None if row is None or metric not in row
                                    else 100.0 * row[metric])
    return data


def mean_std(values: list[float]) -> str:
    """'57.3 ± 2.1' (sample std over seeds), '57.3' for one value, '–' for none."""
    if not values:
        return MISSING
    if len(values) == 1:
        return f'{values[0]:.1f}'
    return f'{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f}'


def per_seed(values: list[float | None]) -> str:
    return ', '.join(MISSING if v is None else f'{v:.1f}' for v in values)


def paired(data: Collected, variant: str, role: str, metric: str = 'mAP') -> tuple[str, str]:
    """(aggregated - single, mean ± std over the seeds where both exist; 'k/n seeds better')."""
    single = data.metrics.get(('single', variant, role, metric), [])
    aggregated = data.metrics.get(('aggregated', variant, role, metric), [])
    differences = [a - s for s, a in zip(single, aggregated) if s is not None and a is not None]
    if not differences:
        return MISSING, MISSING
    sign = '+' if np.mean(differences) >= 0 else ''
    return (sign + mean_std(differences),
            f'{sum(d > 0 for d in differences)}/{len(differences)}')


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    return '\n'.join(lines + ['| ' + ' | '.join(row) + ' |' for row in rows])


def _speed_rows(root: str) -> tuple[list[str], dict[str, dict[str, float]]]:
    """Speed settings ('batch 1, 5 people') and model -> setting -> ms per image (float32)."""
    path = os.path.join(root, SPEED_JSON)
    if not os.path.exists(path):
        return [], {}
    with open(path) as stream:
        rows = json.load(stream).get('rows', [])
    settings, table = [], {}
    for row in rows:
        if row.get('precision', 'float32') != 'float32' or row.get('jit_compile') \
                or 'model' not in row:
            continue
        setting = f'b{row["batch"]}/{row["people"]}p'
        if setting not in settings:
            settings.append(setting)
        table.setdefault(row['model'], {})[setting] = row['ms_per_image']
    return settings, table


def finding_depth(data: Collected, variants: list[str], root: str) -> str:
    settings, speed = _speed_rows(root)
    header = ['variant', 'mAP %', 'top-1 %', 'mAP per seed', 'GT-box mAP %',
              're-ID minutes (pool + train)'] + [f'ms/image {s}' for s in settings]
    rows = []
    for variant in variants + (['Disj'] if 'Disj' in speed else []):
        if variant == 'Disj':
            cells = ['Disj (speed only)'] + [MISSING] * 5
        else:
            cells = [variant, mean_std(data.values('aggregated', variant, 'default', 'mAP')),
                     mean_std(data.values('aggregated', variant, 'default', 'top1')),
                     per_seed(data.metrics.get(('aggregated', variant, 'default', 'mAP'), [])),
                     mean_std(data.values('aggregated', variant, 'default_gt', 'mAP')),
                     mean_std([m for m in data.minutes.get(('aggregated', variant), [])
                               if m is not None])]
        cells += [f'{speed[variant][s]:.0f}' if s in speed.get(variant, {}) else MISSING
                  for s in settings]
        rows.append(cells)
    note = ('' if settings else '\n\nSpeed: not measured yet (`speed/runtime.json` missing).')
    return _table(header, rows) + note


def finding_pair(data: Collected, variants: list[str], roles: list[str]) -> str:
    """The single/aggregated pairs. Search recall is the fraction of the queries' gallery
    positives that some kept detection (score >= the search threshold) matches: the ceiling
    detection puts on search, 100 with GT boxes."""
    header = ['variant', 'boxes']
    header += ['single mAP %', 'aggregated mAP %', 'Δ mAP (paired)', 'seeds better',
               'single top-1 %', 'aggregated top-1 %', 'Δ top-1', 'det AP single / aggregated %',
               'search recall single / aggregated %']
    rows = []
    for variant in variants:
        for role in roles:
            difference, better = paired(data, variant, role)
            rank1_difference, _ = paired(data, variant, role, 'top1')
            det_role = role.removesuffix('_gt')
            rows.append([variant, 'GT' if role.endswith('_gt') else 'predicted',
                         mean_std(data.values('single', variant, role, 'mAP')),
                         mean_std(data.values('aggregated', variant, role, 'mAP')),
                         difference, better,
                         mean_std(data.values('single', variant, role, 'top1')),
                         mean_std(data.values('aggregated', variant, role, 'top1')),
                         rank1_difference,
                         f'{mean_std(data.values("single", variant, det_role, "det_ap"))} / '
                         f'{mean_std(data.values("aggregated", variant, det_role, "det_ap"))}',
                         f'{mean_std(data.values("single", variant, role, "mean_recall"))} / '
                         f'{mean_std(data.values("aggregated", variant, role, "mean_recall"))}'])
    return _table(header, rows)


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as stream:
            model = next(line.split(':', 1)[1].strip() for line in stream
                         if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    versions = []
    for package in ('tensorflow', 'tensorflow-cpu'):
        try:
            versions.append(f'{package} {importlib.metadata.version(package)}')
        except importlib.metadata.PackageNotFoundError:
            pass
    load = ', '.join(f'{x:.1f}' for x in os.getloadavg())
    return (f'{os.cpu_count()} logical CPUs ({model}), no GPU used; {", ".join(versions)}; '
            f'Python {platform.python_version()}; load average (1/5/15 min) when the report was '
            f'written: {load}')


def _plots(results_path: str, data: Collected, variants: list[str], pair_variants: list[str],
           gt_boxes: str, root: str) -> list[str]:
    """Writes the PNGs beside the report; returns their markdown image lines."""
    import findings_plots

    if not findings_plots.available():
        return ['Plots: matplotlib is not installed (`pip install -e ".[experiments]"`).']
    directory = os.path.dirname(os.path.abspath(results_path))
    prefix = os.path.splitext(os.path.basename(results_path))[0].lower()

    def values(mix, role, names):
        return [data.values(mix, variant, role, 'mAP') for variant in names]

    def pair_plot(name, title, role):
        return (name, findings_plots.grouped_plot, (title, pair_variants, {
            mix: values(mix, role, pair_variants) for mix in MIXES}, PLOT_COLORS))

    plots = [
        ('sharing_depth', findings_plots.grouped_plot,
         ('1. sharing depth: search mAP on the training domain (aggregated detection)', variants,
          {'aggregated': values('aggregated', 'default', variants)}, PLOT_COLORS)),
        pair_plot('aggregation',
                  '2. aggregation: single vs aggregated detection data (predicted boxes)',
                  'default'),
        *([pair_plot('aggregation_gt', '2. aggregation, ground-truth boxes', 'default_gt')]
          if gt_boxes != 'none' else []),
        pair_plot('cross_domain', '3. cross-domain: search mAP on the unseen domain', 'unseen'),
        *([pair_plot('cross_domain_gt', '3. cross-domain, ground-truth boxes', 'unseen_gt')]
          if gt_boxes != 'none' else []),
    ]
    settings, speed = _speed_rows(root)
    if settings:
        models = variants + (['Disj'] if 'Disj' in speed else [])
        plots.append(('speed', findings_plots.speed_plot, (models, settings, speed)))
    lines = []
    for name, function, arguments in plots:
        filename = f'{prefix}_{name}.png'
        function(os.path.join(directory, filename), *arguments)
        lines.append(f'![{name}]({filename})')
    return lines


def _schedule_caveat(extra_flags: str) -> str:
    """What the schedule was, and whether both detection runs had the same compute."""
    schedule = ('the synthetic preset (3.5 detection epochs, 16 re-ID epochs)' if not extra_flags
                else f'the synthetic preset with `{extra_flags}`')
    if '--steps_per_epoch=' in extra_flags:
        compute = ('both detection runs take the same number of steps (`--steps_per_epoch` '
                   'fixed), so aggregation changes the data seen, not the compute')
    else:
        compute = ('both detection runs train the same epochs of their data (as the paper '
                   'trains both settings), so the aggregated one takes ~25% more steps')
    return (f'Caveats: synthetic stand-ins, not the paper\'s datasets; a CPU-scale schedule, '
            f'{schedule}, so absolute numbers are far from the paper\'s and only the comparisons '
            f'matter; {compute}; with few seeds, a difference smaller than its spread is not a '
            f'finding. Speed is of untrained networks on this CPU, not a GPU.')


def write_report(path: str, root: str, *, seeds: int, variants: list[str], default: str,
                 unseen: str, gallery: int, invocation: str, commands: list[str], quick: bool,
                 estimate_minutes: float, pair_variants: list[str] | None = None,
                 gt_boxes: str = 'all', extra_flags: str = '', discussion: str = '') -> str:
    """Writes the results page (tables, plots, commands, machine) to `path`; returns its text.
    `discussion` (markdown, written by whoever read the numbers) goes after the introduction."""
    pair_variants = pair_variants or variants
    data = collect(root, seeds, variants, pair_variants, default, unseen, gallery, gt_boxes)
    measured = [m for values in data.minutes.values() for m in values if m is not None]
    galleries = '; '.join(f'{role}: {", ".join(sorted(map(str, sizes)))}'
                          for role, sizes in data.galleries.items()) or 'none yet'
    complete = sum(len([v for v in values if v is not None])
                   for key, values in data.metrics.items() if key[3] == 'mAP')
    expected = seeds * sum(
        len(planned_evaluations(default, unseen, gt_boxes=gt_boxes,
                                pair=variant in pair_variants))
        for mix in MIXES for variant in mix_variants(mix, variants, pair_variants))
    gt_suffixes = ['', '_gt'] if gt_boxes != 'none' else ['']
    sections = [
        '# CPU-scale reproduction of the paper\'s findings (synthetic data)', '',
        ('**`--quick` run: a few training steps per model. These numbers check the pipeline '
         'and mean nothing about the findings.**\n' if quick else '') +
        f'{seeds} seeds (0..{seeds - 1}; detector and re-ID seeds both set). Variants '
        f'{", ".join(variants)} on the aggregated detector; {", ".join(pair_variants)} on both. '
        f'Detection "single" = `{default}` only (the paper\'s J*c and '
        f'J*p); "aggregated" = `{default}` + the extra detection-only data (J* and J*m-w-p). '
        f'Re-ID always on `{default}`. Search mAP / top-1 in % at gallery size {gallery} '
        f'(reported: {galleries}); mean ± sample std over seeds; Δ = aggregated − '
        f'single, paired by seed. {complete}/{expected} evaluations finished.', '',
        _schedule_caveat(extra_flags), '',
        *([discussion.strip(), ''] if discussion.strip() else []),
        '## 1. Sharing depth (J2 vs J3 vs J4): accuracy and speed', '',
        f'Aggregated detection, evaluated on `{default}`; speed of untrained networks at the '
        f'synthetic image size (ms per image, batch b / p people per image).', '',
        finding_depth(data, variants, root), '',
        '## 2. Aggregation: more detection-only data, same variant (Table 1d)', '',
        f'Evaluated on `{default}` with predicted' +
        (' and ground-truth' if gt_boxes != 'none' else '') + ' gallery boxes.', '',
        finding_pair(data, pair_variants, ['default' + s for s in gt_suffixes]), '',
        '## 3. Cross-domain: aggregation on a domain never trained on (Table 1c)', '',
        f'The same models evaluated on `{unseen}`.', '',
        finding_pair(data, pair_variants, ['unseen' + s for s in gt_suffixes]), '',
        '## Plots', '',
        *(_plots(path, data, variants, pair_variants, gt_boxes, root) if complete
          else [NO_PLOTS]), '',
        '## Time and machine', '',
        f'Measured wall-clock time of the finished steps: {sum(measured):.0f} min '
        f'(plan estimate on 2 quiet cores: {estimate_minutes:.0f} min). Detection minutes per '
        f'run: single {mean_std([m for m in data.minutes.get(("single", "detection"), []) if m])}'
        f', aggregated '
        f'{mean_std([m for m in data.minutes.get(("aggregated", "detection"), []) if m])}.', '',
        f'Machine: {_machine()}. Report written {time.strftime("%Y-%m-%d %H:%M")}.', '',
        '## Commands', '', f'```\n{invocation}\n```', '',
        '<details><summary>every step</summary>', '', '```', *commands, '```', '</details>', '',
    ]
    text = '\n'.join(sections)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as stream:
        stream.write(text)
    return text
