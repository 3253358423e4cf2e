"""One recipe per row of the paper's Table 1 (parts a, c, d), as train.py / evaluate.py commands.

A recipe is a list of `Step`s, each one command line with the output directory it writes.
Steps are identified by their `key` (the output they produce), so recipes that share a run share
the step: one detection run per detection-data mix serves J2, J3, J4 and Disj (`train.py
--stage=features --variant=... --detection_model_dir=...` re-splits the same detector), and the
models of Table 1a on CUHK-SYSU are those of Table 1d (aggregated detection). `run_recipes.py`
runs the steps of the chosen recipes once each, in order, and collects the table.

Which data trains what (paper §3.1-3.2):

| part | detection (stage 1) | re-ID (stage 2) | evaluated on |
|---|---|---|---|
| 1a | CUHK-SYSU + PRW + MOT17Det + WIDER ("all4") | PRW or CUHK-SYSU | that dataset |
| 1c J*p | PRW | PRW | CUHK-SYSU (cross-dataset); PRW (intra) |
| 1c J*m-w-p | MOT17Det + WIDER + PRW ("mwp") | PRW | CUHK-SYSU (cross-dataset); PRW (intra) |
| 1d J*c | CUHK-SYSU | CUHK-SYSU | CUHK-SYSU, predicted and GT boxes |
| 1d J* | all4 (the 1a CUHK-SYSU models) | CUHK-SYSU | CUHK-SYSU, predicted and GT boxes |

The paper does not say which detection data its Table 1a PRW rows used; we take its §3.1
setting (all four datasets), the one its CUHK-SYSU rows (equal to Table 1d's J*) used.

PRW is scored as the paper reports it (docs/evaluation.md#prw-three-readings): the best mAP over
a number of detections kept per gallery image (its rows are at 5 boxes per image, the compared
methods at 3 or 5), so the PRW evaluations sweep `--max_detections_per_image` over
`PRW_BOXES_PER_IMAGE` with no score threshold (`--det_thresh=0`: the N best boxes, whatever
their score); the results table reads each file's best row.

Detection AP: evaluate.py reports it (`det_ap`) for every evaluation, over the dataset's whole
test gallery. The paper gives it for Table 1c only (§3.2): J*p 81% on PRW and 30% on CUHK-SYSU,
J*m-w-p 79% and 60% (`Evaluation.paper_det_ap`). So each 1c recipe is also evaluated on PRW, its
re-ID dataset (intra-dataset), where the paper gives no search numbers, only this AP. The
detector is the same for J2, J3 and J4 of one mix, so its AP could come from one evaluation per
mix, but PRW's search numbers differ per model and evaluate.py gives both in one run: one PRW
evaluation per 1c recipe (6 evaluate.py steps, none shared), whose three `det_ap` per mix should
agree. In a PRW sweep every row holds the same `det_ap`: evaluate.py computes it once, from all
of the model's detections (score >= its `--detection_metric_thresh`, 0.01), which neither
`--det_thresh` nor `--max_detections_per_image` filters (`ps_tf/evaluation/sweep.py`).

Paths in the command lines are relative to the run root (`{root}`), filled in by the runner.
Paper numbers are percentages (Table 1 of the paper); `None` where the text does not give one
(the J2p Rank-1 cells are missing from our copy of the table).
"""

from __future__ import annotations

import dataclasses
import os

PRESET = 'paper'
VARIANTS = ('J2', 'J3', 'J4')
DISJOINT = 'Disj'

# Detection-data mixes (train.py --datasets) and the split their detection AP is validated on.
DETECTION_MIXES = {
    'all4': ('cuhk_sysu:1,prw:1,mot17det:1,wider_pedestrian:1', 'cuhk_sysu:gallery'),
    'mwp': ('mot17det:1,wider_pedestrian:1,prw:1', 'prw:gallery'),
    'prw': ('prw:1', 'prw:gallery'),
    'cuhk': ('cuhk_sysu:1', 'cuhk_sysu:gallery'),
}
# The variant a detection run is trained as: any J* would do (the detector is the same network;
# the features stage re-splits it for the variant it pools).
DETECTION_VARIANT = 'J3'
SHORT_NAMES = {'cuhk_sysu': 'cuhk', 'prw': 'prw'}
CUHK_GALLERIES = ('100', '4000')
PRW_GALLERY = 'PRW'   # PRW's one fixed gallery (all 6,112 test frames)
PRW_BOXES_PER_IMAGE = (1, 3, 5, 10)   # the paper's sweep over detections kept per image
PRW_DET_THRESH = 0.0                  # ... with no score threshold besides the cap


