"""Shared by the experiments tests: tiny overrides for Table 1 recipes on the builders' dummy
releases, and helpers to run them and read what they wrote."""

import json
import pathlib
import shlex
import subprocess
import sys

import step_runner

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILDERS = ROOT / 'tfds_builders'
MANUAL_DIR = ','.join(f'{name}={BUILDERS / name / "dummy_data"}'
                      for name in ('cuhk_sysu', 'prw', 'mot17det', 'wider_pedestrian'))
TINY_TRAIN = ('--image_size=64 --batch_size=2 --epochs=1 --steps_per_epoch=1 --weights=none '
              '--validation_images=2 --eval_every=0 --reid.images_per_shard=8 '
              '--reid.pooling_batch_size=4 --reid.embedding_dim=8 --reid.identities_per_batch=2 '
              '--reid.samples_per_identity=2 --reid.semi_hard_epochs=1 --reid.hard_epochs=1 '
              '--reid.steps_per_epoch=1')
TINY_EVAL = '--gallery_sizes=100'   # the dummy CUHK-SYSU release has TestG50 and TestG100 only


def settings(root, data_dir) -> step_runner.CommandSettings:
    """The runner's settings for the flags `run_recipes` passes."""
    return step_runner.CommandSettings(
        root=str(root), data_dir=str(data_dir), manual_dir=MANUAL_DIR,
        extra_train_flags=tuple(shlex.split(TINY_TRAIN)),
        extra_eval_flags=tuple(shlex.split(TINY_EVAL)))


def run_recipes(root, data_dir, recipe_ids: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, str(ROOT / 'experiments' / 'run_recipes.py'), f'--recipes={recipe_ids}',
         f'--root={root}', f'--data_dir={data_dir}', f'--manual_dir={MANUAL_DIR}',
         f'--extra_flags={TINY_TRAIN}', f'--extra_eval_flags={TINY_EVAL}'],
        capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def table_rows(root) -> dict[tuple[str, str, str], list[str]]:
    """(recipe, boxes, gallery) -> the cells of a line of <root>/table.md."""
    rows = {}
    for line in (root / 'table.md').read_text().splitlines():
        cells = [cell.strip() for cell in line.strip('|').split('|')]
        if line.startswith('| 1'):
            rows[cells[0], cells[5], cells[6]] = cells
    return rows


def metrics(root, output: str) -> dict:
    """gallery size (str) -> the evaluate.py row of an output file."""
    return {str(row['gallery_size']): row
            for row in json.loads((root / output).read_text())['results']}


def seed_step(root, key: str, command: str, source) -> None:
    """Marks step `key` done with `command`, its output directory a link to `source` (a run of
    the same kind): lets one test session train a single detector."""
    target = pathlib.Path(str(root)) / key
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source)
    marker = pathlib.Path(step_runner.marker_path(str(root), key))
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({'command': command, 'minutes': 0.0}))
