"""Export a checkpoint's generator to ONNX and check that ONNX Runtime gives the frames test mode gives.

    python -m tools.export_onnx [RUN_OR_CKPT] --out G.onnx [--load_epoch N|latest] [--opset 17]
                                  [--tolerance 1] [--bench_runs 3] [--bench_batch 64] [--exporter torchscript]

RUN_OR_CKPT is read as ``--mode test`` reads it: a run folder (its latest checkpoint, or ``--load_epoch N``), a
checkpoint file, a generator-only export, or a seed's generator file (imported); without it, the bundled model
(pretrained/ganimation128_gpu15.pth). Both models export: ``ganimation`` and ``n2me_unet``.

The graph is test mode's computation from the network inputs to the written frames, in fp32, with a dynamic batch
axis and the model's fixed image size:

- inputs: ``image`` float32 (B, 3, S, S), the RGB face in [-1, 1] (pixel / 127.5 - 1); ``aus`` float32 (B, n), the
  target AU intensities on the raw 0..5 scale, in the schema's order (listed in the JSON); ``n2me_unet`` also takes
  ``source_aus`` (B, n), the input face's raw AUs, since it is driven by the AU change.
- outputs: ``frames`` uint8 (B, S, S, 3), exactly what test mode writes; ``result`` float32 (B, 3, S, S), the
  composed image before clamping and rounding; ``ganimation`` also ``attention`` float32 (B, 1, S, S), A in
  result = A * image + (1 - A) * colour (1 keeps the input pixel).

The check runs every time: a fixed probe (synthetic faces x AU vectors, deterministic) goes through ONNX Runtime
and through the PyTorch generator as ``SequenceGenerator`` calls it; the largest differences of the frames (0..255
levels) and of the float outputs are printed and recorded. Above ``--tolerance`` levels the command exits 1 and
writes no .onnx. On success it writes OUT and OUT.json (checkpoint SHA-256, opset, input/output names and shapes,
measured differences, and ORT vs PyTorch CPU frames/s on a batch of ``--bench_batch``, median of ``--bench_runs``).
The ONNX packages are optional: ``pip install onnx onnxruntime`` at the versions in requirements.txt.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from catalog.au_schema import SCHEMAS, AUSchema
from checkpoints import BUNDLED_CHECKPOINT, native
from checkpoints.seed_formats import FORMATS
from data.synthetic import DRIVEN_AUS, draw_face, random_aus
from models.model_registry import build_generator, conditioning
from tools.export_generator import _sha256, generator_state

DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1.0  # 0..255 grey levels
EXPORTERS = ("torchscript", "dynamo")
INSTALL_HINT = "pip install onnx==1.23.2 onnxruntime==1.31.1 (the versions in requirements.txt)"


class ExportError(Exception):
    """A failure the command reports in one line (exit 2)."""


class FrameGenerator(nn.Module):
    """Test mode's path from network inputs to frames: AU scaling and conditioning, G, clamp, 0..255, HWC."""

    def __init__(self, generator: nn.Module, model_args: dict):
        super().__init__()
        self.generator = generator
        self.max_intensity = float(SCHEMAS[model_args["aus_schema"]].max_intensity)
        self.difference = conditioning(model_args).kind == "difference"

    def forward(self, image: torch.Tensor, aus: torch.Tensor, source_aus: torch.Tensor | None = None):
        # AUSchema.to_network divides each vector by the maximum intensity; Conditioning subtracts the scaled ones.
        target = aus / self.max_intensity
        cond = target - source_aus / self.max_intensity if self.difference else target
        result, attention, _ = self.generator(image, cond)
        frames = ((result.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
        return (frames, result) if attention is None else (frames, result, attention)


def io_names(model_args: dict) -> tuple[list[str], list[str]]:
    difference = conditioning(model_args).kind == "difference"
    has_attention = model_args["name"] == "ganimation"
    return (["image", "aus"] + (["source_aus"] if difference else []),
            ["frames", "result"] + (["attention"] if has_attention else []))


def _require_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise ExportError(f"ONNX export needs the optional packages onnx and onnxruntime ({err}): "
                          f"{INSTALL_HINT}") from None
    return onnx, onnxruntime


def load_generator(source: Path, load_epoch="latest", ckpt_format: str = "auto") -> tuple[Path, dict, nn.Module]:
    """The checkpoint file, its state and its fp32 generator in eval mode, loaded as test mode loads them."""
    try:
        path, state = generator_state(source, load_epoch, ckpt_format)
        generator = build_generator(state["model"])
        native.load_state_strict(generator, state["G"], "generator", path)
    except (KeyError, TypeError, AttributeError) as err:  # a native-looking dict that lacks an entry
        raise ValueError(f"{source}: not a usable generator checkpoint ({err.__class__.__name__}: {err})") from None
    return path, state, generator.float().eval()


def probe_inputs(model_args: dict, faces: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """A fixed probe: ``faces`` synthetic cartoon faces x 4 AU vectors (neutral, all 5s, sparse, dense random)."""
    schema: AUSchema = SCHEMAS[model_args["aus_schema"]]
    size = model_args["discriminator"]["final_size"]
    rng = np.random.default_rng(seed)
    images, face_aus = [], []
    for _ in range(faces):
        own = random_aus(rng, schema)
        img = np.asarray(draw_face({k: float(own[schema.index(k)]) for k in DRIVEN_AUS}, size, rng), np.float32)
        images.append(img.transpose(2, 0, 1) / np.float32(127.5) - np.float32(1.0))  # SequenceGenerator.load_template
        face_aus.append(own)
    vectors = np.stack([np.zeros(schema.n), np.full(schema.n, schema.max_intensity), random_aus(rng, schema),
                        rng.uniform(0, schema.max_intensity, schema.n)])
    rows = [(f, v) for f in range(faces) for v in range(len(vectors))]
    return {"image": np.stack([images[f] for f, _ in rows]).astype(np.float32),
            "aus": np.stack([vectors[v] for _, v in rows]).astype(np.float32),
            "source_aus": np.stack([face_aus[f] for f, _ in rows]).astype(np.float32)}


@torch.inference_mode()
def torch_reference(generator: nn.Module, model_args: dict, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The generator called as ``SequenceGenerator.generate`` calls it (fp32, eager, CPU), frames converted alike."""
    schema: AUSchema = SCHEMAS[model_args["aus_schema"]]
    cond = conditioning(model_args)(torch.from_numpy(schema.to_network(inputs["source_aus"])),
                                    torch.from_numpy(schema.to_network(inputs["aus"])))
    result, attention, _ = generator(torch.from_numpy(inputs["image"]), cond)
    frames = ((result.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1)
    out = {"frames": frames.numpy(), "result": result.numpy()}
    if attention is not None:
        out["attention"] = attention.numpy()
    return out


def _feed(input_names: list[str], inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.ascontiguousarray(inputs[name]) for name in input_names}


def _session(onnxruntime, path: Path, threads: int):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads  # the same core count as torch, for a fair comparison
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, _feed([i.name for i in session.get_inputs()], inputs))))


def compare(ort_out: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict:
    frame_diff = np.abs(ort_out["frames"].astype(np.int16) - ref["frames"].astype(np.int16))
    diffs = {"frames_levels": int(frame_diff.max()), "frames_values_differing": int(np.count_nonzero(frame_diff)),
             "frames_values": int(frame_diff.size), "result": float(np.abs(ort_out["result"] - ref["result"]).max())}
    diffs["result_levels"] = diffs["result"] * 127.5  # [-1, 1] -> 0..255
    if "attention" in ref:
        diffs["attention"] = float(np.abs(ort_out["attention"] - ref["attention"]).max())
    return diffs


def _worst(full: dict, single: dict) -> dict:
    """The largest differences of both batch sizes; the counts of differing frame values are the full probe's."""
    return {k: v if k.startswith("frames_values") else max(v, single[k]) for k, v in full.items()}


def export_graph(model: FrameGenerator, model_args: dict, out: Path, opset: int, exporter: str) -> None:
    size = model_args["discriminator"]["final_size"]
    n = model_args["generator"]["aus_nc"]
    input_names, output_names = io_names(model_args)
    example = (torch.zeros(2, 3, size, size), *(torch.zeros(2, n) for _ in input_names[1:]))  # aus [, source_aus]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*instance_norm.*train=True.*")  # instance norm: input stats
        warnings.filterwarnings("ignore", message=".*feature will be removed.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # shape checks traced at fixed size
        if exporter == "torchscript":
            torch.onnx.export(model, example, str(out), dynamo=False, opset_version=opset,
                              input_names=input_names, output_names=output_names,
                              dynamic_axes={name: {0: "batch"} for name in input_names + output_names})
        else:
            try:
                import onnxscript  # noqa: F401
            except ImportError:
                raise ExportError("--exporter dynamo needs onnxscript (pip install onnxscript); the default "
                                  "torchscript exporter needs only onnx") from None
            batch = torch.export.Dim("batch", min=1)
            torch.onnx.export(model, example, str(out), dynamo=True, opset_version=opset, external_data=False,
                              input_names=input_names, output_names=output_names,
                              dynamic_shapes=tuple({0: batch} for _ in input_names), verbose=False)


def _io_record(items, meanings: dict) -> list[dict]:
    return [{"name": i.name, "shape": [d if isinstance(d, int) else "batch" for d in i.shape],
             "dtype": ORT_TYPES.get(i.type, i.type), "meaning": meanings[i.name]} for i in items]


ORT_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8"}
MEANINGS = {
    "image": "RGB face in [-1, 1] (pixel / 127.5 - 1), NCHW",
    "aus": "target AU intensities, raw 0..5 scale, in the order of au_names",
    "source_aus": "the input face's AU intensities, raw 0..5 (n2me_unet is driven by aus - source_aus)",
    "frames": "output frames, uint8 0..255, NHWC: what test mode writes",
    "result": "composed image in [-1, 1] before clamping and rounding, NCHW",
    "attention": "attention A in result = A * image + (1 - A) * colour (1 keeps the input pixel)",
}


def benchmark(fn, runs: int) -> float:
    """Median seconds of ``runs`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def export_onnx(source: Path, out: Path, *, load_epoch="latest", ckpt_format: str = "auto",
                opset: int = DEFAULT_OPSET, tolerance: float = DEFAULT_TOLERANCE, bench_runs: int = 3,
                bench_batch: int = 64, exporter: str = "torchscript") -> dict:
    """Export, check against PyTorch and (``bench_runs`` > 0) time both; returns the record written to OUT.json.

    Raises ``ExportError`` for a failed export and ``ValueError``/``FileNotFoundError`` for an unusable source; a
    check above ``tolerance`` returns the record with ``check.passed`` false and writes nothing."""
    if exporter not in EXPORTERS:
        raise ExportError(f"--exporter {exporter}: choose from {', '.join(EXPORTERS)}")
    onnx, onnxruntime = _require_onnx()
    path, state, generator = load_generator(source, load_epoch, ckpt_format)
    model_args = state["model"]
    model = FrameGenerator(generator, model_args).eval()
    threads = torch.get_num_threads()

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        try:
            export_graph(model, model_args, tmp, opset, exporter)
            onnx.checker.check_model(str(tmp))
            session = _session(onnxruntime, tmp, threads)
        except ExportError:
            raise
        except Exception as err:
            raise ExportError(f"exporting the {model_args['name']} generator of {path} to ONNX (opset {opset}, "
                              f"{exporter} exporter) failed: {err.__class__.__name__}: "
                              f"{str(err).splitlines()[0][:300] if str(err) else ''}") from err

        probe = probe_inputs(model_args)
        ref = torch_reference(generator, model_args, probe)
        diffs = compare(run_onnx(session, probe), ref)
        single = {k: v[:1] for k, v in probe.items()}  # the dynamic batch axis at batch 1 too
        diffs = _worst(diffs, compare(run_onnx(session, single), torch_reference(generator, model_args, single)))
        passed = diffs["frames_levels"] <= tolerance and diffs["result_levels"] <= tolerance
        if "attention" in diffs:
            passed = passed and diffs["attention"] * 255 <= tolerance
        faces = len(probe["image"]) // 4
        record = {
            "onnx": out.name, "source": str(path), "checkpoint_sha256": _sha256(path), "model": model_args,
            "epoch": state["progress"].get("epoch"),
            "imported_from": state.get("imported_from", {}).get("format"),
            "exporter": "torch.onnx.export(dynamo=False), TorchScript" if exporter == "torchscript"
            else "torch.onnx.export(dynamo=True)",
            "opset": opset, "versions": {"torch": torch.__version__, "onnx": onnx.__version__,
                                         "onnxruntime": onnxruntime.__version__},
            "image_size": model_args["discriminator"]["final_size"],
            "au_names": list(SCHEMAS[model_args["aus_schema"]].names),
            "inputs": _io_record(session.get_inputs(), MEANINGS),
            "outputs": _io_record(session.get_outputs(), MEANINGS),
            "check": {"probe": f"{faces} synthetic faces x 4 AU vectors (data.synthetic, seed 0), batch sizes "
                               f"{len(probe['image'])} and 1",
                      "reference": "PyTorch fp32 eager on CPU, called as SequenceGenerator.generate calls it",
                      "max_abs_diff": diffs, "tolerance_levels": tolerance, "passed": bool(passed)},
            "benchmark": None,
        }
        if not passed:
            return record
        if bench_runs > 0:
            record["benchmark"] = _bench(model, model_args, session, probe, bench_batch, bench_runs, threads)
        record["bytes"] = tmp.stat().st_size
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    info = Path(f"{out}.json")
    info_tmp = info.with_name(f".{info.name}.tmp{os.getpid()}")
    info_tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(info_tmp, info)
    record["json"] = str(info)
    return record


def _bench(model: FrameGenerator, model_args: dict, session, probe: dict, batch: int, runs: int,
           threads: int) -> dict:
    reps = -(-batch // len(probe["image"]))
    inputs = {k: np.concatenate([v] * reps)[:batch] for k, v in probe.items()}
    feed = _feed([i.name for i in session.get_inputs()], inputs)
    tensors = [torch.from_numpy(feed[name]) for name in io_names(model_args)[0]]

    def torch_run():
        with torch.inference_mode():
            model(*tensors)

    torch_s = benchmark(torch_run, runs)
    ort_s = benchmark(lambda: session.run(None, feed), runs)
    return {"batch": batch, "runs": runs, "statistic": "median after one warm-up", "threads": threads,
            "torch_frames_per_s": round(batch / torch_s, 1), "onnxruntime_frames_per_s": round(batch / ort_s, 1),
            "speedup": round(torch_s / ort_s, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.export_onnx", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, nargs="?", default=None,
                   help="run folder, checkpoint file or a seed's generator file (default: the bundled model)")
    p.add_argument("--out", required=True, type=Path, help="the .onnx file to write (OUT.json is written beside)")
    p.add_argument("--load_epoch", default="latest", help="N or latest, when SOURCE is a run folder")
    p.add_argument("--ckpt_format", default="auto", choices=FORMATS)
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="largest ORT vs PyTorch difference allowed, in 0..255 levels (default 1)")
    p.add_argument("--bench_runs", type=int, default=3, help="timed runs per backend, median reported (0: skip)")
    p.add_argument("--bench_batch", type=int, default=64, help="batch size of the timing (default 64)")
    p.add_argument("--exporter", default="torchscript", choices=EXPORTERS,
                   help="torch's TorchScript exporter (needs onnx) or the dynamo one (needs onnxscript too)")
    args = p.parse_args(argv)
    source = args.source if args.source is not None else BUNDLED_CHECKPOINT
    if args.source is None:
        print(f"no checkpoint given: exporting the bundled model {source}")
    try:
        info = export_onnx(source, args.out, load_epoch=args.load_epoch, ckpt_format=args.ckpt_format,
                      opset=args.opset, tolerance=args.tolerance, bench_runs=args.bench_runs,
                      bench_batch=args.bench_batch, exporter=args.exporter)
    except (ExportError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    check = info["check"]
    d = check["max_abs_diff"]
    diff_text = (f"frames {d['frames_levels']} of 255 levels ({d['frames_values_differing']} of "
                 f"{d['frames_values']} values differ), result {d['result']:.2e} "
                 f"({d['result_levels']:.4f} levels)" + (f", attention {d['attention']:.2e}" if "attention" in d
                                                          else ""))
    if not check["passed"]:
        print(f"error: ONNX Runtime and PyTorch disagree on {check['probe']}: {diff_text}; tolerance "
              f"{check['tolerance_levels']} levels. Nothing written to {args.out}.", file=sys.stderr)
        return 1
    print(f"{info['source']} -> {args.out} ({info['bytes'] / 1e6:.2f} MB, opset {info['opset']}, "
          f"{info['model']['name']} at {info['image_size']} px); inputs "
          + ", ".join(f"{i['name']} {i['dtype']} {i['shape']}" for i in info["inputs"]) + "; outputs "
          + ", ".join(f"{o['name']} {o['dtype']} {o['shape']}" for o in info["outputs"]))
    print(f"ONNX Runtime vs PyTorch on {check['probe']}: largest difference {diff_text} (tolerance "
          f"{check['tolerance_levels']} levels): ok")
    bench = info["benchmark"]
    if bench:
        print(f"CPU inference, batch {bench['batch']}, {bench['threads']} threads, median of {bench['runs']}: "
              f"PyTorch {bench['torch_frames_per_s']} frames/s, ONNX Runtime {bench['onnxruntime_frames_per_s']} "
              f"frames/s ({bench['speedup']}x)")
    print(f"record: {info['json']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
