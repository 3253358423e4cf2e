"""Models: the shared ResNet-50 trunk, the RetinaNet detection branch and the re-ID branch, the
joint model and the disjoint baseline; `factory.py` builds them from a config, `stage2.py` picks
the network stage 2 trains per variant, and `loading.py` restores trained ones from a run
directory (what evaluation, export and search use instead of training code)."""
