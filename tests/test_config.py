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


def test_preset_values_name_every_preset():
    assert config.preset_values(config.ReidConfig, 'identities_per_batch') == (
        'paper: 32, synthetic: 16')
