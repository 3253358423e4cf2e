"""Training settings and the three presets, in one place.

`paper` is the paper's setting (ICIP 2019, §3.1): 640x640 images, batch 10, SGD momentum 0.9,
linear-cosine decay with warm-up from 1e-3, 90 epochs, detection on CUHK-SYSU + PRW + MOT17Det +
WIDER Pedestrian, the detector fine-tuned from a COCO RetinaNet: the TF Model Garden's layout and
anchors, started from its COCO checkpoint with `--init_checkpoint`. `synthetic` is the CPU-scale
run on the embedded synthetic dataset: small images, from scratch (nothing can be downloaded),
batch norm trained. `tiny` is `synthetic` on `synthetic_person_search/tiny` with a few steps of
every stage: one switch for a smoke run of the whole pipeline in minutes (what the tests'
miniature main job runs).

Every field is a flag of `train.py` (same name), so any preset value can be overridden.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from typing import Any

import tensorflow as tf

from ps_tf import atomic

# `DetectionConfig.weights` value that starts the detector from the run's own pretraining stage
# (train.py resolves it to <model_dir>/pretrain/resnet50.h5).
PRETRAINED_WEIGHTS = 'pretrained'


@dataclasses.dataclass(frozen=True)
class DetectionConfig:
    """Stage 1: the RetinaNet detector on the shared trunk.

    Attributes:
        variant: 'J2', 'J3' or 'J4'.
        image_size: side of the square model input; images are resized (aspect kept) and padded.
        resize_mode: how an image becomes that square, 'letterbox' (aspect kept, longer side =
            image_size, zero padding bottom/right) or 'stretch' (resized to the square, each axis
            by its own scale; Model Garden's 640x640 RetinaNet input). Feature pooling, stage 2,
            joint fine-tuning, evaluation, the export and search read it from the stage-1 run.
        batch_size: global batch (split over the devices of the distribution strategy).
        epochs: training length; an epoch is `steps_per_epoch` steps.
        steps_per_epoch: 0 = the training images of all datasets / batch_size.
        base_learning_rate: peak learning rate of the linear-cosine schedule.
        warmup_epochs: linear warm-up length.
        momentum: SGD momentum.
        weight_decay: L2 on convolution kernels (added to the loss).
        datasets: weighted mix, 'name[/config]:weight,...' (training split 'train').
        dataset_mixing: how `datasets`' weights draw images: 'weights' (as given: equal weights
            draw each dataset equally often, whatever its size) or 'size' (each weight times the
            dataset's number of training images: equal weights draw every image equally often).
        flip_prob: probability of a random horizontal flip of a training image (the paper names
            flips as future work, so its preset has none).
        validation: 'name[/config]:split' scored periodically with detection AP ('' for none).
        validation_images: at most this many validation images per evaluation (0 = all).
        weights: backbone initialisation: 'none', 'imagenet', a ResNet-50 weights file (the
            keras layout; the garden layout takes 'none' and `init_checkpoint`), or 'pretrained':
            the ResNet-50 of this run's own pretraining stage (`train.py` runs
            `--stage=pretrain` first and passes its weights file on).
        layout: the ResNet-50 and feature pyramid: 'keras' (tf.keras.applications' ResNet-50,
            whose ImageNet weights `weights` loads; Lin et al.'s pyramid) or 'garden' (the
            TensorFlow Model Garden's ResNet-50 v1.5 and pyramid, whose COCO RetinaNet
            checkpoints `init_checkpoint` loads). docs/architecture.md#two-layouts.
        init_checkpoint: a Model Garden RetinaNet ResNet-50 FPN checkpoint
            (`retinanet_resnetfpn_coco`, 91 classes) that a fresh run starts the whole detector
            from: backbone, pyramid and head, the class subnet's person channel (COCO class 1)
            as the person logit; '' for none. Needs the garden layout, head_batch_norm and the
            COCO anchors (aspect_ratios 2,1,0.5); a resumed run restores its own checkpoint.
        freeze_batch_norm: fixed ResNet batch norm (pretrained backbones, small batches).
        freeze_shared_trunk: keep the shared trunk (C1 up to the variant's shared stage) at its
            initial weights during stage 1, batch norm included, and train only the detection
            branch's own stages, pyramid and head (Detectron's FREEZE_AT). With a pretrained
            trunk (`weights`) the shared map keeps the appearance pretraining put there instead
            of being rewritten for detection only; the re-ID branch pools that map.
        head_batch_norm: batch norm in the class and box subnets (helps from scratch; per level,
            as the Model Garden's head).
        anchor_size: smallest anchor of a level, in strides (4 = 32 px at P3).
        aspect_ratios: the anchors' height / width ratios, comma-separated, in the head's output
            order: '1,2,3' (tall, for people) or '2,1,0.5' (the Model Garden's COCO anchors).
        mixed_precision: 'float32', 'bfloat16' (Keras 'mixed_bfloat16': bfloat16 compute,
            float32 variables and outputs), 'float16' ('mixed_float16' with dynamic loss
            scaling, for GPUs without fast bfloat16) or 'auto' (bfloat16 on GPUs of compute
            capability 8.0 or more and on CPUs with AVX-512 BF16 / AMX units, where it is about
            2-3x faster; float16 on older GPUs; float32 elsewhere: `ps_tf/precision.py`).
        log_every, checkpoint_every, eval_every: periods in steps.
        seed: weight initialisation, data order and augmentation.
    """
    variant: str = 'J3'
    image_size: int = 640
    resize_mode: str = 'letterbox'
    batch_size: int = 10
    epochs: float = 90.0
    steps_per_epoch: int = 0
    base_learning_rate: float = 1e-3
    warmup_epochs: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 1e-4
    datasets: str = 'cuhk_sysu:1,prw:1,mot17det:1,wider_pedestrian:1'
    dataset_mixing: str = 'weights'
    flip_prob: float = 0.0
    validation: str = 'cuhk_sysu:gallery'
    validation_images: int = 500
    weights: str = 'imagenet'
    layout: str = 'keras'
    init_checkpoint: str = ''
    freeze_batch_norm: bool = True
    freeze_shared_trunk: bool = False
    head_batch_norm: bool = False
    anchor_size: float = 4.0
    aspect_ratios: str = '1,2,3'
    mixed_precision: str = 'float32'
    log_every: int = 50
    checkpoint_every: int = 500
    eval_every: int = 5000
    seed: int = 0


PRESETS: dict[str, DetectionConfig] = {
    # The Model Garden's RetinaNet layout and anchors, so that its COCO checkpoint loads whole
    # (--init_checkpoint; docs/choices.md#coco-initialisation).
    'paper': DetectionConfig(weights='none', layout='garden', head_batch_norm=True,
                             aspect_ratios='2,1,0.5'),
    # ~537 steps of 8 images (2.0.0's 1,227 training images). The ResNet-50 starts from this
    # run's attribute pretraining (no ImageNet here) and C1 up to the shared stage stay as
    # pretrained: at an equal reduced budget that tripled detection AP (0.17 -> 0.55) and
    # quadrupled J3's ground-truth-box search mAP (0.04 -> 0.16) against fine-tuning them
    # (experiments/README.md, "Keeping the pretrained trunk").
    'synthetic': DetectionConfig(
        image_size=320, batch_size=8, epochs=3.5, base_learning_rate=0.02, warmup_epochs=0.15,
        datasets='synthetic_person_search/default:1',
        validation='synthetic_person_search/default:gallery', validation_images=0,
        flip_prob=0.5, weights=PRETRAINED_WEIGHTS, freeze_shared_trunk=True,
        freeze_batch_norm=False, head_batch_norm=True, anchor_size=2.5,
        mixed_precision='auto', log_every=10, checkpoint_every=100, eval_every=250),
}
# `tiny`: the synthetic preset on `synthetic_person_search/tiny` with a few steps of everything,
# one switch (`--preset=tiny`) for a smoke run of the whole pipeline in a few minutes.
PRESETS['tiny'] = dataclasses.replace(
    PRESETS['synthetic'], image_size=64, batch_size=2, epochs=0.5, warmup_epochs=0.5,
    datasets='synthetic_person_search/tiny:1', validation='synthetic_person_search/tiny:gallery',
    mixed_precision='float32', log_every=1, checkpoint_every=10, eval_every=0)


def resolve(preset: str, overrides: dict[str, Any]) -> DetectionConfig:
    """The stage-1 preset with `overrides` (field -> value; None values are ignored) applied.

    Raises:
        ValueError: unknown preset or field.
    """
    return _apply_overrides(PRESETS, preset, overrides)


def _apply_overrides(presets: dict, preset: str, overrides: dict[str, Any]):
    if preset not in presets:
        raise ValueError(f'unknown preset {preset!r}; choose one of {sorted(presets)}')
    config = presets[preset]
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f'unknown {type(config).__name__} settings {sorted(unknown)}')
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})


def save_config(config: DetectionConfig, model_dir: str, **extra: Any) -> str:
    """Writes the resolved config as JSON next to the checkpoints (atomically); returns the
    path."""
    path = os.path.join(model_dir, 'config.json')
    atomic.write_json(path, {**dataclasses.asdict(config), **extra})
    return path


# ----------------------------------------------------------------------------- stage 2 (re-ID)

@dataclasses.dataclass(frozen=True)
class ReidConfig:
    """Feature pooling and stage 2: the re-ID branch trained on pooled features.

    The variant and image size come from the stage-1 run (its `config.json`). Field names differ
    from `DetectionConfig`'s so that every field of both is its own `train.py` flag. The same
    settings train the disjoint baseline's embedding network on ground-truth crops (variant
    'Disj', `ps_tf/models/stage2.py`).

    Attributes:
        reid_datasets: comma-separated re-ID datasets ('name[/config]'), pooled from the split
            `reid_split`; identities are made unique across them.
        reid_split: the split pooled (TFDS slicing works).
        pooled_dtype: storage dtype of the pooled features, 'float16' or 'float32' (the
            disjoint baseline's crops are always 'uint8').
        images_per_shard: images per pooled-feature shard (the unit of resume).
        pooling_batch_size: images per forward pass of the trunk while pooling.
        embedding_dim: size of the re-ID embedding.
        identities_per_batch: P, identities per stage-2 batch.
        samples_per_identity: K, samples per identity.
        in_memory_budget: stage 2 loads the whole pooled set into memory once and builds its
            batches there when the set takes at most this fraction of the available memory,
            else it reads each batch's records from disk (0 = always from disk;
            `ps_tf/data/identity_sampler.py`). Both give the same batches.
        num_parallel_reads: batches the disk reader reads and parses in parallel (raise it for
            slow or remote storage).
        semi_hard_epochs: epochs of the first phase (TFA `TripletSemiHardLoss`).
        hard_epochs: epochs of the second phase (TFA `TripletHardLoss`, batch hard).
        reid_epoch_unit: what one epoch of `semi_hard_epochs` / `hard_epochs` is:
            'identities' (ceil(identities / P) batches: every identity once as a batch identity)
            or 'boxes' (ceil(boxes / (P x K)) batches: as many samples as pooled boxes).
        reid_steps_per_epoch: steps per epoch if > 0, overriding `reid_epoch_unit` (1 makes the
            epoch counts step counts).
        reid_learning_rate: Adam's initial learning rate, decayed linear-cosine.
        reid_schedule: 'continuous' (one decay over both phases, the paper's wording) or
            'per_phase' (the decay restarts at the batch-hard phase, from `hard_learning_rate`).
        hard_learning_rate: the batch-hard phase's initial rate with 'per_phase' (0 = the same as
            `reid_learning_rate`).
        reid_warmup_epochs: linear warm-up length (at the start of training).
        reid_flip: flip each pooled box horizontally with probability 1/2 while training (a
            person's mirror image is the same person; the pooled map of a flipped box is close to
            the flipped map of the box).
        margin: triplet margin (both phases), in the distance of the embeddings the losses see.
        soft_margin: the batch-hard phase (and joint fine-tuning) uses the soft margin
            log(1 + exp(d+ - d-)) instead of the hinge (Hermans et al.; TFA's `soft=True`), so
            `margin` applies to the semi-hard phase only.
        normalize_for_loss: L2-normalise the embeddings before the triplet losses, as TFA's
            losses expect (raw embeddings let the semi-hard loss shrink by scaling them up:
            on synthetic data their norm grew to ~30 and search mAP was lower); inference always
            normalises.
        reid_mixed_precision: the replicated stages' precision, as `mixed_precision` of
            stage 1 ('float32', 'bfloat16', 'float16' or 'auto').
        reid_freeze_batch_norm: keep the replicated stages' batch norm in inference mode with the
            detector's statistics (training and inference then see the same normalisation).
        reid_validation: TFDS dataset whose gallery/query splits are searched periodically
            ('' = none).
        reid_log_every, reid_checkpoint_every, reid_eval_every: periods in steps (eval 0 = only
            at the end).
        reid_seed: the P x K sampler's and the embedding layer's seed.
        disjoint_weights: the disjoint baseline (variant 'Disj') only: its embedding ResNet-50's
            initialisation, 'detector' (the stage-1 detector's ResNet-50, as the joint models'
            re-ID branches start from the detector's stages), 'imagenet', 'none' or a ResNet-50
            weights file.
    """
    reid_datasets: str = 'cuhk_sysu'
    reid_split: str = 'train'
    pooled_dtype: str = 'float16'
    images_per_shard: int = 500
    pooling_batch_size: int = 8
    embedding_dim: int = 128
    identities_per_batch: int = 32
    samples_per_identity: int = 4
    in_memory_budget: float = 0.5
    num_parallel_reads: int = 2
    semi_hard_epochs: float = 350.0
    hard_epochs: float = 350.0
    reid_epoch_unit: str = 'identities'
    reid_steps_per_epoch: int = 0
    reid_learning_rate: float = 1e-4
    reid_schedule: str = 'continuous'
    hard_learning_rate: float = 0.0
    reid_warmup_epochs: float = 0.0
    reid_flip: bool = False
    margin: float = 0.5
    soft_margin: bool = False
    normalize_for_loss: bool = True
    reid_freeze_batch_norm: bool = False
    reid_mixed_precision: str = 'float32'
    reid_validation: str = 'cuhk_sysu'
    reid_log_every: int = 100
    reid_checkpoint_every: int = 1000
    reid_eval_every: int = 20000
    reid_seed: int = 0
    disjoint_weights: str = 'detector'


REID_PRESETS: dict[str, ReidConfig] = {
    'paper': ReidConfig(),
    # The default synthetic split has 400 training identities: 16 x 4 batches, 25 per epoch; 400
    # steps (more help: 300 -> 600 steps raised search mAP at gallery 100 from 0.48 to 0.54).
    'synthetic': ReidConfig(
        reid_datasets='synthetic_person_search/default', images_per_shard=200,
        identities_per_batch=16, samples_per_identity=4, semi_hard_epochs=8.0, hard_epochs=8.0,
        reid_learning_rate=3e-4, reid_validation='synthetic_person_search/default',
        reid_mixed_precision='auto', reid_log_every=10, reid_checkpoint_every=50,
        reid_eval_every=0),
}
REID_PRESETS['tiny'] = dataclasses.replace(
    REID_PRESETS['synthetic'], reid_datasets='synthetic_person_search/tiny', images_per_shard=4,
    pooling_batch_size=4, embedding_dim=8, identities_per_batch=2, samples_per_identity=2,
    semi_hard_epochs=1, hard_epochs=1, reid_steps_per_epoch=1,
    reid_validation='synthetic_person_search/tiny', reid_mixed_precision='float32',
    reid_log_every=1)


def resolve_reid(preset: str, overrides: dict[str, Any]) -> ReidConfig:
    """The re-ID preset with `overrides` (field -> value; None values are ignored) applied.

    Raises:
        ValueError: unknown preset or field.
    """
    return _apply_overrides(REID_PRESETS, preset, overrides)


def load_detection_config(model_dir: str) -> DetectionConfig:
    """The resolved `DetectionConfig` a stage-1 run saved as `<model_dir>/config.json`.

    Extra keys (total_steps, ...) are ignored. A run written before `resize_mode` existed
    letterboxed its images: its config loads as 'letterbox' whatever the default is now.

    Raises:
        ValueError: the file is missing.
    """
    path = os.path.join(model_dir, 'config.json')
    if not tf.io.gfile.exists(path):
        raise ValueError(f'{path} does not exist: point --detection_model_dir at a stage-1 run')
    with tf.io.gfile.GFile(path, 'r') as f:
        content = json.load(f)
    fields = {f.name for f in dataclasses.fields(DetectionConfig)}
    content = {'resize_mode': 'letterbox', **content}
    return DetectionConfig(**{k: v for k, v in content.items() if k in fields})


@dataclasses.dataclass(frozen=True)
class TrainedReid:
    """What a trained stage-2 (or joint fine-tuning) directory's `config.json` says about its
    model: the settings that loading it and fine-tuning it read back (`load_trained_reid`).

    Attributes:
        path: the `config.json` read.
        stage: 'reid', or 'joint' for a fine-tuned model (its checkpoint holds the detector too).
        variant: 'J2', 'J3', 'J4' or 'Disj'.
        embedding_dim: size of the re-ID embedding.
        source_checkpoint: the stage-1 checkpoint the features were pooled with.
        reid_datasets: comma-separated re-ID datasets the branch was trained on (None: not
            recorded; fine-tuning needs it, loading does not).
        reid_split: their split (idem).
        margin: the triplet margin (idem).
        soft_margin: batch hard used the soft margin (fine-tuning keeps it).
        normalize_for_loss: the triplet loss saw L2-normalised embeddings.
        reid_freeze_batch_norm: the replicated stages' batch norm stayed in inference mode.
        reid_mixed_precision: the compute precision stage 2 was trained in.
    """
    path: str
    stage: str
    variant: str
    embedding_dim: int
    source_checkpoint: str
    reid_datasets: str | None = None
    reid_split: str | None = None
    margin: float | None = None
    soft_margin: bool = False
    normalize_for_loss: bool = True
    reid_freeze_batch_norm: bool = False
    reid_mixed_precision: str = 'float32'


def load_trained_reid(directory: str) -> TrainedReid:
    """The `TrainedReid` of `<directory>/config.json` (written by stage 2 or joint fine-tuning).

    Variant, embedding size and stage-1 checkpoint are required; a file of an older version
    lacks the settings that came later, which take the values those versions used (the
    dataclass defaults).

    Raises:
        ValueError: the file is missing, or lacks a required setting (named, with the file).
    """
    path = os.path.join(directory, 'config.json')
    if not tf.io.gfile.exists(path):
        raise ValueError(f'{path} does not exist: not a stage-2 directory (train.py --stage=reid '
                         f'writes one)')
    with tf.io.gfile.GFile(path) as f:
        content = json.load(f)
    content = {'stage': 'reid', **content, 'path': path}
    fields = dataclasses.fields(TrainedReid)
    missing = [f.name for f in fields
               if f.default is dataclasses.MISSING and f.name not in content]
    if missing:
        raise ValueError(f'{path}: no {", ".join(missing)}: not written by a finished stage 2')
    return TrainedReid(**{f.name: content[f.name] for f in fields if f.name in content})


# ----------------------------------------------------------------------------- joint fine-tuning

@dataclasses.dataclass(frozen=True)
class JointConfig:
    """The optional joint fine-tuning after the two-step training
    (`ps_tf/training/joint_finetune.py`): detector, shared trunk and re-ID branch trained together
    on L = L_det + joint_reid_weight * L_reid, the re-ID gradient reaching the shared trunk.

    It starts from the finished stage-2 run (`<model_dir>/reid`) and its stage-1 detector, and
    reads the stage-2 run's re-ID datasets and split. Field names start with `joint_` so that each
    is its own `train.py` flag.

    Attributes:
        joint_steps: training steps.
        joint_identities_per_batch: P, identities a batch is drawn for.
        joint_images_per_identity: K, images of each identity (images that show it); a batch is
            P x K full images, and every labelled box in them enters the triplet loss.
        joint_reid_weight: the weight of L_reid in the total loss (the paper's L has 1).
        joint_optimizer: 'sgd' (with `joint_momentum`, as stage 1) or 'adam' (as stage 2).
        joint_learning_rate: initial learning rate, decayed linear-cosine over `joint_steps`.
        joint_warmup_steps: linear warm-up length.
        joint_momentum: SGD momentum.
        joint_weight_decay: L2 on the detector's convolution kernels, as stage 1 (stage 2 has
            none).
        joint_flip_prob: probability of a horizontal flip of each image.
        joint_validation: TFDS dataset whose gallery/query splits are searched at the end ('' =
            none).
        joint_log_every, joint_checkpoint_every: periods in steps.
        joint_seed: the image sampler's and the flips' seed.
    """
    joint_steps: int = 5000
    joint_identities_per_batch: int = 5
    joint_images_per_identity: int = 2
    joint_reid_weight: float = 1.0
    joint_optimizer: str = 'sgd'
    joint_learning_rate: float = 1e-4
    joint_warmup_steps: int = 100
    joint_momentum: float = 0.9
    joint_weight_decay: float = 1e-4
    joint_flip_prob: float = 0.5
    joint_validation: str = 'cuhk_sysu'
    joint_log_every: int = 50
    joint_checkpoint_every: int = 500
    joint_seed: int = 0


JOINT_PRESETS: dict[str, JointConfig] = {
    # 5 x 2 = 10 images of 640 px: the paper's detection batch; a tenth of stage 1's rate.
    'paper': JointConfig(),
    # 4 x 2 = 8 images of 320 px, the synthetic stage-1 batch; a tenth of its rate.
    'synthetic': JointConfig(
        joint_steps=200, joint_identities_per_batch=4, joint_images_per_identity=2,
        joint_learning_rate=2e-3, joint_warmup_steps=10,
        joint_validation='synthetic_person_search/default', joint_log_every=10,
        joint_checkpoint_every=50),
}
JOINT_PRESETS['tiny'] = dataclasses.replace(
    JOINT_PRESETS['synthetic'], joint_steps=2, joint_identities_per_batch=2, joint_warmup_steps=1,
    joint_validation='synthetic_person_search/tiny', joint_log_every=1, joint_checkpoint_every=1)


def resolve_joint(preset: str, overrides: dict[str, Any]) -> JointConfig:
    """The joint fine-tuning preset with `overrides` (field -> value; None values are ignored)
    applied.

    Raises:
        ValueError: unknown preset or field.
    """
    return _apply_overrides(JOINT_PRESETS, preset, overrides)


# ----------------------------------------------------------------------------- backbone pretraining

@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Backbone pretraining: the ResNet-50 learns to name what drawn people wear
    (`ps_tf/training/pretraining.py`), the stand-in for ImageNet weights where none can be
    downloaded. A stage-1 run whose `weights` is 'pretrained' starts from it.

    Attributes:
        pretrain_dataset: TFDS dataset of labelled crops (`synthetic_attributes` schema).
        pretrain_batch_size: crops per step.
        pretrain_steps: training length.
        pretrain_learning_rate: Adam's peak rate, linear-cosine decay after a linear warm-up.
        pretrain_warmup_steps: warm-up length.
        pretrain_mixed_precision: as `DetectionConfig.mixed_precision`.
        pretrain_log_every, pretrain_checkpoint_every: periods in steps.
        pretrain_seed: weight initialisation and data order.
    """
    pretrain_dataset: str = 'synthetic_attributes/default'
    pretrain_batch_size: int = 64
    pretrain_steps: int = 600
    pretrain_learning_rate: float = 1e-3
    pretrain_warmup_steps: int = 50
    pretrain_mixed_precision: str = 'auto'
    pretrain_log_every: int = 25
    pretrain_checkpoint_every: int = 100
    pretrain_seed: int = 0


PRETRAIN_PRESETS: dict[str, PretrainConfig] = {
    'paper': PretrainConfig(),      # unused: the paper's detector starts from COCO weights
    # 300 steps of 64 crops, the pretraining the frozen-trunk measurements started from.
    'synthetic': PretrainConfig(pretrain_steps=300),
    'tiny': PretrainConfig(
        pretrain_dataset='synthetic_attributes/tiny', pretrain_batch_size=8, pretrain_steps=4,
        pretrain_warmup_steps=1, pretrain_mixed_precision='float32', pretrain_log_every=1,
        pretrain_checkpoint_every=2),
}


def resolve_pretrain(preset: str, overrides: dict[str, Any]) -> PretrainConfig:
    """The pretraining preset with `overrides` (field -> value; None values are ignored)."""
    return _apply_overrides(PRETRAIN_PRESETS, preset, overrides)


# ------------------------------------------------------------------------------ descriptions

PRESETS_BY_CLASS = {DetectionConfig: PRESETS, ReidConfig: REID_PRESETS,
                    JointConfig: JOINT_PRESETS, PretrainConfig: PRETRAIN_PRESETS}


def field_descriptions(config_class: type) -> dict[str, str]:
    """Each field's description from the class docstring's `Attributes:` section (one place
    says what a setting means: the docstring, read here for the command-line help).

    An entry is `name: text` or `name_a, name_b: text` (shared), continued on more deeply
    indented lines.

    Raises:
        ValueError: a field without a description (the docstring must cover every field).
    """
    lines = (config_class.__doc__ or '').splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == 'Attributes:'), None)
    descriptions: dict[str, str] = {}
    current: list[str] = []
    if start is not None:
        indent = None
        for line in lines[start + 1:]:
            if not line.strip():
                continue
            depth = len(line) - len(line.lstrip())
            indent = depth if indent is None else indent
            if depth < indent:
                break
            if depth == indent and ':' in line:
                names, text = line.strip().split(':', 1)
                current = [name.strip() for name in names.split(',')]
                for name in current:
                    descriptions[name] = text.strip()
            else:
                for name in current:
                    descriptions[name] += ' ' + line.strip()
    missing = [f.name for f in dataclasses.fields(config_class) if f.name not in descriptions]
    if missing:
        raise ValueError(f'{config_class.__name__}: no description of {missing} in its docstring')
    return descriptions


def preset_values(config_class: type, name: str) -> str:
    """'paper: 32, synthetic: 16': the field's value in every preset, for the help text."""
    return ', '.join(f'{preset}: {getattr(config, name)!r}'
                     for preset, config in sorted(PRESETS_BY_CLASS[config_class].items()))


# ----------------------------------------------------------------------------- settings files

SECTIONS: dict[str, type] = {'detection': DetectionConfig, 'reid': ReidConfig,
                             'joint': JointConfig, 'pretrain': PretrainConfig}


def read_settings_file(path: str) -> dict[str, dict[str, Any]]:
    """The settings of a JSON file for `train.py --config_file`: one object per stage section
    (`SECTIONS`: 'detection', 'reid', 'joint', 'pretrain'), each mapping setting names to values,
    e.g. `{"detection": {"image_size": 512, "weights": "pretrained"}, "reid": {"margin": 0.3}}`.
    The names are the flags'; a file holds any subset. Command-line flags override the file, and
    the file overrides the preset. Keys starting with '_' are notes, ignored (`write_settings`
    records the preset as `_preset`).

    Raises:
        ValueError: the file is missing or not JSON, or has an unknown section or setting or a
            value of the wrong type; the message names the file and the entry.
    """
    try:
        with tf.io.gfile.GFile(path) as f:
            content = json.load(f)
    except tf.errors.NotFoundError as error:
        raise ValueError(f'settings file {path} does not exist') from error
    except json.JSONDecodeError as error:
        raise ValueError(f'settings file {path} is not valid JSON: {error}') from error
    if not isinstance(content, dict):
        raise ValueError(f'settings file {path}: expected an object of sections '
                         f'{sorted(SECTIONS)}, got {type(content).__name__}')
    content = {key: value for key, value in content.items() if not key.startswith('_')}
    unknown = sorted(set(content) - set(SECTIONS))
    if unknown:
        raise ValueError(f'settings file {path}: unknown section(s) {unknown}; the sections are '
                         f'{sorted(SECTIONS)}')
    settings = {}
    for section, values in content.items():
        config_class = SECTIONS[section]
        if not isinstance(values, dict):
            raise ValueError(f'settings file {path}: section {section!r} must be an object of '
                             f'settings, got {type(values).__name__}')
        hints = typing.get_type_hints(config_class)
        for name, value in values.items():
            if name not in hints:
                raise ValueError(f'settings file {path}: {section}.{name} is not a '
                                 f'{config_class.__name__} setting')
            if not _has_type(value, hints[name]):
                raise ValueError(f'settings file {path}: {section}.{name} must be a '
                                 f'{hints[name].__name__}, got {value!r}')
        settings[section] = {name: (float(value) if hints[name] is float else value)
                             for name, value in values.items()}
    return settings


def _has_type(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def resolve_section(config_class: type, preset: str, file_settings: dict[str, Any],
                    flag_settings: dict[str, Any]):
    """One stage's settings: the preset, then the settings file's section, then the flags that
    were given (None values are ignored at each level)."""
    return _apply_overrides(PRESETS_BY_CLASS[config_class], preset, {**file_settings, **{
        name: value for name, value in flag_settings.items() if value is not None}})


def write_settings(path: str, preset: str, sections: dict[str, Any]) -> None:
    """Writes every section's resolved settings as one JSON file a later `--config_file` reads
    back (with the preset it started from, for the reader)."""
    atomic.write_json(path, {'_preset': preset, **{
        name: dataclasses.asdict(config) for name, config in sections.items()}})
