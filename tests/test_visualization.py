"""Drawing boxes and grids, and the preview command end to end on the tiny synthetic data."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ps_tf import visualization

REPO = __import__('pathlib').Path(__file__).resolve().parents[1]


def test_boxes_are_drawn_in_their_identity_colour():
    image = np.zeros((60, 80, 3), np.uint8)
    drawn = np.asarray(visualization.draw_annotations(
        image, [[10, 20, 40, 50], [50, 5, 70, 30]], person_ids=[3, -1], ignore=[False, False]))
    assert tuple(drawn[35, 10]) == visualization.identity_colour(3)       # left edge, id 3
    assert tuple(drawn[20, 70]) == visualization.PASSER_BY_COLOUR          # right edge, no id
    assert tuple(drawn[40, 25]) == (0, 0, 0)                               # inside untouched
    assert image.sum() == 0                                                # input not modified


def test_identity_colours_differ_between_neighbouring_ids():
    colours = [visualization.identity_colour(i) for i in range(20)]
    assert len(set(colours)) == 20


def test_image_grid_tiles_images_keeping_aspect():
    images = [Image.new('RGB', (40, 20), (255, 0, 0)) for _ in range(5)]
    grid = visualization.image_grid(images, columns=2, tile_size=(100, 100))
    assert grid.size == (200, 300)
    pixels = np.asarray(grid)
    assert tuple(pixels[10, 10]) == (255, 0, 0) and tuple(pixels[90, 10]) == (20, 20, 20)
    with pytest.raises(ValueError):
        visualization.image_grid([], columns=2, tile_size=(10, 10))


def test_preview_command_writes_a_grid_of_the_dataset(tiny_synthetic_data_dir, tmp_path):
    output = tmp_path / 'preview.png'
    subprocess.run([sys.executable, str(REPO / 'preview.py'),
                    '--dataset=synthetic_person_search/tiny',
                    f'--data_dir={tiny_synthetic_data_dir}',
                    '--split=query', '--num_images=3', '--columns=3', f'--output={output}'],
                   check=True, cwd=tmp_path, capture_output=True)
    grid = Image.open(output)
    assert grid.size == (3 * 384, 288)
    # The white query box is drawn on every tile.
    pixels = np.asarray(grid)
    for k in range(3):
        tile = pixels[:, k * 384:(k + 1) * 384]
        assert np.any(np.all(tile == 255, axis=-1))
    # A split the dataset does not have is named with the ones it has.
    failed = subprocess.run([sys.executable, str(REPO / 'preview.py'),
                             '--dataset=synthetic_person_search/tiny',
                             f'--data_dir={tiny_synthetic_data_dir}', '--split=test',
                             f'--output={tmp_path / "other.png"}'],
                            cwd=tmp_path, capture_output=True, text=True)
    assert failed.returncode != 0 and not (tmp_path / 'other.png').exists()
    assert "has no split 'test'; it has gallery, query, train" in failed.stderr, (
        failed.stderr[-2000:])
