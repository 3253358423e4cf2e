"""ps_tf/config.py: every setting has a description in its class docstring (the command-line
help is read from there) and the presets' values are shown beside it; the experiment resolves
preset < settings file < flags; names from before the sections are refused with the new one,
and run directories written with them still load."""

import dataclasses
import json

import pytest

from ps_tf import config


@pytest.mark.parametrize('config_class', list(config.SECTIONS.values()))
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


def test_every_preset_has_every_section_and_tiny_points_everything_at_the_tiny_data():
    assert sorted(config.PRESETS) == ['paper', 'synthetic', 'tiny']
    assert list(config.SECTIONS) == ['detection', 'reid', 'joint', 'pretrain']
    for preset in config.PRESETS.values():
        assert isinstance(preset, config.ExperimentConfig)
        assert {name: type(section) for name, section in preset.sections().items()} == \
            config.SECTIONS
    tiny = config.PRESETS['tiny']
    for dataset in (tiny.detection.datasets, tiny.detection.validation, tiny.reid.datasets,
                    tiny.reid.validation, tiny.joint.validation, tiny.pretrain.dataset):
        assert dataset.split(':')[0] in (
            'synthetic_person_search/tiny', 'synthetic_attributes/tiny')
    assert 'float32' == tiny.detection.mixed_precision == tiny.reid.mixed_precision


def test_preset_values_name_every_preset():
    assert config.preset_values('reid', 'identities_per_batch') == (
        'paper: 32, synthetic: 16, tiny: 2')
    assert config.preset_values('joint', 'steps') == 'paper: 5000, synthetic: 200, tiny: 2'


def test_every_setting_has_its_own_flag_and_former_flags_are_not_flags_now():
    flags = [config.flag_name(section, f.name) for section, config_class in config.SECTIONS.items()
             for f in dataclasses.fields(config_class)]
    assert len(flags) == len(set(flags))
    assert {'epochs', 'seed', 'reid.seed', 'reid.margin', 'joint.steps', 'pretrain.steps'} <= \
        set(flags)
    assert set(config.FORMER_FLAGS.values()) == {name for name in flags if '.' in name}
    assert not set(config.FORMER_FLAGS) & set(flags)
    assert config.FORMER_FLAGS['reid_seed'] == 'reid.seed'
    assert config.FORMER_FLAGS['margin'] == 'reid.margin'
    assert config.FORMER_FLAGS['joint_reid_weight'] == 'joint.reid_weight'
    assert config.FORMER_FLAGS['pretrain_steps'] == 'pretrain.steps'
    assert (len(config.RENAMED_SETTINGS['reid']), len(config.RENAMED_SETTINGS['joint']),
            len(config.RENAMED_SETTINGS['pretrain'])) == (16, 14, 9)   # 15 prefixed + 1 renamed
    # Renamed for its meaning: the flag before the sections, and the one after.
    assert config.RENAMED_SETTINGS['reid']['disjoint_weights'] == 'initial_weights'
    assert config.FORMER_FLAGS['disjoint_weights'] == 'reid.initial_weights'
    assert config.FORMER_FLAGS['reid.disjoint_weights'] == 'reid.initial_weights'


def test_resolve_applies_the_preset_then_the_file_then_the_flags():
    resolved = config.resolve(
        'synthetic', {'reid': {'seed': 1, 'margin': 0.3}, 'joint': {'steps': 7}},
        {'reid': {'seed': 2, 'margin': None}, 'detection': {'seed': 5, 'epochs': None}})
    assert isinstance(resolved, config.ExperimentConfig)
    assert (resolved.reid.seed, resolved.reid.margin, resolved.joint.steps) == (2, 0.3, 7)
    assert (resolved.detection.seed, resolved.detection.epochs) == (
        5, config.PRESETS['synthetic'].detection.epochs)    # same field name, other section
    assert resolved.pretrain == config.PRESETS['synthetic'].pretrain
    assert config.resolve('tiny') == config.PRESETS['tiny']
    with pytest.raises(ValueError,
                       match=r"unknown joint \(JointConfig\) settings \['joint_steps'\]"):
        config.resolve('tiny', overrides={'joint': {'joint_steps': 2}})
    with pytest.raises(ValueError, match=r"unknown section\(s\) \['stage2'\]"):
        config.resolve('tiny', {'stage2': {}})
    with pytest.raises(ValueError, match='unknown preset'):
        config.resolve('huge')


def test_a_trained_stage2_config_is_read_typed_and_a_missing_setting_named(tmp_path):
    (tmp_path / 'config.json').write_text(
        '{"variant": "J3", "embedding_dim": 64, "source_checkpoint": "/r/checkpoints/ckpt-9",'
        ' "margin": 0.5, "total_steps": 400}')
    trained = config.load_trained_reid(str(tmp_path))
    assert (trained.stage, trained.variant, trained.embedding_dim, trained.margin) == (
        'reid', 'J3', 64, 0.5)
    # Settings that came later take the values older versions used.
    assert trained.mixed_precision == 'float32' and trained.normalize_for_loss
    assert not trained.soft_margin
    (tmp_path / 'config.json').write_text(
        '{"variant": "J3", "embedding_dim": 64, "source_checkpoint": "x", "soft_margin": true}')
    assert config.load_trained_reid(str(tmp_path)).soft_margin
    (tmp_path / 'config.json').write_text('{"variant": "J3", "source_checkpoint": "x"}')
    with pytest.raises(ValueError, match=r'config.json: no embedding_dim: not written by'):
        config.load_trained_reid(str(tmp_path))
    with pytest.raises(ValueError, match='not a stage-2 directory'):
        config.load_trained_reid(str(tmp_path / 'missing'))


