"""In-domain and held-out-domain search of trained models, with detections and with ground-truth
boxes: the table issue 17 asks for (mechanism x variant x boxes x domain).

    python experiments/transfer_table.py --models=scratch=runs/r_scratch,pretrained=runs/r_pre \
        --output=runs/transfer.json

For each model directory (a `train.py` run, or a stage-2 directory) it runs `evaluate.py` four
times: `synthetic_person_search/default` and `synthetic_person_search/domain_b` (the style no
model trains on), each with the model's detections and with ground-truth gallery boxes, at gallery
100 (CUHK-SYSU's headline size). Finished evaluations (their JSON exists) are not run again.
It prints a markdown table: detection AP, search mAP and top-1 per domain and box source, and the
minutes the run's `results.json` records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from absl import app, flags

from ps_tf import atomic

DOMAINS = {'in-domain': 'synthetic_person_search/default',
           'domain_b': 'synthetic_person_search/domain_b'}
GALLERY_SIZE = 100
HERE = os.path.dirname(os.path.abspath(__file__))

flags.DEFINE_list('models', None, 'name=model_dir,...')
flags.DEFINE_string('output', None, 'Collected rows as JSON (the evaluations land beside it).')
flags.DEFINE_list('domains', list(DOMAINS), 'Which of in-domain, domain_b.')
FLAGS = flags.FLAGS


def _evaluate(model_dir: str, dataset: str, gt_boxes: bool, output_json: str) -> dict:
    if not os.path.exists(output_json):
        command = [sys.executable, os.path.join(HERE, '..', 'evaluate.py'), f'--dataset={dataset}',
                   f'--checkpoint={model_dir}', f'--gallery_sizes={GALLERY_SIZE}',
                   f'--output_json={output_json}']
        if gt_boxes:
            command.append('--use_gt_boxes')
        print('$', ' '.join(command), flush=True)
        subprocess.run(command, check=True)
    with open(output_json) as stream:
        return json.load(stream)['results'][0]


def main(argv):
    del argv
    if not FLAGS.models or not FLAGS.output:
        raise app.UsageError('--models and --output are required')
    root = os.path.splitext(FLAGS.output)[0]
    os.makedirs(root, exist_ok=True)
    rows = []
    for item in FLAGS.models:
        name, _, model_dir = item.partition('=')
        results_path = os.path.join(model_dir, 'results.json')
        minutes = None
        if os.path.exists(results_path):
            with open(results_path) as stream:
                minutes = json.load(stream).get('total_minutes')
        for domain in FLAGS.domains:
            for gt_boxes in (False, True):
                boxes = 'GT boxes' if gt_boxes else 'detections'
                path = os.path.join(root, f'{name}_{domain}_{"gt" if gt_boxes else "det"}.json')
                row = _evaluate(model_dir, DOMAINS[domain], gt_boxes, path)
                rows.append({'model': name, 'domain': domain, 'boxes': boxes,
                             'mAP': row['mAP'], 'top1': row['top1'], 'det_ap': row['det_ap'],
                             'minutes': minutes})
    atomic.write_json(FLAGS.output, rows, sort_keys=False)
    print('| model | domain | boxes | detection AP | search mAP | top-1 | run minutes |')
    print('|---|---|---|---|---|---|---|')
    for row in rows:
        det_ap = f'{row["det_ap"]:.3f}' if row['boxes'] == 'detections' else '–'
        minutes = f'{row["minutes"]:.1f}' if row['minutes'] else '–'
        print(f'| {row["model"]} | {row["domain"]} | {row["boxes"]} | {det_ap} | '
              f'{row["mAP"]:.3f} | {row["top1"]:.3f} | {minutes} |')


if __name__ == '__main__':
    app.run(main)
