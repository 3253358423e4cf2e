"""Builds the networks a config describes: the detector, and the same trained detector re-split
for another variant.

The detector of J2, J3 and J4 is one network; the variant only says where the shared trunk ends
and the replicated re-ID stages begin (`ps_tf.models.backbone.split_resnet50`). So one stage-1 run
serves all three variants: `with_variant` copies its weights, layer by layer, into the split of
another variant.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from ps_tf.config import DetectionConfig
from ps_tf.models.retinanet import RetinaNetDetector, build_detector
from ps_tf.ops.anchors import AnchorConfig
from ps_tf.precision import MIXED_PRECISION_POLICIES, resolve_mixed_precision


def aspect_ratios(text: str) -> tuple[float, ...]:
    """'2,1,0.5' -> (2.0, 1.0, 0.5) (`DetectionConfig.aspect_ratios`).

    Raises:
        ValueError: not a comma-separated list of positive numbers.
    """
    try:
        ratios = tuple(float(part) for part in text.split(','))
    except ValueError:
        ratios = ()
    if not ratios or any(not ratio > 0 for ratio in ratios):
        raise ValueError(f'aspect_ratios must be positive numbers separated by commas, e.g. '
                         f"'1,2,3', got {text!r}")
    return ratios


def anchor_config(config: DetectionConfig) -> AnchorConfig:
    """The anchors the config's detector predicts for."""
    return AnchorConfig(anchor_size=config.anchor_size,
                        aspect_ratios=aspect_ratios(config.aspect_ratios))


def build_model(config: DetectionConfig) -> RetinaNetDetector:
    """The detector the config describes (call inside the strategy scope).

    Layers take the Keras dtype policy that is global when they are built, so the policy of
    `config.mixed_precision` is set for the build only and the previous one restored after.
    """
    precision = resolve_mixed_precision(config.mixed_precision)
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(MIXED_PRECISION_POLICIES[precision])
    try:
        return build_detector(config.variant, weights=config.weights,
                              freeze_batch_norm=config.freeze_batch_norm,
                              head_batch_norm=config.head_batch_norm,
                              anchor_config=anchor_config(config), layout=config.layout)
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def built_detector(config: DetectionConfig) -> RetinaNetDetector:
    """The config's detector with random weights, built (called once), ready for a checkpoint or
    for weights copied into it."""
    detector = build_model(dataclasses.replace(config, weights='none'))
    detector(tf.zeros([1, config.image_size, config.image_size, 3]), training=False)
    return detector


def layers_with_weights(model: tf.keras.Model) -> dict[str, tf.keras.layers.Layer]:
    """The leaf layers of a (nested) model that hold weights, by name."""
    found = {}
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            found.update(layers_with_weights(layer))
        elif layer.weights:
            found[layer.name] = layer
    return found


def with_variant(detector: RetinaNetDetector, config: DetectionConfig,
                 variant: str) -> RetinaNetDetector:
    """The same trained detector, split for another variant: its ResNet-50 layers are copied by
    name into the trunk / rest of `variant`, the pyramid and head one to one.

    Raises:
        ValueError: the two networks' weights do not correspond (never for J2/J3/J4 of one
            config).
    """
    target = built_detector(dataclasses.replace(config, variant=variant))
    source_layers = {**layers_with_weights(detector.trunk), **layers_with_weights(detector.rest)}
    target_layers = {**layers_with_weights(target.trunk), **layers_with_weights(target.rest)}
    if set(source_layers) != set(target_layers):
        raise ValueError(f'cannot split the {detector.variant} detector as {variant}: ResNet '
                         f'layers differ ({sorted(set(source_layers) ^ set(target_layers))[:5]})')
    pairs = [(s, t) for name in source_layers
             for s, t in zip(source_layers[name].weights, target_layers[name].weights)]
    for part in ('fpn', 'head'):
        source, destination = getattr(detector, part).weights, getattr(target, part).weights
        if len(source) != len(destination):
            raise ValueError(f'cannot split the {detector.variant} detector as {variant}: its '
                             f'{part} has {len(source)} weights, the new one {len(destination)}')
        pairs += list(zip(source, destination))
    if len(pairs) != len(target.weights):
        raise ValueError(f'{len(pairs)} of the {variant} detector\'s {len(target.weights)} '
                         f'weights have a counterpart in the {detector.variant} detector')
    for source, destination in pairs:
        if source.shape != destination.shape:
            raise ValueError(f'{source.name} {source.shape} vs {destination.name} '
                             f'{destination.shape}: not the same network')
        destination.assign(source)
    return target
