"""Training settings and the three presets, in one place.

The settings form one `ExperimentConfig` of four sections, one frozen dataclass per stage:
`detection` (`DetectionConfig`, stage 1), `reid` (`ReidConfig`, feature pooling and stage 2),
`joint` (`JointConfig`, the optional joint fine-tuning) and `pretrain` (`PretrainConfig`,
backbone pretraining). A setting is named by its section and its field: `reid.margin`,
`joint.steps`, `pretrain.steps`; the same field name in two sections (`seed`, `validation`,
`mixed_precision`, ...) is two settings.

`paper` is the paper's setting (ICIP 2019, §3.1): 640x640 images, batch 10, SGD momentum 0.9,
linear-cosine decay with warm-up from 1e-3, 90 epochs, detection on CUHK-SYSU + PRW + MOT17Det +
WIDER Pedestrian, the detector fine-tuned from a COCO RetinaNet: the TF Model Garden's layout and
anchors, started from its COCO checkpoint with `--init_checkpoint`. `synthetic` is the CPU-scale
run on the embedded synthetic dataset: small images, from scratch (nothing can be downloaded),
batch norm trained. `tiny` is `synthetic` on `synthetic_person_search/tiny` with a few steps of
every stage: one switch for a smoke run of the whole pipeline in minutes (what the tests'
miniature main job runs).

Every setting is a flag of `train.py`, so any preset value can be overridden. The naming rule:
the stage-1 (`detection`) settings are plain flags named as their fields (`--epochs`,
`--image_size`, `--variant`), the others are qualified by their section (`--reid.margin`,
`--reid.seed`, `--joint.steps`, `--pretrain.steps`; `flag_name`). A settings file
(`--config_file`, `read_settings_file`) names them by section and field, `{"detection":
{"epochs": 5}, "reid": {"margin": 0.3}}`. `resolve` applies the preset, then the file, then the
flags. Names from before the sections (`--reid_seed`, `--joint_steps`, `--margin`, a file's
`{"reid": {"reid_seed": 1}}`) are refused with the new name (`FORMER_FLAGS`,
`RENAMED_SETTINGS`); run directories written with them still load (`load_trained_reid`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from ps_tf import atomic

# `DetectionConfig.weights` value that starts the detector from the run's own pretraining stage
# (train.py resolves it to <model_dir>/pretrain/resnet50.h5).
PRETRAINED_WEIGHTS = 'pretrained'


@dataclasses.dataclass(frozen=True)
class DetectionConfig:
    """Stage 1: the RetinaNet detector on the shared trunk. The section `detection`: the flags
    are the plain field names (`--epochs`), a settings file's `"detection"` object.

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


def save_config(config: DetectionConfig, model_dir: str, **extra: Any) -> str:
    """Writes the resolved config as JSON next to the checkpoints (atomically); returns the
    path."""
    path = os.path.join(model_dir, 'config.json')
    atomic.write_json(path, {**dataclasses.asdict(config), **extra})
    return path


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


# ----------------------------------------------------------------------------- stage 2 (re-ID)