@pytest.mark.parametrize('stage', ['reid', 'joint'])
def test_a_config_written_before_the_sections_loads_with_its_prefixed_names(tmp_path, stage):
    # A stage-2 (or joint fine-tuning) config.json of before the rename: `reid_`-prefixed keys
    # (and stage 2's computed steps_per_epoch beside the reid_steps_per_epoch setting).
    old = {'variant': 'J2', 'embedding_dim': 16, 'source_checkpoint': '/r/checkpoints/ckpt-3',
           'reid_datasets': 'prw,cuhk_sysu', 'reid_split': 'train[:50%]',
           'reid_freeze_batch_norm': True, 'reid_mixed_precision': 'bfloat16', 'margin': 0.3,
           'soft_margin': True, 'reid_seed': 4, 'reid_steps_per_epoch': 0, 'steps_per_epoch': 25,
           'total_steps': 50}
    if stage == 'joint':
        old.update(stage='joint', joint_steps=50, joint_seed=1,
                   reid_checkpoint='/r/reid/checkpoints/ckpt-9')
    (tmp_path / 'config.json').write_text(json.dumps(old))
    trained = config.load_trained_reid(str(tmp_path))
    assert trained == config.TrainedReid(
        path=str(tmp_path / 'config.json'), stage=stage, variant='J2', embedding_dim=16,
        source_checkpoint='/r/checkpoints/ckpt-3', datasets='prw,cuhk_sysu',
        split='train[:50%]', margin=0.3, soft_margin=True, normalize_for_loss=True,
        freeze_batch_norm=True, mixed_precision='bfloat16')
    # The current layout reads the same.
    new = {config.RENAMED_SETTINGS['reid'].get(k, k): v for k, v in old.items()
           if k != 'reid_steps_per_epoch'}
    (tmp_path / 'config.json').write_text(json.dumps(new))
    assert config.load_trained_reid(str(tmp_path)) == trained
    assert config.with_current_names(old, 'reid')['steps_per_epoch'] == 25   # present wins


def test_a_stage1_config_records_the_resize_mode_and_an_older_one_letterboxes(tmp_path):
    stretched = dataclasses.replace(config.PRESETS['synthetic'].detection, resize_mode='stretch')
    config.save_config(stretched, str(tmp_path), total_steps=5)
    assert config.load_detection_config(str(tmp_path)) == stretched
    assert {c.detection.resize_mode for c in config.PRESETS.values()} == {'letterbox'}
    # A run written before the setting existed (no resize_mode in its config.json) letterboxed.
    older = tmp_path / 'older'
    older.mkdir()
    (older / 'config.json').write_text('{"variant": "J3", "image_size": 320, "total_steps": 5}')
    loaded = config.load_detection_config(str(older))
    assert (loaded.variant, loaded.image_size, loaded.resize_mode) == ('J3', 320, 'letterbox')


def test_a_settings_file_sits_between_the_preset_and_the_flags(tmp_path):
    path = tmp_path / 'settings.json'
    path.write_text('{"detection": {"image_size": 512, "base_learning_rate": 1},'
                    ' "reid": {"margin": 0.3, "seed": 3}, "_note": "ignored"}')
    settings = config.read_settings_file(str(path))
    assert settings == {'detection': {'image_size': 512, 'base_learning_rate': 1.0},
                        'reid': {'margin': 0.3, 'seed': 3}}
    experiment = config.resolve('synthetic', settings, {
        'detection': {'image_size': 256, 'epochs': None}, 'reid': {'seed': 4}})
    detection = experiment.detection
    assert (detection.image_size, detection.base_learning_rate, detection.epochs) == (
        256, 1.0, config.PRESETS['synthetic'].detection.epochs)          # flag > file > preset
    assert (experiment.reid.margin, experiment.reid.seed, experiment.detection.seed) == (
        0.3, 4, 0)
    # What a run writes is nested by section and reads back to the same settings, whatever the
    # preset it is read with.
    written = tmp_path / 'written.json'
    config.write_settings(str(written), experiment, 'synthetic')
    content = json.loads(written.read_text())
    assert list(content) == ['_preset', 'detection', 'joint', 'pretrain', 'reid']
    assert content['_preset'] == 'synthetic' and content['reid']['seed'] == 4
    assert config.resolve('paper', config.read_settings_file(str(written))) == experiment


@pytest.mark.parametrize('content, message', [
    ('{"detection": {"image_size": 512.5}}', r'detection.image_size must be a int, got 512.5'),
    ('{"detection": {"image_size": true}}', r'detection.image_size must be a int'),
    ('{"reid": {"margin": "0.3"}}', r"reid.margin must be a float, got '0.3'"),
    ('{"reid": {"image_size": 64}}', r'reid.image_size is not a ReidConfig setting \(did you '
                                     r'mean detection.image_size\?\)'),
    ('{"reid": {"reid_seed": 1}}', r'reid.reid_seed is now reid.seed'),
    ('{"joint": {"joint_steps": 2}}', r'joint.joint_steps is now joint.steps'),
    ('{"pretrain": {"pretrain_steps": 4}}', r'pretrain.pretrain_steps is now pretrain.steps'),
    ('{"detection": {"margin": 0.3}}', r'detection.margin is not a DetectionConfig setting '
                                       r'\(did you mean reid.margin\?\)'),
    ('{"detection": {"reid_seed": 1}}', r'did you mean reid.seed\?'),
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
