#!/usr/bin/env bash
# The main job, from a fresh clone: set up .venv (once) and run ps_tf end to end on the embedded
# synthetic person-search dataset (no download): build and preview the data, pretrain the
# ResNet-50 on drawn clothing attributes (the stand-in for ImageNet), train the detector
# (stage 1), pool features and train the re-ID branch (stage 2), print the search mAP and top-1 on
# the synthetic test split, export a SavedModel and search a query person in a folder of images
# and in a video. Outputs land in runs/demo/; rerunning resumes the training.
set -euo pipefail
cd "$(dirname "$0")"

# Python 3.11: $PYTHON, python3.11 on PATH, uv's, or python3 (else how to get one: docs/python311.md).
. .ci/find_python311.sh
PYTHON=$(find_python311) || exit 1
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e .

OUT=runs/demo
mkdir -p "$OUT"
echo "== synthetic dataset: build synthetic_person_search/default and preview it"
.venv/bin/python preview.py --dataset=synthetic_person_search/default --split=train \
    --num_images=12 --output="$OUT/preview_train.png"
.venv/bin/python preview.py --dataset=synthetic_person_search/default --split=query \
    --num_images=8 --output="$OUT/preview_query.png"
echo "previews: $OUT/preview_train.png, $OUT/preview_query.png"

echo "== training: backbone pretraining -> detection -> pooled features -> re-ID -> search metrics (synthetic preset)"
.venv/bin/python train.py --preset=synthetic --model_dir="$OUT/model"

echo "== export: SavedModel for TF Serving (reloaded in a fresh process and checked)"
.venv/bin/python make_search_demo.py --output_dir="$OUT/files"
rm -rf "$OUT/exported"
.venv/bin/python export/export_saved_model.py --checkpoint="$OUT/model" \
    --export_dir="$OUT/exported" --test_images="$OUT/files/query.jpg"

echo "== search: the query person in a folder of images, then in a video (1 frame per second)"
BOX=$(.venv/bin/python -c 'import json, sys; print(",".join(str(v) for v in json.load(open(sys.argv[1]))["box"]))' "$OUT/files/query.json")
.venv/bin/python search.py --model="$OUT/exported" --query_image="$OUT/files/query.jpg" \
    --query_box="$BOX" --gallery="$OUT/files/gallery" --output_dir="$OUT/search_folder" --top_k=8
.venv/bin/python search.py --model="$OUT/exported" --query_image="$OUT/files/query.jpg" \
    --query_box="$BOX" --gallery="$OUT/files/gallery.mp4" --fps=1 \
    --output_dir="$OUT/search_video" --top_k=8
echo "done: model, TensorBoard logs and results.json in $OUT/model (tensorboard --logdir=$OUT/model);"
echo "      SavedModel in $OUT/exported/1; hits.json and contact_sheet.png in $OUT/search_folder"
echo "      and $OUT/search_video"