@dataclasses.dataclass(frozen=True)
class ReidConfig:
    """Feature pooling and stage 2: the re-ID branch trained on pooled features.

    The variant and image size come from the stage-1 run (its `config.json`). The section
    `reid`: flags `--reid.<field>`, a settings file's `"reid"` object. The same settings train
    the disjoint baseline's embedding network on ground-truth crops (variant 'Disj',
    `ps_tf/models/stage2.py`).

    Attributes:
        datasets: comma-separated re-ID datasets ('name[/config]'), pooled from the split
            `split`; identities are made unique across them.
        split: the split pooled (TFDS slicing works).
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
        epoch_unit: what one epoch of `semi_hard_epochs` / `hard_epochs` is:
            'identities' (ceil(identities / P) batches: every identity once as a batch identity)
            or 'boxes' (ceil(boxes / (P x K)) batches: as many samples as pooled boxes).
        steps_per_epoch: steps per epoch if > 0, overriding `epoch_unit` (1 makes the epoch
            counts step counts).
        learning_rate: Adam's initial learning rate, decayed linear-cosine.
        schedule: 'continuous' (one decay over both phases, the paper's wording) or
            'per_phase' (the decay restarts at the batch-hard phase, from `hard_learning_rate`).
        hard_learning_rate: the batch-hard phase's initial rate with 'per_phase' (0 = the same as
            `learning_rate`).
        warmup_epochs: linear warm-up length (at the start of training).
        flip: flip each pooled box horizontally with probability 1/2 while training (a person's
            mirror image is the same person; the pooled map of a flipped box is close to the
            flipped map of the box).
        margin: triplet margin (both phases), in the distance of the embeddings the losses see.
        soft_margin: the batch-hard phase (and joint fine-tuning) uses the soft margin
            log(1 + exp(d+ - d-)) instead of the hinge (Hermans et al.; TFA's `soft=True`), so
            `margin` applies to the semi-hard phase only.
        normalize_for_loss: L2-normalise the embeddings before the triplet losses, as TFA's
            losses expect (raw embeddings let the semi-hard loss shrink by scaling them up:
            on synthetic data their norm grew to ~30 and search mAP was lower); inference always
            normalises.
        mixed_precision: the replicated stages' precision, as `DetectionConfig.mixed_precision`
            ('float32', 'bfloat16', 'float16' or 'auto').
        freeze_batch_norm: keep the replicated stages' batch norm in inference mode with the
            detector's statistics (training and inference then see the same normalisation).
        validation: TFDS dataset whose gallery/query splits are searched periodically
            ('' = none).
        log_every, checkpoint_every, eval_every: periods in steps (eval 0 = only at the end).
        seed: the P x K sampler's and the embedding layer's seed.
        initial_weights: what stage 2's ResNet stages start as (J2/J3/J4: the replicated stages
            after the shared one; Disj: its whole ResNet-50): 'detector' (the stage-1
            detector's), 'pretrained' (the pretraining the detector started from,
            `<detection run>/pretrain/resnet50.h5`), 'imagenet', 'none' or a ResNet-50 weights
            file.
    """
    datasets: str = 'cuhk_sysu'
    split: str = 'train'
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
    epoch_unit: str = 'identities'
    steps_per_epoch: int = 0
    learning_rate: float = 1e-4
    schedule: str = 'continuous'
    hard_learning_rate: float = 0.0
    warmup_epochs: float = 0.0
    flip: bool = False
    margin: float = 0.5
    soft_margin: bool = False
    normalize_for_loss: bool = True
    freeze_batch_norm: bool = False
    mixed_precision: str = 'float32'
    validation: str = 'cuhk_sysu'
    log_every: int = 100
    checkpoint_every: int = 1000
    eval_every: int = 20000
    seed: int = 0
    initial_weights: str = 'detector'


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
        datasets: comma-separated re-ID datasets the branch was trained on (None: not
            recorded; fine-tuning needs it, loading does not).
        split: their split (idem).
        margin: the triplet margin (idem).
        soft_margin: batch hard used the soft margin (fine-tuning keeps it).
        normalize_for_loss: the triplet loss saw L2-normalised embeddings.
        freeze_batch_norm: the replicated stages' batch norm stayed in inference mode.
        mixed_precision: the compute precision stage 2 was trained in.
    """
    path: str
    stage: str
    variant: str
    embedding_dim: int
    source_checkpoint: str
    datasets: str | None = None
    split: str | None = None
    margin: float | None = None
    soft_margin: bool = False
    normalize_for_loss: bool = True
    freeze_batch_norm: bool = False
    mixed_precision: str = 'float32'


def load_trained_reid(directory: str) -> TrainedReid:
    """The `TrainedReid` of `<directory>/config.json` (written by stage 2 or joint fine-tuning).

    Variant, embedding size and stage-1 checkpoint are required; a file of an older version
    lacks the settings that came later, which take the values those versions used (the
    dataclass defaults). A file written before the settings had sections names them with their
    former prefix (`reid_datasets`, `reid_split`, `reid_freeze_batch_norm`,
    `reid_mixed_precision`): read as the current names.

    Raises:
        ValueError: the file is missing, or lacks a required setting (named, with the file).
    """
    path = os.path.join(directory, 'config.json')
    if not tf.io.gfile.exists(path):
        raise ValueError(f'{path} does not exist: not a stage-2 directory (train.py --stage=reid '
                         f'writes one)')
    with tf.io.gfile.GFile(path) as f:
        content = json.load(f)
    content = {'stage': 'reid', **with_current_names(content, 'reid'), 'path': path}
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
    on L = L_det + reid_weight * L_reid, the re-ID gradient reaching the shared trunk.

    It starts from the finished stage-2 run (`<model_dir>/reid`) and its stage-1 detector, and
    reads the stage-2 run's re-ID datasets and split. The section `joint`: flags
    `--joint.<field>`, a settings file's `"joint"` object.

    Attributes:
        steps: training steps.
        identities_per_batch: P, identities a batch is drawn for.
        images_per_identity: K, images of each identity (images that show it); a batch is
            P x K full images, and every labelled box in them enters the triplet loss.
        reid_weight: the weight of L_reid in the total loss (the paper's L has 1).
        optimizer: 'sgd' (with `momentum`, as stage 1) or 'adam' (as stage 2).
        learning_rate: initial learning rate, decayed linear-cosine over `steps`.
        warmup_steps: linear warm-up length.
        momentum: SGD momentum.
        weight_decay: L2 on the detector's convolution kernels, as stage 1 (stage 2 has
            none).
        flip_prob: probability of a horizontal flip of each image.
        validation: TFDS dataset whose gallery/query splits are searched at the end ('' =
            none).
        log_every, checkpoint_every: periods in steps.
        seed: the image sampler's and the flips' seed.
        detection_trains_trunk: L_det's gradient (and weight decay) reaches the shared trunk,
            as in the paper's L. False: it stops at the trunk's maps, whose batch norms keep
            their statistics, so that only L_reid trains the shared layers, as after a stage 1
            that kept the trunk frozen (`freeze_shared_trunk`).
    """
    steps: int = 5000
    identities_per_batch: int = 5
    images_per_identity: int = 2
    reid_weight: float = 1.0
    optimizer: str = 'sgd'
    learning_rate: float = 1e-4
    warmup_steps: int = 100
    momentum: float = 0.9
    weight_decay: float = 1e-4
    flip_prob: float = 0.5
    validation: str = 'cuhk_sysu'
    log_every: int = 50
    checkpoint_every: int = 500
    seed: int = 0
    detection_trains_trunk: bool = True


