"""ps_tf/config.py: every setting has a description in its class docstring (the command-line
help is read from there) and the presets' values are shown beside it."""

import dataclasses

import pytest

from ps_tf import config


@pytest.mark.parametrize('config_class', sorted(config.PRESETS_BY_CLASS, key=lambda c: c.__name__))
def test_every_setting_is_described(config_class):
    descriptions = config.field_descriptions(config_class)
    assert set(descriptions) >= {f.name for f in dataclasses.fields(config_class)}
    assert all(len(text) > 5 for text in descriptions.values())


def test_descriptions_are_read_from_the_attributes_section():
    @dataclasses.dataclass
    class Settings:
        """Something.

        Attributes:
            size: the side, in pixels;
                continued here.
            log_every, save_every: periods in steps.

        Raises:
            nothing: not a field.
        """
        size: int = 1
        log_every: int = 2
        save_every: int = 3

    assert config.field_descriptions(Settings) == {
        'size': 'the side, in pixels; continued here.', 'log_every': 'periods in steps.',
        'save_every': 'periods in steps.'}


def test_an_undescribed_setting_is_refused():
    @dataclasses.dataclass
    class Settings:
        """Attributes:
            size: the side.
        """
        size: int = 1
        colour: str = 'red'

    with pytest.raises(ValueError, match=r"Settings: no description of \['colour'\]"):
        config.field_descriptions(Settings)


def test_every_stage_has_the_same_presets_and_tiny_points_everything_at_the_tiny_data():
    for presets in config.PRESETS_BY_CLASS.values():
        assert sorted(presets) == ['paper', 'synthetic', 'tiny']
    detection, reid = config.PRESETS['tiny'], config.REID_PRESETS['tiny']
    joint, pretrain = config.JOINT_PRESETS['tiny'], config.PRETRAIN_PRESETS['tiny']
    for dataset in (detection.datasets, detection.validation, reid.reid_datasets,
                    reid.reid_validation, joint.joint_validation, pretrain.pretrain_dataset):
        assert dataset.split(':')[0] in (
            'synthetic_person_search/tiny', 'synthetic_attributes/tiny')
    assert 'float32' == detection.mixed_precision == reid.reid_mixed_precision


def test_preset_values_name_every_preset():
    assert config.preset_values(config.ReidConfig, 'identities_per_batch') == (
        'paper: 32, synthetic: 16, tiny: 2')


def test_a_trained_stage2_config_is_read_typed_and_a_missing_setting_named(tmp_path):
    (tmp_path / 'config.json').write_text(
        '{"variant": "J3", "embedding_dim": 64, "source_checkpoint": "/r/checkpoints/ckpt-9",'
        ' "margin": 0.5, "total_steps": 400}')
    trained = config.load_trained_reid(str(tmp_path))
    assert (trained.stage, trained.variant, trained.embedding_dim, trained.margin) == (
        'reid', 'J3', 64, 0.5)
    # Settings that came later take the values older versions used.
    assert trained.reid_mixed_precision == 'float32' and trained.normalize_for_loss
    assert not trained.soft_margin
    (tmp_path / 'config.json').write_text(
        '{"variant": "J3", "embedding_dim": 64, "source_checkpoint": "x", "soft_margin": true}')
    assert config.load_trained_reid(str(tmp_path)).soft_margin
    (tmp_path / 'config.json').write_text('{"variant": "J3", "source_checkpoint": "x"}')
    with pytest.raises(ValueError, match=r'config.json: no embedding_dim: not written by'):
        config.load_trained_reid(str(tmp_path))
    with pytest.raises(ValueError, match='not a stage-2 directory'):
        config.load_trained_reid(str(tmp_path / 'missing'))


def test_a_stage1_config_records_the_resize_mode_and_an_older_one_letterboxes(tmp_path):
    stretched = dataclasses.replace(config.PRESETS['synthetic'], resize_mode='stretch')
    config.save_config(stretched, str(tmp_path), total_steps=5)
    assert config.load_detection_config(str(tmp_path)) == stretched
    assert {c.resize_mode for c in config.PRESETS.values()} == {'letterbox'}
    # A run written before the setting existed (no resize_mode in its config.json) letterboxed.
    older = tmp_path / 'older'
    older.mkdir()
    (older / 'config.json').write_text('{"variant": "J3", "image_size": 320, "total_steps": 5}')
    loaded = config.load_detection_config(str(older))
    assert (loaded.variant, loaded.image_size, loaded.resize_mode) == ('J3', 320, 'letterbox')


def test_a_settings_file_sits_between_the_preset_and_the_flags(tmp_path):
    path = tmp_path / 'settings.json'
    path.write_text('{"detection": {"image_size": 512, "base_learning_rate": 1},'
                    ' "reid": {"margin": 0.3}, "_note": "ignored"}')
    settings = config.read_settings_file(str(path))
    assert settings == {'detection': {'image_size': 512, 'base_learning_rate': 1.0},
                        'reid': {'margin': 0.3}}
    detection = config.resolve_section(config.DetectionConfig, 'synthetic',
                                       settings['detection'], {'image_size': 256, 'epochs': None})
    assert (detection.image_size, detection.base_learning_rate, detection.epochs) == (
        256, 1.0, config.PRESETS['synthetic'].epochs)          # flag > file > preset
    # What a run writes reads back to the same settings, whatever the preset it is read with.
    written = tmp_path / 'written.json'
    config.write_settings(str(written), 'synthetic', {'detection': detection})
    again = config.resolve_section(config.DetectionConfig, 'paper',
                                   config.read_settings_file(str(written))['detection'], {})
    assert again == detection


@pytest.mark.parametrize('content, message', [
    ('{"detection": {"image_size": 512.5}}', r'detection.image_size must be a int, got 512.5'),
    ('{"detection": {"image_size": true}}', r'detection.image_size must be a int'),
    ('{"reid": {"margin": "0.3"}}', r"reid.margin must be a float, got '0.3'"),
    ('{"reid": {"image_size": 64}}', r'reid.image_size is not a ReidConfig setting'),
    ('{"stage2": {}}', r"unknown section\(s\) \['stage2'\]"),
    ('{"reid": [1]}', r"section 'reid' must be an object"),
    ('[1, 2]', r'expected an object of sections'),
    ('{"reid": ', r'is not valid JSON'),
])
def test_a_bad_settings_file_is_named_with_what_is_wrong(tmp_path, content, message):
    path = tmp_path / 'bad.json'
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        config.read_settings_file(str(path))
    assert str(path) in str(error.value)
    with pytest.raises(ValueError, match='does not exist'):
        config.read_settings_file(str(tmp_path / 'missing.json'))
