"""synthetic_difficulty.py on the tiny synthetic config: the re-rendered appearances are the
dataset's, the look-alike census counts what it should, and the per-query breakdown agrees with
the evaluator."""

import dataclasses
import json
import pathlib
import subprocess
import sys

import numpy as np

import synthetic_difficulty
from ps_tf.evaluation import evaluator, predictions, protocol
from tfds_builders.synthetic_person_search import render
from tfds_builders.synthetic_person_search import world as world_lib
from tfds_builders.synthetic_person_search.synthetic_person_search_dataset_builder import WORLDS

ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY = 'synthetic_person_search/tiny'


def test_rendering_with_appearances_draws_the_same_image_and_names_each_person():
    world = world_lib.make_world(WORLDS['tiny'])
    for plan in world.test_images:
        pixels, boxes, ids, ignore = render.render_image(world, plan)
        again, boxes2, ids2, ignore2, appearances = render.render_image_with_appearances(
            world, plan)
        np.testing.assert_array_equal(pixels, again)
        np.testing.assert_array_equal(boxes, boxes2)
        assert len(appearances) == len(ids)
        for person_id, skip, appearance in zip(ids, ignore, appearances):
            assert (appearance is None) == bool(skip)
            if person_id >= 0:
                assert appearance == world.appearances[person_id]


def test_differing_attributes_ignores_skin_and_hair():
    a = world_lib.Appearance('red', 'black', 'solid', 'slim', 'none', skin=0, hair=0,
                             accessory_colour=0)
    b = dataclasses.replace(a, build='broad', skin=3, hair=2)
    assert synthetic_difficulty.differing_attributes(a, b) == ('build',)
    assert synthetic_difficulty.differing_attributes(a, dataclasses.replace(a, hair=1)) == ()


def test_template_breakdown_matches_the_evaluator(tiny_synthetic_data_dir):
    arrays = synthetic_difficulty.colour_template_predictions(TINY, tiny_synthetic_data_dir,
                                                              (4, 2))
    template = predictions.Predictions(**arrays)
    loaded = protocol.load_protocol(TINY, tiny_synthetic_data_dir)
    ap, top1 = synthetic_difficulty.per_query_metrics(loaded, template, 5)
    row = evaluator.evaluate_predictions(loaded, template, evaluator.EvalSettings(
        gallery_sizes=[5]))[0]
    assert np.isclose(ap.mean(), row['mAP']) and np.isclose(top1.mean(), row['top1'])
    census = synthetic_difficulty.look_alikes(world_lib.make_world(WORLDS['tiny']), 5)
    boxes = loaded.queries.boxes
    subsets = synthetic_difficulty.query_subsets(census, boxes[:, 3] - boxes[:, 1])
    assert np.array_equal(subsets['with look-alike'], ~subsets['without'])
    heights = [subsets[k] for k in subsets if k.startswith('h ')]
    assert np.array_equal(np.sum(heights, axis=0), np.ones(len(census)))   # a partition


def test_command_line_writes_the_census_and_reads_predictions_back(
        tmp_path, tiny_synthetic_data_dir):
    template, report = tmp_path / 'template.npz', tmp_path / 'difficulty.json'
    common = [sys.executable, str(ROOT / 'experiments' / 'synthetic_difficulty.py'),
              '--config=tiny', '--gallery_size=5', f'--data_dir={tiny_synthetic_data_dir}',
              '--template_grid=4,2']
    first = subprocess.run(common + [f'--write_template={template}'], capture_output=True,
                           text=True, timeout=120, cwd=ROOT)
    assert first.returncode == 0, first.stderr[-3000:]
    second = subprocess.run(common + [f'--predictions={template}', f'--output_json={report}'],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert second.returncode == 0, second.stderr[-3000:]
    content = json.loads(report.read_text())
    assert len(content['look_alikes']) == len(world_lib.make_world(WORLDS['tiny']).queries)
    rows = list(content['results'].values())
    assert rows[0] == rows[1]   # the template, computed and read back from its file
    assert '| colour template 4x2 (GT boxes) |' in second.stdout
