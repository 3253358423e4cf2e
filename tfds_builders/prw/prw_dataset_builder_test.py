"""Tests of the PRW builder on the miniature release in dummy_data/."""

import pathlib
import shutil
import tempfile

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import schema
from tfds_builders.prw import make_dummy_data
from tfds_builders.prw import prw_dataset_builder

DUMMY = pathlib.Path(__file__).parent / 'dummy_data'


class PrwBuilderTest(tfds.testing.DatasetBuilderTestCase):
    """The standard TFDS builder checks."""
    DATASET_CLASS = prw_dataset_builder.Builder
    SPLITS = {'train': 4, 'gallery': 5, 'query': 4}


def _build(manual_dir: pathlib.Path, data_dir: str) -> tfds.core.DatasetBuilder:
    builder = prw_dataset_builder.Builder(data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


class PrwValuesTest(tfds.testing.TestCase):
    """Compares what the builder wrote with what make_dummy_data.py intended."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._data_dir = tempfile.mkdtemp()
        builder = _build(DUMMY, cls._data_dir)
        # TFDS shuffles examples on disk: restore the protocol order.
        cls.examples = {
            split: sorted(tfds.as_numpy(builder.as_dataset(split=split)),
                          key=lambda e: e['protocol_index'])
            for split in ('train', 'gallery', 'query')}
        cls.expected = make_dummy_data.expected()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls._data_dir, ignore_errors=True)
        super().tearDownClass()

    def _check_frame(self, got, want):
        name = want['name']
        self.assertEqual(got['image/filename'].decode(), f'{name}.jpg')
        self.assertEqual(got['protocol_index'], want['index'])
        self.assertEqual(got['camera_id'], want['camera'])
        width, height = want['size']
        self.assertEqual(got['image'].shape, (height, width, 3))
        # Exact: the schema keeps raw PRW floats such as 30.5756 as float64.
        np.testing.assert_array_equal(got['objects']['box'], want['boxes'], err_msg=name)
        np.testing.assert_array_equal(got['objects']['person_id'], want['person_ids'],
                                      err_msg=name)
        np.testing.assert_allclose(
            got['objects']['bbox'],
            schema.pixel_boxes_to_bbox(want['boxes'], height, width).reshape(-1, 4),
            atol=1e-6, err_msg=name)
        self.assertFalse(np.any(got['objects']['ignore']))

    def test_train_and_gallery(self):
        for split in ('train', 'gallery'):
            got = self.examples[split]
            self.assertLen(got, len(self.expected[split]))
            for example, want in zip(got, self.expected[split]):
                self._check_frame(example, want)
                self.assertEqual(example['query']['gallery_sizes'].size, 0)

    def test_special_cases(self):
        train = {e['image/filename'].decode(): e for e in self.examples['train']}
        gallery = {e['image/filename'].decode(): e for e in self.examples['gallery']}
        # 932 is a training id; the c6 frame is 72 x 58; the same id twice in one frame.
        np.testing.assert_array_equal(train['c6s1_000026.jpg']['objects']['person_id'],
                                      [932, 5, 5])
        self.assertEqual(train['c6s1_000026.jpg']['image'].shape, (58, 72, 3))
        # Negative x stays in objects/box; the normalised bbox is clipped at 0.
        self.assertAlmostEqual(train['c6s1_000026.jpg']['objects']['box'][0, 0], -3.5)
        self.assertEqual(train['c6s1_000026.jpg']['objects']['bbox'][0, 1], 0.0)
        # Frames with only -2 boxes keep them as people without identity.
        np.testing.assert_array_equal(train['c2s1_000301.jpg']['objects']['person_id'], [-1, -1])
        np.testing.assert_array_equal(gallery['c5s3_000010.jpg']['objects']['person_id'], [-1])
        # The box with w = 0 is dropped.
        self.assertLen(train['c3s2_000100.jpg']['objects']['person_id'], 2)
        # A box leaving the image is kept unclipped (x2 = 200 > 192).
        self.assertEqual(gallery['c2s2_000020.jpg']['objects']['box'][2, 2], 200.0)

    def test_queries(self):
        got = self.examples['query']
        self.assertLen(got, len(self.expected['query']))
        for example, want in zip(got, self.expected['query']):
            self._check_frame(example, want)  # protocol_index = the query index.
            np.testing.assert_array_equal(example['query']['box'], want['query_box'])
            self.assertEqual(example['query']['person_id'], want['query_person_id'])
            width, height = want['size']
            np.testing.assert_allclose(example['query']['bbox'],
                                       schema.pixel_boxes_to_bbox(want['query_box'], height,
                                                                  width), atol=1e-6)
            self.assertEqual(schema.query_galleries(example['query']), {})

    def test_missing_file_names_it_and_shows_the_tree(self):
        with tempfile.TemporaryDirectory() as tmp:
            manual_dir = pathlib.Path(tmp) / 'PRW-v16.04.20'
            shutil.copytree(DUMMY, manual_dir)
            (manual_dir / 'query_info.txt').unlink()
            with self.assertRaisesRegex(FileNotFoundError,
                                        r'(?s)PRW-v16\.04\.20/query_info\.txt.*Expected:.*'
                                        r'annotations/.*frame_train\.mat'):
                # manual_dir one level above the release folder is accepted too.
                _build(pathlib.Path(tmp), tmp + '/data')

    def test_missing_annotation_names_the_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            manual_dir = pathlib.Path(tmp) / 'PRW'
            shutil.copytree(DUMMY, manual_dir)
            (manual_dir / 'annotations' / 'c4s1_000400.jpg.mat').unlink()
            with self.assertRaisesRegex(FileNotFoundError,
                                        r'annotations/c4s1_000400\.jpg\.mat: file not found'):
                _build(manual_dir, tmp + '/data')


if __name__ == '__main__':
    tfds.testing.test_main()
