"""Held-out numbers of the model card (pretrained/MODEL_CARD.md), on the test split of the pre-training root.

    python -m tools.evaluate_heldout --data datasets/pretrain_128 \
        --ckpt pretrained/ganimation_cpu_small.pth [--train_ckpt runs/ganimation_cpu_small/latest.pth] \
        [--fp32_ckpt FILE] [--out docs/small_cpu_model/heldout_eval.json]

1. Identity / reconstruction: G(x, AUs of x) against x, mean absolute difference in 0..255 levels.
2. AU transfer: every held-out face driven to the AUs of another held-out face (a fixed random pairing); the
   built-in estimator re-measures the generated face (enlarged to 256 px). MAE (raw 0..5) against the target, per
   AU and overall, next to doing nothing: the face generated with its own AUs (same generator, same blur), and the
   input itself, re-measured the same way against the target; and the estimator on the inputs at this size
   against their labels (which were measured on the full-size photos).
3. With --train_ckpt (the training checkpoint, which has the critic): the critic's AU head on the held-out real
   faces, MAE against their labels, next to predicting the training mean.
4. With --fp32_ckpt: the largest difference between fp32 and the shipped weights' frames (0..255 levels).
5. With --identity: dlib's 128-d face descriptor distance (metrics/identity.py, same-person below 0.6) between each
   input face and its AU transfer, its reconstruction, and (the scale of "another person") the face whose AUs
   drove it. Faces are enlarged to 256 px first, as for the AUs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from checkpoints import read
from data.au_table import load_au_table
from data.id_lists import read_id_list
from media.images import load_rgb
from models.model_registry import build_networks
from solvers.tester import SequenceGenerator
from tools.au_grid import measure_generated

REPORTED = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU12", "AU15", "AU20", "AU26")


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return round(float(np.nanmean(np.abs(a - b))), 3)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--train_ckpt", type=Path, default=None)
    p.add_argument("--fp32_ckpt", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--identity", action="store_true", help="also the dlib identity distances (section 5)")
    args = p.parse_args(argv)

    model = SequenceGenerator(args.ckpt, torch.device("cpu"), batch_size=64)
    schema, size = model.schema, model.image_size
    names = read_id_list(args.data / "test_ids.txt")
    table = load_au_table(args.data / "aus.csv", schema)
    own = np.stack([table[n] for n in names])
    imgs = torch.stack([torch.from_numpy(load_rgb(args.data / "imgs" / f"{n}.png", size)).permute(2, 0, 1)
                        for n in names]).float().div(127.5).sub(1)
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(names))
    perm = np.where(perm == np.arange(len(names)), np.roll(perm, 1), perm)  # nobody drives itself
    targets = own[perm]

    def run(generator_model, aus):
        out = []
        with torch.inference_mode():
            for s in range(0, len(names), 64):
                cond = torch.from_numpy(schema.to_network(aus[s:s + 64]))
                out.append(generator_model.generator(imgs[s:s + 64], cond)[0].clamp(-1, 1))
        return ((torch.cat(out) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()

    inputs = ((imgs + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    recon = run(model, own)
    driven = run(model, targets)
    measured = measure_generated(driven, schema)
    measured_inputs = measure_generated(inputs, schema)  # the estimator on the 64/128 px inputs themselves
    measured_recon = measure_generated(recon, schema)  # "do nothing" through the same generator (same blur)
    idx = [schema.index(a) for a in REPORTED]
    record = {
        "checkpoint": str(args.ckpt), "data": str(args.data), "held_out_faces": len(names),
        "image_size": size,
        "reconstruction_mean_abs_levels": round(float(np.abs(recon.astype(float) - inputs).mean()), 2),
        "transfer_change_mean_abs_levels": round(float(np.abs(driven.astype(float) - inputs).mean()), 2),
        "au_transfer": {
            "faces_not_found": int(np.isnan(measured[:, 0]).sum()),
            "mae_generated_vs_target_all17": _mae(measured, targets),
            "mae_reconstruction_vs_target_all17 (do nothing)": _mae(measured_recon, targets),
            "mae_input_vs_target_all17 (do nothing, no generator)": _mae(measured_inputs, targets),
            "mae_input_vs_own_label_all17 (estimator at this size vs labels)": _mae(measured_inputs, own),
            "per_au": {a: {"generated_vs_target": _mae(measured[:, j], targets[:, j]),
                           "reconstruction_vs_target": _mae(measured_recon[:, j], targets[:, j]),
                           "input_vs_target": _mae(measured_inputs[:, j], targets[:, j]),
                           "input_vs_own_label": _mae(measured_inputs[:, j], own[:, j]),
                           "r_generated_target": round(float(np.corrcoef(
                               np.nan_to_num(measured[:, j]), targets[:, j])[0, 1]), 3)
                           if targets[:, j].std() > 0 else None}
                       for a, j in zip(REPORTED, idx)},
        },
    }
    if args.train_ckpt is not None:
        state = read(args.train_ckpt).state
        _, critic = build_networks(state["model"])
        critic.load_state_dict(state["D"])
        critic.eval()
        with torch.inference_mode():
            pred = torch.cat([critic(imgs[s:s + 64])[1] for s in range(0, len(names), 64)]).numpy() * 5
        train_names = read_id_list(args.data / "train_ids.txt")
        mean = np.mean([table[n] for n in train_names], axis=0)
        record["critic_au_head"] = {
            "mae_all17": _mae(pred, own), "mae_predicting_train_mean": _mae(mean[None], own),
            "per_au": {a: {"critic": _mae(pred[:, j], own[:, j]), "train_mean": _mae(mean[j], own[:, j])}
                       for a, j in zip(REPORTED, idx)}}
    if args.fp32_ckpt is not None:
        ref = SequenceGenerator(args.fp32_ckpt, torch.device("cpu"), batch_size=64)
        diff = np.abs(run(ref, targets).astype(int) - driven.astype(int))
        record["fp16_vs_fp32"] = {"max_levels": int(diff.max()), "mean_levels": round(float(diff.mean()), 4),
                                  "fraction_differing": round(float((diff > 0).mean()), 5)}
    if args.identity:
        record["identity"] = identity_distances(inputs, driven, recon, perm)
    text = json.dumps(record, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


def identity_distances(inputs: np.ndarray, driven: np.ndarray, recon: np.ndarray, perm: np.ndarray) -> dict:
    from media.frames import resize_frames
    from metrics.analysis import detect, shared_tools
    from metrics.identity import SAME_PERSON_THRESHOLD

    tools = shared_tools()

    def descriptors(frames: np.ndarray) -> np.ndarray:
        frames = resize_frames(frames, 256) if frames.shape[1] < 256 else frames
        found = [detect(f, tools) for f in frames]
        return np.stack([f.descriptor if f is not None and f.descriptor is not None else np.full(128, np.nan)
                         for f in found])

    src, gen, rec = descriptors(inputs), descriptors(driven), descriptors(recon)

    def summary(a: np.ndarray, b: np.ndarray) -> dict:
        d = np.linalg.norm(a - b, axis=1)
        d = d[np.isfinite(d)]
        same = float((d < SAME_PERSON_THRESHOLD).mean())
        return {"mean": round(float(d.mean()), 3), "same_person_rate": round(same, 3), "pairs": int(d.size)}

    return {"threshold": SAME_PERSON_THRESHOLD, "input_vs_transfer": summary(src, gen),
            "input_vs_reconstruction": summary(src, rec),
            "input_vs_driving_face (another person)": summary(src, src[perm])}


if __name__ == "__main__":
    sys.exit(main())