@dataclasses.dataclass(frozen=True)
class Step:
    """One command of a recipe.

    Attributes:
        key: what the step produces, unique across recipes (e.g. 'detection/all4',
            'reid/all4_J3_cuhk:reid', 'eval/all4_J3_cuhk__cuhk_sysu'); recipes sharing a step
            share its run.
        script: the repository script, 'train.py', 'evaluate.py' or
            'experiments/prepare_data.py'.
        args: its flags; '{root}' stands for the run root.
    """
    key: str
    script: str
    args: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One evaluate.py run of a recipe and the paper's numbers for it.

    Attributes:
        dataset: the TFDS dataset searched.
        use_gt_boxes: ground-truth gallery boxes instead of detections (Table 1d, right).
        output: the metrics JSON, relative to the root.
        paper: gallery ('100', '4000' or 'PRW') -> (mAP %, Rank-1 %) of the paper.
        paper_det_ap: the paper's detection AP % on `dataset`, None where it gives none (it
            does for Table 1c only).
    """
    dataset: str
    use_gt_boxes: bool
    output: str
    paper: dict[str, tuple[float | None, float | None]]
    paper_det_ap: float | None = None

    @property
    def boxes(self) -> str:
        return 'GT' if self.use_gt_boxes else 'predicted'


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One row of Table 1.

    Attributes:
        id: e.g. '1a_J3_cuhk', '1c_J2mwp', '1d_J4c'.
        part: '1a', '1c' or '1d'.
        model: the paper's name for the row (e.g. 'J3', 'J2m-w-p', 'J4c', 'Disj').
        detection_data: the TFDS datasets of stage 1.
        reid_data: the TFDS dataset of stage 2.
        steps: the commands, in order.
        evaluations: what is scored, with the paper's numbers.
    """
    id: str
    part: str
    model: str
    detection_data: str
    reid_data: str
    steps: tuple[Step, ...]
    evaluations: tuple[Evaluation, ...]


def _detection_step(mix: str) -> Step:
    datasets, validation = DETECTION_MIXES[mix]
    return Step(f'detection/{mix}', 'train.py', (
        '--stage=detection', f'--preset={PRESET}', f'--variant={DETECTION_VARIANT}',
        f'--model_dir={{root}}/detection/{mix}', f'--datasets={datasets}',
        f'--validation={validation}'))


def run_name(mix: str, variant: str, reid_dataset: str) -> str:
    """The stage-2 run directory's name, e.g. 'all4_J3_cuhk'."""
    return f'{mix}_{variant}_{SHORT_NAMES[reid_dataset]}'


def _reid_steps(mix: str, variant: str, reid_dataset: str) -> list[Step]:
    """Pooling (or cropping, for Disj) then stage 2, reading the mix's detection run; the
    pooled features are deleted once stage 2 has finished (they only serve it).

    Stage 2 validates nothing while training (`--reid.validation=`): evaluate.py scores the
    finished model with the full protocol.
    """
    name = run_name(mix, variant, reid_dataset)
    common = (f'--preset={PRESET}', f'--variant={variant}', f'--model_dir={{root}}/reid/{name}',
              f'--detection_model_dir={{root}}/detection/{mix}',
              f'--reid.datasets={reid_dataset}', '--reid.validation=')
    return [Step(f'reid/{name}:features', 'train.py', ('--stage=features',) + common),
            Step(f'reid/{name}:reid', 'train.py',
                 ('--stage=reid', '--delete_pooled_after_reid') + common)]


def _evaluation(name: str, dataset: str, use_gt_boxes: bool, paper: dict,
                paper_det_ap: float | None = None) -> tuple[Step, Evaluation]:
    suffix = '_gt' if use_gt_boxes else ''
    output = f'eval/{name}__{dataset}{suffix}.json'
    args = [f'--dataset={dataset}', f'--checkpoint={{root}}/reid/{name}',
            f'--output_json={{root}}/{output}']
    if dataset == 'cuhk_sysu':
        args.append('--gallery_sizes=' + ','.join(CUHK_GALLERIES))
    if dataset == 'prw' and not use_gt_boxes:
        args += [f'--det_thresh={PRW_DET_THRESH}',
                 '--max_detections_per_image=' + ','.join(map(str, PRW_BOXES_PER_IMAGE))]
    if use_gt_boxes:
        args.append('--use_gt_boxes')
    return (Step(output.removesuffix('.json'), 'evaluate.py', tuple(args)),
            Evaluation(dataset, use_gt_boxes, output, paper, paper_det_ap))


