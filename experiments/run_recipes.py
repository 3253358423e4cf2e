"""Runs Table 1 recipes (`recipes.py`) and collects their metrics into one markdown table.

    python experiments/run_recipes.py --recipes=table=1d --root=runs/table1 \
        --manual_dir=cuhk_sysu=/data/cuhk_sysu,prw=/data/PRW-v16.04.20,mot17det=/data/MOT17Det,\
wider_pedestrian=/data/WIDER_pd2019
    python experiments/run_recipes.py --recipes=1a_J3_cuhk,1c_J3mwp --root=runs/table1 --dry_run
    python experiments/run_recipes.py --recipes=all --root=runs/table1 --collect_only

Each step (detection, features, reid, evaluate) of the chosen recipes runs once, in order, even
when several recipes share it (one detection run per detection-data mix serves J2, J3, J4 and
Disj); steps already done are skipped (`step_runner.py`), so rerunning resumes. The table
(`results_table.py`: the chosen recipes and any other with results under the root) is written
to `<root>/table.md` and printed, also after a failure (with what finished).
"""

from __future__ import annotations

import os
import shlex
import sys

from absl import app, flags

import recipes as recipes_lib
import results_table
import step_runner

flags.DEFINE_string('recipes', 'all', 'Recipe ids "id,id", "all", or a part "table=1a" '
                    '(parts 1a, 1c, 1d; may be combined: "table=1c,1d_J3").')
flags.DEFINE_string('root', None, 'Output root: detection/, reid/, eval/, logs/, done/, '
                    'table.md.')
flags.DEFINE_boolean('dry_run', False, 'Print the commands (each shared step once), run nothing.')
flags.DEFINE_boolean('collect_only', False, 'Only collect the table from what has run.')
flags.DEFINE_string('data_dir', None, 'TFDS data dir for every command.')
flags.DEFINE_string('manual_dir', None, 'Release folders, "name=path,..." (train.py\'s form).')
flags.DEFINE_string('extra_flags', '', 'Appended to every train.py command (shell-quoted), e.g. '
                    '"--batch_size=4 --epochs=20".')
flags.DEFINE_string('extra_eval_flags', '', 'Appended to every evaluate.py command.')
flags.DEFINE_string('init_checkpoint', None,
                    'The Model Garden RetinaNet ResNet-50 FPN COCO checkpoint every detector '
                    'starts from, as the paper\'s does (train.py --init_checkpoint); without it '
                    'the detectors start from random weights.')
flags.mark_flag_as_required('root')
FLAGS = flags.FLAGS


def settings_from_flags() -> step_runner.CommandSettings:
    return step_runner.CommandSettings(
        root=os.path.abspath(FLAGS.root), data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir,
        extra_train_flags=tuple(shlex.split(FLAGS.extra_flags)),
        extra_eval_flags=tuple(shlex.split(FLAGS.extra_eval_flags)))


def write_table(chosen: list[recipes_lib.Recipe], root: str) -> str:
    """Writes `<root>/table.md` and returns its text: the chosen recipes and every other one
    with results under `root` (running the table part by part builds it up)."""
    recipes = [recipe for recipe in recipes_lib.all_recipes()
               if recipe in chosen or any(os.path.exists(os.path.join(root, evaluation.output))
                                          for evaluation in recipe.evaluations)]
    text = results_table.markdown(recipes, root)
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, 'table.md')
    with open(path, 'w') as stream:
        stream.write(text)
    return text


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    try:
        chosen = recipes_lib.select(FLAGS.recipes)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    settings = settings_from_flags()
    steps = recipes_lib.with_init_checkpoint(recipes_lib.ordered_steps(chosen),
                                             FLAGS.init_checkpoint)
    print(f'{len(chosen)} recipes, {len(steps)} steps: {", ".join(r.id for r in chosen)}')
    if not FLAGS.init_checkpoint:
        print('no --init_checkpoint: the detectors start from random weights, not from COCO '
              'as the paper\'s (docs/choices.md#coco-initialisation)', flush=True)
    if FLAGS.dry_run:
        for step in steps:
            argv = step_runner.command(step.script, step.args, settings)
            print(f"# {step.key}\n{step_runner.display(argv)}")
        return
    failure = None
    if not FLAGS.collect_only:
        failure = step_runner.run_all(
            [(step.key, step_runner.command(step.script, step.args, settings)) for step in steps],
            settings.root)
    print(write_table(chosen, settings.root))
    print(f'wrote {os.path.join(settings.root, "table.md")}')
    if failure:
        print(failure, file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    app.run(main)
