#!/usr/bin/env bash
# Set-up and the main job on an embedded default, on a fresh machine (Python 3.11 + pip).
#
#   ./run.sh              the demo: .venv with the pinned requirements, then a face photo every install has
#                         (matplotlib's sample photo) is moved by the bundled positive and surprise AU matrices
#                         through the per-AU motion primitives (docs/motion.md; --motion none: the bundled
#                         generator alone); frames, mp4, GIF, side-by-side and AU curves land under results/demo/
#                         (a few seconds on 2 cores).
#                         Extra arguments go to python -m tools.demo (e.g. --template my_face.jpg).
#   ./run.sh train [...]  the training check: a synthetic cartoon-face dataset whose AU labels are true by
#                         construction, a short CPU training run under results/ckpts/<run>/, then test mode on a
#                         held-out synthetic face under results/sequences/<run>/. Extra arguments go to the
#                         training command (e.g. ./run.sh train --niter 5).
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt

if [ "${1:-}" != "train" ]; then
    .venv/bin/python -m tools.demo --out results/demo "$@"
    echo "Done: results/demo/overview.png, results/demo/{positive,surprise}/ (frames/, target.mp4, compare.mp4,"
    echo "      target.gif, au_curves.png)."
    exit 0
fi
shift

data=results/synthetic_faces
if [ ! -d "$data/imgs" ]; then
    .venv/bin/python -m data.synthetic "$data" --n 240 --size 64
fi
run="demo_$(date +%y%m%d_%H%M%S)"
.venv/bin/python main.py --mode train --data_root "$data" --ckpt_dir results/ckpts --name "$run" --gpu_ids -1 \
    --final_size 64 --ngf 32 --ndf 32 --n_blocks 3 --batch_size 16 --niter 2 --niter_decay 1 \
    --train_gen_iter 2 --print_losses_freq 320 --sample_img_freq 640 "$@"
template="$data/imgs/$(head -n 1 "results/ckpts/$run/test_ids.txt").jpg"  # a face the model never trained on
# --motion none: a cartoon face has no landmarks to move; the generator alone animates it (the seeds' way).
.venv/bin/python main.py --mode test --motion none --ckpt "results/ckpts/$run" --gpu_ids -1 --aus_matrix \
    examples/au_matrices/positive.csv --template "$template" --fps 30 --output_size 128 \
    --results_dir "results/sequences/$run"
echo "Done: training run in results/ckpts/$run (samples/, stats.jsonl, log.txt, epoch_*.pth),"
echo "      generated sequence in results/sequences/$run/ (target.mp4, compare.mp4, target.gif, au_curves.png)."
