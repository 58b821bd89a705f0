#!/usr/bin/env bash
# Set-up and the main job on an embedded default, on a fresh machine (Python 3.11 + pip):
#   1. a virtual environment .venv with the pinned requirements;
#   2. a synthetic cartoon-face dataset whose AU labels are true by construction (data/synthetic.py);
#   3. a short CPU training run of the GANimation model on it, with sample grids, stats and checkpoints
#      under results/ckpts/<run>/;
#   4. test mode: the trained generator turns a held-out synthetic face into a sequence driven by the bundled
#      positive AU matrix (frames, mp4, GIF, side-by-side, AU curves) under results/sequences/.
# Extra arguments go to the training command (e.g. ./run.sh --niter 5 to train longer).
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt

data=results/synthetic_faces
if [ ! -d "$data/imgs" ]; then
    .venv/bin/python -m data.synthetic "$data" --n 240 --size 64
fi
run="demo_$(date +%y%m%d_%H%M%S)"
.venv/bin/python main.py --mode train --data_root "$data" --ckpt_dir results/ckpts --name "$run" --gpu_ids -1 \
    --final_size 64 --ngf 32 --ndf 32 --n_blocks 3 --batch_size 16 --niter 2 --niter_decay 1 \
    --train_gen_iter 2 --print_losses_freq 320 --sample_img_freq 640 "$@"
template="$data/imgs/$(head -n 1 "results/ckpts/$run/test_ids.txt").jpg"  # a face the model never trained on
.venv/bin/python main.py --mode test --ckpt "results/ckpts/$run" --gpu_ids -1 --aus_matrix \
    examples/au_matrices/positive.csv --template "$template" --fps 30 --output_size 128 \
    --results_dir "results/sequences/$run"
echo "Done: training run in results/ckpts/$run (samples/, stats.jsonl, log.txt, epoch_*.pth),"
echo "      generated sequence in results/sequences/$run/ (target.mp4, compare.mp4, target.gif, au_curves.png)."
