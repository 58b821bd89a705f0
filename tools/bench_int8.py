"""The generator on CPU in static INT8 (ONNX Runtime, per-channel weights) against fp32, measured.

    python -m tools.bench_int8 [RUN_OR_CKPT] [--calib_faces DIR] [--batch 32] [--runs 3] [--threads 2] [--json PATH]

Exports the generator as ``tools.export_onnx`` does (test mode's computation, fp32), quantises it with ONNX Runtime's
static quantiser (QDQ format, int8 weights per output channel, uint8 activations calibrated on ``--calib_faces``:
face images resized to the model's size, each with a fixed pseudo-random AU vector, or without it the export's
synthetic probe faces) and times, interleaved, PyTorch fp32 eager, ONNX Runtime fp32 and ONNX Runtime int8 on one
batch (median of ``--runs`` after a warm-up, ``--reps`` rounds). It also reports how far the int8 frames are from the
fp32 ones (0..255 levels) on the calibration faces. One JSON object on stdout.

This is a measurement, not a generation path: test mode has no int8 option (docs/benchmarks.md says why).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from catalog.au_schema import SCHEMAS
from checkpoints import BUNDLED_CHECKPOINT
from media.images import list_images, load_rgb
from tools.export_onnx import (
    FrameGenerator,
    _require_onnx,
    benchmark,
    export_graph,
    io_names,
    load_generator,
    probe_inputs,
)

AU_RANGE = (0.0, 3.0)  # calibration AU intensities: the range test mode drives micro-expressions with


def calibration_inputs(model_args: dict, faces: Path | None, seed: int = 0) -> dict[str, np.ndarray]:
    """(image, aus) for calibration and the accuracy check: the faces in ``faces`` (every image in the tree, sorted,
    resized to the model's size), or the export's synthetic probe."""
    names = io_names(model_args)[0]  # image, aus (and N2ME's source_aus)
    if faces is None:
        probe = probe_inputs(model_args)
        return {name: probe[name] for name in names}
    size = model_args["discriminator"]["final_size"]
    paths = sorted(p for folder in [faces, *sorted(d for d in faces.rglob("*") if d.is_dir())]
                   for p in list_images(folder).values())
    if not paths:
        raise FileNotFoundError(f"--calib_faces {faces}: no images found")
    images = []
    for path in paths:
        rgb = load_rgb(path)
        if rgb.shape[:2] != (size, size):
            from PIL import Image

            rgb = np.asarray(Image.fromarray(rgb).resize((size, size), Image.BICUBIC))
        images.append(rgb.transpose(2, 0, 1).astype(np.float32) / np.float32(127.5) - np.float32(1.0))
    rng = np.random.default_rng(seed)
    count = SCHEMAS[model_args["aus_schema"]].n
    out = {"image": np.stack(images), "aus": rng.uniform(*AU_RANGE, (len(images), count)).astype(np.float32)}
    if "source_aus" in names:
        out["source_aus"] = rng.uniform(*AU_RANGE, (len(images), count)).astype(np.float32)
    return out


def quantise(fp32: Path, out: Path, inputs: dict[str, np.ndarray], batch: int = 4) -> None:
    """Static INT8: QDQ, per-channel int8 weights, uint8 activations from ``inputs`` (MinMax calibration)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.start = 0

        def get_next(self):
            if self.start >= len(inputs["image"]):
                return None
            chunk = {k: v[self.start:self.start + batch] for k, v in inputs.items()}
            self.start += batch
            return chunk

    prepared = out.with_name(out.stem + "_prepared.onnx")
    quant_pre_process(str(fp32), str(prepared))
    quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def _count_ops(path: Path, op: str) -> int:
    import onnx

    return sum(node.op_type == op for node in onnx.load(str(path)).graph.node)


def measure(source: Path, calib_faces: Path | None = None, batch: int = 32, runs: int = 3, reps: int = 2,
            threads: int | None = None) -> dict:
    _, onnxruntime = _require_onnx()
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    path, state, generator = load_generator(source)
    model_args = state["model"]
    model = FrameGenerator(generator, model_args).eval()
    inputs = calibration_inputs(model_args, calib_faces)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "g.onnx", Path(tmp) / "g_int8.onnx"
        export_graph(model, model_args, fp32, 17, "torchscript")
        quantise(fp32, int8, inputs)
        quantised_ops = _count_ops(int8, "QuantizeLinear")
        sessions = {name: onnxruntime.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
                    for name, p in (("ort_fp32", fp32), ("ort_int8", int8))}
        reps_needed = -(-batch // len(inputs["image"]))
        feed = {k: np.ascontiguousarray(np.concatenate([v] * reps_needed)[:batch]) for k, v in inputs.items()}
        tensors = [torch.from_numpy(feed[name]) for name in io_names(model_args)[0]]

        def torch_run():
            with torch.inference_mode():
                model(*tensors)

        runners = {"torch_fp32": torch_run, **{n: (lambda s=s: s.run(None, feed)) for n, s in sessions.items()}}
        rounds = [{name: round(batch / benchmark(fn, runs), 2) for name, fn in runners.items()}
                  for _ in range(reps)]
        check = {k: np.ascontiguousarray(v) for k, v in inputs.items()}
        ref = sessions["ort_fp32"].run(["frames"], check)[0].astype(np.int16)
        got = sessions["ort_int8"].run(["frames"], check)[0].astype(np.int16)
    best = {name: max(r[name] for r in rounds) for name in runners}
    return {"checkpoint": str(path), "model": model_args, "threads": threads, "batch": batch, "runs": runs,
            "rounds": rounds, "best_frames_per_s": best,
            "int8_speedup_over_torch_fp32": round(best["ort_int8"] / best["torch_fp32"], 2),
            "int8_speedup_over_ort_fp32": round(best["ort_int8"] / best["ort_fp32"], 2),
            "int8_vs_fp32_frames_levels": {"max": int(np.abs(got - ref).max()),
                                           "mean": round(float(np.abs(got - ref).mean()), 3)},
            "quantize_linear_ops": quantised_ops,
            "calibration": str(calib_faces) if calib_faces else "synthetic probe faces (tools.export_onnx)",
            "calibration_images": int(len(inputs["image"])),
            "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__}}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m tools.bench_int8", description=__doc__.split("\n\n")[0])
    p.add_argument("source", type=Path, nargs="?", default=None, help="run folder or checkpoint (default: bundled)")
    p.add_argument("--calib_faces", type=Path, default=None, help="a tree of face images for calibration")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--runs", type=int, default=3, help="timed runs per backend and round (median)")
    p.add_argument("--reps", type=int, default=2, help="interleaved rounds over the three backends")
    p.add_argument("--threads", type=int, default=None, help="torch and ORT intra-op threads")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    source = args.source if args.source is not None else BUNDLED_CHECKPOINT
    result = measure(source, args.calib_faces, args.batch, args.runs, args.reps, args.threads)
    result["command"] = " ".join(["python -m tools.bench_int8", *(sys.argv[1:] if argv is None else argv)])
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