# ----------------------------------------------------------------------------- backbone pretraining

@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Backbone pretraining: the ResNet-50 learns to name what drawn people wear
    (`ps_tf/training/pretraining.py`), the stand-in for ImageNet weights where none can be
    downloaded. A stage-1 run whose `weights` is 'pretrained' starts from it. The section
    `pretrain`: flags `--pretrain.<field>`, a settings file's `"pretrain"` object.

    Attributes:
        dataset: TFDS dataset of labelled crops (`synthetic_attributes` schema).
        batch_size: crops per step.
        steps: training length.
        learning_rate: Adam's peak rate, linear-cosine decay after a linear warm-up.
        warmup_steps: warm-up length.
        mixed_precision: as `DetectionConfig.mixed_precision`.
        log_every, checkpoint_every: periods in steps.
        seed: weight initialisation and data order.
        stage_heads: repeat the attribute heads on C2, C3 and C4 (their global average), so
            that the stages a re-ID branch shares learn the attributes themselves rather than
            only what C5's heads need from them.
    """
    dataset: str = 'synthetic_attributes/default'
    batch_size: int = 64
    steps: int = 600
    learning_rate: float = 1e-3
    warmup_steps: int = 50
    mixed_precision: str = 'auto'
    log_every: int = 25
    checkpoint_every: int = 100
    seed: int = 0
    stage_heads: bool = False


# ----------------------------------------------------------------------------- the experiment

@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Every stage's settings, one section each: what a preset gives, `resolve` returns and
    `<model_dir>/settings.json` records.

    Attributes:
        detection: stage 1.
        reid: feature pooling and stage 2.
        joint: the optional joint fine-tuning.
        pretrain: backbone pretraining.
    """
    detection: DetectionConfig = dataclasses.field(default_factory=DetectionConfig)
    reid: ReidConfig = dataclasses.field(default_factory=ReidConfig)
    joint: JointConfig = dataclasses.field(default_factory=JointConfig)
    pretrain: PretrainConfig = dataclasses.field(default_factory=PretrainConfig)

    def sections(self) -> dict[str, Any]:
        """{'detection': DetectionConfig(...), 'reid': ..., 'joint': ..., 'pretrain': ...}."""
        return {name: getattr(self, name) for name in SECTIONS}


