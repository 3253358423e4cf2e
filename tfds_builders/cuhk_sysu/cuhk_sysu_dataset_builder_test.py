"""Tests of the CUHK-SYSU builder on the miniature release in dummy_data/."""

import pathlib
import shutil
import tempfile

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import schema
from tfds_builders.cuhk_sysu import cuhk_sysu_dataset_builder
from tfds_builders.cuhk_sysu import make_dummy_data

DUMMY = pathlib.Path(__file__).parent / 'dummy_data'


class CuhkSysuBuilderTest(tfds.testing.DatasetBuilderTestCase):
    """The standard TFDS builder checks."""
    DATASET_CLASS = cuhk_sysu_dataset_builder.Builder
    SPLITS = {'train': 7, 'gallery': 7, 'query': 6}


def _build(manual_dir: pathlib.Path, data_dir: str) -> tfds.core.DatasetBuilder:
    builder = cuhk_sysu_dataset_builder.Builder(data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


class CuhkSysuValuesTest(tfds.testing.TestCase):
    """Compares what the builder wrote with what make_dummy_data.py intended."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._data_dir = tempfile.mkdtemp()
        builder = _build(DUMMY, cls._data_dir)
        # TFDS shuffles examples on disk: restore the protocol order (queries: by their
        # person id, which is unique per query and follows the TestG order).
        cls.examples = {
            split: sorted(tfds.as_numpy(builder.as_dataset(split=split)),
                          key=lambda e: (e['query']['person_id'], e['protocol_index']))
            for split in ('train', 'gallery', 'query')}
        cls.expected = make_dummy_data.expected()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls._data_dir, ignore_errors=True)
        super().tearDownClass()

    def _check_image(self, got, want):
        name = want['name']
        self.assertEqual(got['image/filename'].decode(), name)
        self.assertEqual(got['protocol_index'], want['index'])
        self.assertEqual(got['camera_id'], schema.UNKNOWN_CAMERA)
        width, height = want['size']
        self.assertEqual(got['image'].shape, (height, width, 3))
        np.testing.assert_array_equal(got['objects']['box'], want['boxes'], err_msg=name)
        np.testing.assert_array_equal(got['objects']['person_id'], want['person_ids'],
                                      err_msg=name)
        np.testing.assert_allclose(
            got['objects']['bbox'],
            schema.pixel_boxes_to_bbox(want['boxes'], height, width).reshape(-1, 4),
            err_msg=name)
        self.assertFalse(np.any(got['objects']['ignore']))

    def test_train_and_gallery(self):
        for split in ('train', 'gallery'):
            got = self.examples[split]
            self.assertLen(got, len(self.expected[split]))
            for example, want in zip(got, self.expected[split]):
                self._check_image(example, want)
                self.assertEqual(example['query']['gallery_sizes'].size, 0)

    def test_uint8_wraparound_is_avoided(self):
        s1 = self.examples['train'][0]
        self.assertEqual(s1['image/filename'], b's1.jpg')
        np.testing.assert_array_equal(s1['objects']['box'][1], [200, 30, 300, 180])

    def test_image_without_valid_boxes_is_kept(self):
        (s5,) = [e for e in self.examples['train'] if e['image/filename'] == b's5.jpg']
        self.assertEqual(s5['objects']['box'].shape, (0, 4))

    def test_queries(self):
        got = {int(e['query']['person_id']): e for e in self.examples['query']}
        self.assertLen(got, len(self.expected['query']))
        for i, want in enumerate(self.expected['query']):
            example = got[want['query_person_id']]
            self._check_image(example, want)  # protocol_index = the query index.
            np.testing.assert_array_equal(example['query']['box'], want['query_box'])
            width, height = want['size']
            np.testing.assert_allclose(example['query']['bbox'],
                                       schema.pixel_boxes_to_bbox(want['query_box'], height, width))
            galleries = schema.query_galleries(example['query'])
            self.assertEqual(list(galleries), [50, 100])
            for size, entries in galleries.items():
                self.assertEqual([(e.image_index, e.box) for e in entries], want['galleries'][size],
                                 msg=f'query {i} TestG{size}')

    def test_missing_file_names_it_and_shows_the_tree(self):
        with tempfile.TemporaryDirectory() as tmp:
            manual_dir = pathlib.Path(tmp) / 'cuhk_sysu'
            shutil.copytree(DUMMY, manual_dir)
            (manual_dir / 'annotation' / 'pool.mat').unlink()
            with self.assertRaisesRegex(FileNotFoundError,
                                        r'(?s)annotation/pool\.mat.*Expected:.*Image/SSM.*TestG50'):
                # manual_dir one level above the release folder is accepted too.
                _build(pathlib.Path(tmp), tmp + '/data')

    def test_missing_folder_shows_the_tree(self):
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaisesRegex(FileNotFoundError, r'(?s)missing in .*Images\.mat.*'
                                                           r'Expected:\n<manual_dir>/'):
                _build(pathlib.Path(tmp), tmp + '/data')


if __name__ == '__main__':
    tfds.testing.test_main()
