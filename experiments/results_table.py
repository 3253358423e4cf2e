"""Collects the evaluate.py JSON files of Table 1 recipes into one markdown table, ours beside
the paper's numbers.

One markdown table per part of Table 1 (1a, 1c, 1d), one line per (recipe, boxes, gallery): the
CUHK-SYSU galleries 100 and 4000, or PRW's one gallery. A recipe not evaluated yet keeps its line
with the paper's numbers and '–' for ours, so the table shows what is left to run. The paper's
detection AP is left empty where the paper gives none (it gives one for Table 1c only).
"""

from __future__ import annotations

import json
import os

import recipes as recipes_lib

MISSING = '–'
PART_TITLES = {
    '1a': 'Table 1a: joint models and the disjoint baseline (detection on all four datasets)',
    '1c': 'Table 1c: cross-dataset, trained on PRW (re-ID) and evaluated on CUHK-SYSU (and on '
          'PRW, intra-dataset, for detection AP)',
    '1d': 'Table 1d: CUHK-SYSU only (J*c) vs aggregated detection data (J*)',
}
HEADER = ('recipe', 'model', 'detection data', 're-ID data', 'evaluated on', 'boxes', 'gallery',
          'mAP %', 'paper mAP %', 'Rank-1 %', 'paper Rank-1 %', 'det AP %', 'paper det AP %')


def gallery_label(row: dict) -> str:
    """'100' / '4000' for a CUHK-SYSU-style gallery size, 'PRW' for PRW's standard gallery."""
    if 'gallery_size' in row:
        return str(row['gallery_size'])
    return recipes_lib.PRW_GALLERY if row.get('gallery') == 'standard' else str(row.get('gallery'))


def read_metrics(path: str) -> dict[str, dict]:
    """gallery label -> the evaluate.py row, from one `--output_json` file ({} if missing).

    A sweep over `--max_detections_per_image` (the PRW recipes) holds one row per value under
    `results` and each gallery's best, by mAP, under `best`: the best is the one reported. Its
    `det_ap` is every row's: evaluate.py computes detection AP once per file, from all of the
    model's detections, which neither the cap nor `--det_thresh` filters.

    Raises:
        ValueError: the file exists but is not evaluate.py's output, naming it.
    """
    if not os.path.exists(path):
        return {}
    with open(path) as stream:
        content = json.load(stream)
    if not isinstance(content, dict) or 'results' not in content:
        raise ValueError(f'{path}: no "results" list; not an evaluate.py --output_json file')
    return {gallery_label(row): row for row in content.get('best') or content['results']}


def _percent(value: float | None) -> str:
    return MISSING if value is None else f'{100.0 * value:.1f}'


def _paper(value: float | None) -> str:
    return MISSING if value is None else f'{value:.1f}'


def table_lines(recipe: recipes_lib.Recipe, root: str) -> list[tuple[str, ...]]:
    """The table cells of one recipe: a line per evaluation and gallery of the paper."""
    lines = []
    for evaluation in recipe.evaluations:
        measured = read_metrics(os.path.join(root, evaluation.output))
        paper_det_ap = '' if evaluation.paper_det_ap is None else _paper(evaluation.paper_det_ap)
        for gallery, (paper_map, paper_rank1) in evaluation.paper.items():
            row = measured.get(gallery, {})
            lines.append((recipe.id, recipe.model, recipe.detection_data, recipe.reid_data,
                          evaluation.dataset, evaluation.boxes, gallery,
                          _percent(row.get('mAP')), _paper(paper_map),
                          _percent(row.get('top1')), _paper(paper_rank1),
                          _percent(row.get('det_ap')), paper_det_ap))
    return lines


def markdown(recipes: list[recipes_lib.Recipe], root: str) -> str:
    """The tables of `recipes` (metrics read under `root`), one per part, as markdown."""
    sections = []
    for part in sorted({recipe.part for recipe in recipes}):
        rows = [line for recipe in recipes if recipe.part == part
                for line in table_lines(recipe, root)]
        text = [f'### {PART_TITLES.get(part, part)}', '',
                '| ' + ' | '.join(HEADER) + ' |', '|' + '---|' * len(HEADER)]
        text += ['| ' + ' | '.join(cells) + ' |' for cells in rows]
        sections.append('\n'.join(text))
    return '\n\n'.join(sections) + '\n'