# Section name -> its dataclass, in `ExperimentConfig`'s order.
SECTIONS: dict[str, type] = {
    field.name: typing.get_type_hints(ExperimentConfig)[field.name]
    for field in dataclasses.fields(ExperimentConfig)}

_SYNTHETIC = ExperimentConfig(
    # ~537 steps of 8 images (2.0.0's 1,227 training images). The ResNet-50 starts from this
    # run's attribute pretraining (no ImageNet here) and C1 up to the shared stage stay as
    # pretrained: at an equal reduced budget that tripled detection AP (0.17 -> 0.55) and
    # quadrupled J3's ground-truth-box search mAP (0.04 -> 0.16) against fine-tuning them
    # (experiments/README.md, "Keeping the pretrained trunk").
    detection=DetectionConfig(
        image_size=320, batch_size=8, epochs=3.5, base_learning_rate=0.02, warmup_epochs=0.15,
        datasets='synthetic_person_search/default:1',
        validation='synthetic_person_search/default:gallery', validation_images=0,
        flip_prob=0.5, weights=PRETRAINED_WEIGHTS, freeze_shared_trunk=True,
        freeze_batch_norm=False, head_batch_norm=True, anchor_size=2.5,
        mixed_precision='auto', log_every=10, checkpoint_every=100, eval_every=250),
    # The default synthetic split has 400 training identities: 16 x 4 batches, 25 per epoch; 400
    # steps (more help: 300 -> 600 steps raised search mAP at gallery 100 from 0.48 to 0.54).
    # The replicated stages start as the pretrained ResNet-50's, not the detector's: detection
    # training keeps what tells people from background in C4-C5, not what tells them apart;
    # J3's ground-truth-box mAP rose from 0.09 to 0.19 (experiments/README.md, "The re-ID
    # branch's initial weights").
    reid=ReidConfig(
        datasets='synthetic_person_search/default', images_per_shard=200,
        identities_per_batch=16, samples_per_identity=4, semi_hard_epochs=8.0, hard_epochs=8.0,
        learning_rate=3e-4, validation='synthetic_person_search/default',
        mixed_precision='auto', log_every=10, checkpoint_every=50, eval_every=0,
        initial_weights=PRETRAINED_WEIGHTS),
    # 4 x 2 = 8 images of 320 px, the synthetic stage-1 batch; a tenth of its rate.
    joint=JointConfig(
        steps=200, identities_per_batch=4, images_per_identity=2, learning_rate=2e-3,
        warmup_steps=10, validation='synthetic_person_search/default', log_every=10,
        checkpoint_every=50),
    # 1,500 steps of 64 crops with the attribute heads on C2-C4 too: after 300 steps without
    # them J3's C3 told people apart no better than a random trunk's; after these it searches
    # at GT-box mAP 0.18 before any re-ID training, and J3 after stage 2 at 0.43 instead of 0.19
    # (experiments/README.md, "The re-ID branch's initial weights, and a pretraining that
    # reaches the shared stages").
    pretrain=PretrainConfig(steps=1500, stage_heads=True))

