#!/usr/bin/env bash
# The main job, from a fresh clone: set up .venv (once) and run ps_tf on the embedded synthetic
# person-search dataset (no download). Outputs land in runs/demo/.
#
# Today the job builds the synthetic dataset and writes a preview of it; the training issues
# extend it to the full pipeline (train -> evaluate -> export -> search) with the same command.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null || {
    echo "ps_tf needs Python 3.11 (TensorFlow 2.15); set PYTHON=/path/to/python3.11" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e .

OUT=runs/demo
mkdir -p "$OUT"
echo "== 1/1 synthetic dataset: build synthetic_person_search/default and preview it"
.venv/bin/python preview.py --dataset=synthetic_person_search/default --split=train \
    --num_images=12 --output="$OUT/preview_train.png"
.venv/bin/python preview.py --dataset=synthetic_person_search/default --split=query \
    --num_images=8 --output="$OUT/preview_query.png"
echo "done: see $OUT/preview_train.png and $OUT/preview_query.png"