def _prepare_step(dataset: str) -> Step:
    """Builds a dataset that no training step of the recipe builds (cross-dataset evaluation)."""
    return Step(f'prepare/{dataset}', 'experiments/prepare_data.py', (f'--datasets={dataset}',))


def _cuhk(map_100, map_4000, rank1_100, rank1_4000) -> dict:
    return {'100': (map_100, rank1_100), '4000': (map_4000, rank1_4000)}


def _galleries(dataset: str) -> list[str]:
    return [PRW_GALLERY] if dataset == 'prw' else list(CUHK_GALLERIES)


def make_recipe(recipe_id: str, part: str, model: str, mix: str, variant: str,
                reid_dataset: str, eval_dataset: str, paper: dict,
                paper_gt: dict | None = None, paper_det_ap: float | None = None,
                intra_det_ap: float | None = None) -> Recipe:
    """A recipe: detection on `mix`, stage 2 of `variant` on `reid_dataset`, evaluated on
    `eval_dataset` (and with ground-truth boxes when `paper_gt` is given).

    `paper_det_ap`: the paper's detection AP % on `eval_dataset`. `intra_det_ap`: also evaluate
    on `reid_dataset` (intra-dataset, predicted boxes), where the paper gives only this detection
    AP % (Table 1c on PRW).
    """
    name = run_name(mix, variant, reid_dataset)
    steps = [_detection_step(mix), *_reid_steps(mix, variant, reid_dataset)]
    trained_on = {entry.split(':')[0] for entry in DETECTION_MIXES[mix][0].split(',')}
    if eval_dataset not in trained_on | {reid_dataset}:
        steps.append(_prepare_step(eval_dataset))
    planned = [(eval_dataset, False, paper, paper_det_ap), (eval_dataset, True, paper_gt, None)]
    if intra_det_ap is not None:
        planned.append((reid_dataset, False,
                        {gallery: (None, None) for gallery in _galleries(reid_dataset)},
                        intra_det_ap))
    evaluations = []
    for dataset, use_gt_boxes, numbers, det_ap in planned:
        if numbers is not None:
            step, evaluation = _evaluation(name, dataset, use_gt_boxes, numbers, det_ap)
            steps.append(step)
            evaluations.append(evaluation)
    detection_data = ','.join(entry.split(':')[0] for entry in DETECTION_MIXES[mix][0].split(','))
    return Recipe(recipe_id, part, model, detection_data, reid_dataset, tuple(steps),
                  tuple(evaluations))


# Table 1a: PRW (mAP, Rank-1) and CUHK-SYSU (mAP 100 / 4000, Rank-1 100 / 4000).
PAPER_1A_PRW = {DISJOINT: (13.3, 32.3), 'J2': (25.2, 47.0), 'J3': (22.5, 45.1),
                'J4': (12.3, 27.3)}
PAPER_1A_CUHK = {DISJOINT: _cuhk(72.1, 50.1, 74.1, 53.3), 'J2': _cuhk(76.4, 49.2, 76.7, 51.3),
                 'J3': _cuhk(79.4, 55.8, 80.5, 58.9), 'J4': _cuhk(76.7, 53.3, 77.8, 56.0)}
# Table 1c: CUHK-SYSU cross-dataset.
PAPER_1C = {'J2p': _cuhk(31.5, 14.9, None, None), 'J2m-w-p': _cuhk(54.4, 29.4, 55.4, 31.9),
            'J3p': _cuhk(29.8, 13.9, 31.7, 15.8), 'J3m-w-p': _cuhk(54.6, 28.1, 56.1, 29.7),
            'J4p': _cuhk(22.8, 8.8, 23.1, 9.5), 'J4m-w-p': _cuhk(52.5, 27.8, 53.3, 28.8)}
# Table 1c's detection AP % (§3.2, the same for J2, J3, J4 of a mix): detection mix -> (on
# CUHK-SYSU, cross-dataset; on PRW, intra-dataset).
PAPER_1C_DET_AP = {'prw': (30.0, 81.0), 'mwp': (60.0, 79.0)}
# Table 1d: CUHK-SYSU, predicted boxes (left) and ground-truth boxes (right).
PAPER_1D = {'J2c': _cuhk(71.4, 43.6, 71.6, 45.5), 'J2': _cuhk(76.4, 49.2, 76.7, 51.3),
            'J3c': _cuhk(75.5, 48.1, 76.4, 50.3), 'J3': _cuhk(79.4, 55.8, 80.5, 58.9),
            'J4c': _cuhk(62.9, 33.3, 62.3, 33.8), 'J4': _cuhk(76.7, 53.3, 77.8, 56.0)}