PRESETS: dict[str, ExperimentConfig] = {
    'paper': ExperimentConfig(
        # The Model Garden's RetinaNet layout and anchors, so that its COCO checkpoint loads
        # whole (--init_checkpoint; docs/choices.md#coco-initialisation).
        detection=DetectionConfig(weights='none', layout='garden', head_batch_norm=True,
                                  aspect_ratios='2,1,0.5'),
        reid=ReidConfig(),
        # 5 x 2 = 10 images of 640 px: the paper's detection batch; a tenth of stage 1's rate.
        joint=JointConfig(),
        pretrain=PretrainConfig()),   # unused: the paper's detector starts from COCO weights
    'synthetic': _SYNTHETIC,
    # `tiny`: the synthetic preset on `synthetic_person_search/tiny` with a few steps of
    # everything, one switch (`--preset=tiny`) for a smoke run of the whole pipeline in a few
    # minutes.
    'tiny': ExperimentConfig(
        detection=dataclasses.replace(
            _SYNTHETIC.detection, image_size=64, batch_size=2, epochs=0.5, warmup_epochs=0.5,
            datasets='synthetic_person_search/tiny:1',
            validation='synthetic_person_search/tiny:gallery', mixed_precision='float32',
            log_every=1, checkpoint_every=10, eval_every=0),
        reid=dataclasses.replace(
            _SYNTHETIC.reid, datasets='synthetic_person_search/tiny', images_per_shard=4,
            pooling_batch_size=4, embedding_dim=8, identities_per_batch=2,
            samples_per_identity=2, semi_hard_epochs=1, hard_epochs=1, steps_per_epoch=1,
            validation='synthetic_person_search/tiny', mixed_precision='float32', log_every=1),
        joint=dataclasses.replace(
            _SYNTHETIC.joint, steps=2, identities_per_batch=2, warmup_steps=1,
            validation='synthetic_person_search/tiny', log_every=1, checkpoint_every=1),
        pretrain=PretrainConfig(
            dataset='synthetic_attributes/tiny', batch_size=8, steps=4, warmup_steps=1,
            mixed_precision='float32', log_every=1, checkpoint_every=2, stage_heads=True)),
}


def resolve(preset: str, file_settings: Mapping[str, Mapping[str, Any]] | None = None,
            overrides: Mapping[str, Mapping[str, Any]] | None = None) -> ExperimentConfig:
    """The experiment's settings: the preset, then `file_settings` (a settings file's sections,
    `read_settings_file`), then `overrides` (the command line's), each `{section: {field:
    value}}` with any subset of sections and fields; None values are ignored.

    Raises:
        ValueError: unknown preset, section or field (named).
    """
    if preset not in PRESETS:
        raise ValueError(f'unknown preset {preset!r}; choose one of {sorted(PRESETS)}')
    config = PRESETS[preset]
    for layer in (file_settings or {}, overrides or {}):
        unknown = sorted(set(layer) - set(SECTIONS))
        if unknown:
            raise ValueError(f'unknown section(s) {unknown}; the sections are {list(SECTIONS)}')
        changes = {}
        for section, values in layer.items():
            current = getattr(config, section)
            names = {f.name for f in dataclasses.fields(current)}
            unknown = sorted(set(values) - names)
            if unknown:
                raise ValueError(f'unknown {section} ({type(current).__name__}) settings '
                                 f'{unknown}')
            changes[section] = dataclasses.replace(
                current, **{name: value for name, value in values.items() if value is not None})
        config = dataclasses.replace(config, **changes)
    return config


# ----------------------------------------------------------------------------- names

def flag_name(section: str, name: str) -> str:
    """The `train.py` flag of a setting: the field's name for stage 1 (`epochs`), qualified by
    its section for the others (`reid.margin`, `joint.steps`, `pretrain.steps`)."""
    return name if section == 'detection' else f'{section}.{name}'


# The fields that carried their section's name as a prefix before the sections (`reid_seed`,
# `joint_steps`, `pretrain_steps`): section -> {former name: name}. Settings files and flags
# with a former name are refused with the new one; saved run configs are read with either.
_PREFIXED = {
    'reid': ('datasets', 'split', 'epoch_unit', 'steps_per_epoch', 'learning_rate', 'schedule',
             'warmup_epochs', 'flip', 'freeze_batch_norm', 'mixed_precision', 'validation',
             'log_every', 'checkpoint_every', 'eval_every', 'seed'),
    'joint': ('steps', 'identities_per_batch', 'images_per_identity', 'reid_weight', 'optimizer',
              'learning_rate', 'warmup_steps', 'momentum', 'weight_decay', 'flip_prob',
              'validation', 'log_every', 'checkpoint_every', 'seed'),
    'pretrain': ('dataset', 'batch_size', 'steps', 'learning_rate', 'warmup_steps',
                 'mixed_precision', 'log_every', 'checkpoint_every', 'seed'),
}
# Renamed for what they came to mean: `disjoint_weights` initialises J2/J3/J4's branch too.
_RENAMED = {'reid': {'disjoint_weights': 'initial_weights'}}
RENAMED_SETTINGS: dict[str, dict[str, str]] = {
    section: {f'{section}_{name}': name for name in names} | _RENAMED.get(section, {})
    for section, names in _PREFIXED.items()}


