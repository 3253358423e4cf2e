"""ps_tf: end-to-end person search (RetinaNet detection + re-identification) in TensorFlow 2.

Layers, lowest first. A module imports only from its own layer or the layers below it, so the
data flow reads one way (tests/test_layers.py fails when an import breaks this):

    foundation    ps_tf.config, ps_tf.precision, ps_tf.atomic, ps_tf.schedules, ps_tf.quiet,
                  ps_tf.graph_cost, ps_tf.ops (image and box geometry, anchors)
    data          ps_tf.data: TFDS examples -> model inputs; pooled-feature records
                  (ps_tf.data.pooled). Datasets themselves are built by tfds_builders/, which
                  imports nothing from ps_tf.
    models        ps_tf.models: the networks, built from a config (factory), the stage-2 network
                  per variant (stage2) and trained models restored from disk (loading)
    losses        ps_tf.losses: focal, smooth-L1, the triplet losses
    applications  ps_tf.evaluation, ps_tf.serving, ps_tf.export, ps_tf.serving_client,
                  ps_tf.search, ps_tf.app (the operator web app over ps_tf.search),
                  ps_tf.visualization: they use models, never training
    training      ps_tf.training: the training stages
    commands      ps_tf.commands: the command-line programs (ps-train, ps-evaluate, ps-search,
                  ps-search-app, ps-export, ps-serving-client; train.py, evaluate.py, search.py,
                  search_app.py and export/ run them from a checkout)

Nothing imports ps_tf.training except the training command (ps_tf.commands.train); the other
commands load models through ps_tf.models.loading.
"""

__version__ = '0.1.0'