PAPER_1D_GT = {'J2c': _cuhk(78.6, 50.3, 78.0, 52.3), 'J2': _cuhk(81.9, 54.9, 81.0, 56.5),
               'J3c': _cuhk(81.2, 54.2, 80.9, 56.5), 'J3': _cuhk(84.4, 60.9, 84.0, 63.1),
               'J4c': _cuhk(68.5, 37.1, 67.1, 37.2), 'J4': _cuhk(81.6, 57.1, 81.3, 58.8)}


def all_recipes() -> list[Recipe]:
    """Every row of Table 1a, 1c and 1d, in table order."""
    recipes = []
    for model in (DISJOINT, *VARIANTS):
        recipes.append(make_recipe(f'1a_{model}_prw', '1a', model, 'all4', model, 'prw', 'prw',
                                   {PRW_GALLERY: PAPER_1A_PRW[model]}))
    for model in (DISJOINT, *VARIANTS):
        recipes.append(make_recipe(f'1a_{model}_cuhk', '1a', model, 'all4', model, 'cuhk_sysu',
                                   'cuhk_sysu', PAPER_1A_CUHK[model]))
    for variant in VARIANTS:
        for suffix, mix in (('p', 'prw'), ('mwp', 'mwp')):
            model = f'{variant}{"p" if suffix == "p" else "m-w-p"}'
            cross_ap, intra_ap = PAPER_1C_DET_AP[mix]
            recipes.append(make_recipe(f'1c_{variant}{suffix}', '1c', model, mix, variant, 'prw',
                                       'cuhk_sysu', PAPER_1C[model], paper_det_ap=cross_ap,
                                       intra_det_ap=intra_ap))
    for variant in VARIANTS:
        for model, mix in ((f'{variant}c', 'cuhk'), (variant, 'all4')):
            recipes.append(make_recipe(f'1d_{model}', '1d', model, mix, variant, 'cuhk_sysu',
                                       'cuhk_sysu', PAPER_1D[model], PAPER_1D_GT[model]))
    return recipes


def select(spec: str, recipes: list[Recipe] | None = None) -> list[Recipe]:
    """The recipes named by `spec`: 'all', 'table=1a' (a part; 'table=1a,table=1d' several) or
    recipe ids 'id,id,...', in table order.

    Raises:
        ValueError: an unknown id or part, listing the known ones.
    """
    recipes = all_recipes() if recipes is None else recipes
    if spec.strip() == 'all':
        return list(recipes)
    by_id = {recipe.id: recipe for recipe in recipes}
    parts = sorted({recipe.part for recipe in recipes})
    chosen = set()
    for item in (item.strip() for item in spec.split(',') if item.strip()):
        if item.startswith('table='):
            part = item.removeprefix('table=')
            if part not in parts:
                raise ValueError(f'--recipes: unknown table part {part!r}; known: {parts}')
            chosen |= {recipe.id for recipe in recipes if recipe.part == part}
        elif item in by_id:
            chosen.add(item)
        else:
            raise ValueError(f'--recipes: unknown recipe {item!r}; known: {sorted(by_id)}, '
                             f'"all" or "table=<part>" with a part of {parts}')
    if not chosen:
        raise ValueError(f'--recipes={spec!r} selects no recipe')
    return [recipe for recipe in recipes if recipe.id in chosen]


def ordered_steps(recipes: list[Recipe]) -> list[Step]:
    """The steps of `recipes`, each once (first occurrence), in recipe order.

    Raises:
        ValueError: two steps share a key but not their command (a bug in the recipe table).
    """
    steps: dict[str, Step] = {}
    for recipe in recipes:
        for step in recipe.steps:
            known = steps.setdefault(step.key, step)
            if known != step:
                raise ValueError(f'step {step.key!r} has two different commands: {known} and '
                                 f'{step}')
    return list(steps.values())


def with_init_checkpoint(steps: list[Step], path: str | None) -> list[Step]:
    """The steps with `--init_checkpoint=<path>` added to every detection (stage 1) step."""
    if not path:
        return steps
    flag = f'--init_checkpoint={os.path.abspath(path)}'
    return [dataclasses.replace(step, args=step.args + (flag,))
            if '--stage=detection' in step.args else step for step in steps]