def _former_flags() -> dict[str, str]:
    former = {}
    for section, config_class in SECTIONS.items():
        if section == 'detection':
            continue
        prefixed = _PREFIXED.get(section, ())
        for field in dataclasses.fields(config_class):
            name = f'{section}_{field.name}' if field.name in prefixed else field.name
            former[name] = flag_name(section, field.name)
        for old, new in _RENAMED.get(section, {}).items():
            former.pop(new, None)   # never a flag under that name
            former[old] = former[flag_name(section, old)] = flag_name(section, new)
    return former


# Former `train.py` flag -> its flag now (names without dashes): every setting of the sections
# other than stage 1 was a flag named as its field (`--reid_seed`, `--joint_steps`, `--margin`).
FORMER_FLAGS: dict[str, str] = _former_flags()


def with_current_names(content: Mapping[str, Any], section: str) -> dict[str, Any]:
    """A saved config's keys (a run's `config.json`) with the section's former names
    (`reid_datasets`, ...) read as the current ones; a current name present wins."""
    renamed = RENAMED_SETTINGS.get(section, {})
    current = {key: value for key, value in content.items() if key not in renamed}
    for key, value in content.items():
        if key in renamed:
            current.setdefault(renamed[key], value)
    return current


# ------------------------------------------------------------------------------ descriptions

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


def preset_values(section: str, name: str) -> str:
    """'paper: 32, synthetic: 16, tiny: 2': a section's field in every preset, for the help."""
    return ', '.join(f'{preset}: {getattr(getattr(config, section), name)!r}'
                     for preset, config in sorted(PRESETS.items()))


# ----------------------------------------------------------------------------- settings files

def read_settings_file(path: str) -> dict[str, dict[str, Any]]:
    """The settings of a JSON file for `train.py --config_file`: one object per stage section
    (`SECTIONS`: 'detection', 'reid', 'joint', 'pretrain'), each mapping setting names to values,
    e.g. `{"detection": {"image_size": 512, "weights": "pretrained"}, "reid": {"margin": 0.3}}`.
    The names are the fields' (`"reid": {"seed": 1}` is the flag `--reid.seed=1`); a file holds
    any subset. Command-line flags override the file, and the file overrides the preset. Keys
    starting with '_' are notes, ignored (`write_settings` records the preset as `_preset`).

    Raises:
        ValueError: the file is missing or not JSON, or has an unknown section or setting (a
            former name, `"reid": {"reid_seed": 1}`, is named with the current one) or a value of
            the wrong type; the message names the file and the entry.
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
                raise ValueError(f'settings file {path}: {_unknown_setting(section, name)}')
            if not _has_type(value, hints[name]):
                raise ValueError(f'settings file {path}: {section}.{name} must be a '
                                 f'{hints[name].__name__}, got {value!r}')
        settings[section] = {name: (float(value) if hints[name] is float else value)
                             for name, value in values.items()}
    return settings


def _unknown_setting(section: str, name: str) -> str:
    """What is wrong with a settings file's `section.name` that is no field of the section: a
    former name (named with the current one), another section's setting, or nothing known."""
    if name in RENAMED_SETTINGS.get(section, {}):
        return (f'{section}.{name} is now {section}.{RENAMED_SETTINGS[section][name]} (the '
                f'settings of a section are named without the section\'s prefix)')
    meant = [f'{other}.{RENAMED_SETTINGS.get(other, {}).get(name, name)}'
             for other, config_class in SECTIONS.items() if other != section
             and RENAMED_SETTINGS.get(other, {}).get(name, name) in
             {f.name for f in dataclasses.fields(config_class)}]
    hint = f' (did you mean {" or ".join(meant)}?)' if meant else ''
    return f'{section}.{name} is not a {SECTIONS[section].__name__} setting{hint}'


def _has_type(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def write_settings(path: str, config: ExperimentConfig, preset: str) -> None:
    """Writes the resolved experiment as one JSON file a later `--config_file` reads back:
    `{"_preset": ..., "detection": {...}, "reid": {...}, "joint": {...}, "pretrain": {...}}`
    (the preset it started from is a note for the reader)."""
    atomic.write_json(path, {'_preset': preset, **dataclasses.asdict(config)})
