"""Test mode: turn a template face into a micro-expression sequence driven by a clip's AUs or an AU matrix.

``SequenceGenerator`` holds a generator rebuilt from a checkpoint and streams any number of target AU vectors
through it in batches. ``generate_sequence`` computes the trajectory and writes every output of one
(clip, template) pair into a fresh folder, atomically. ``Tester`` is the ``--mode test`` solver;
``for_megc2021.py`` reuses the same pieces with the model loaded once for all pairs.
"""
from __future__ import annotations

import csv
import errno
import functools
import io
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from catalog.au_schema import OPENFACE_PRESENCE, SCHEMAS, AUSchema
from checkpoints import Checkpoint, read
from data.sequences import (
    DrivingClip,
    Template,
    read_au_matrix,
    read_template,
    template_from_image,
)
from media import frames as media
from media.images import load_rgb
from models import au_response as au_calibration
from models.model_registry import conditioning
from motion.transfer import TemplateMotion
from openface.au_estimator import CALIBRATION_ENV
from solvers.fast_path import FastPath, apply_backend_settings, maybe_compile
from solvers.motion_path import SEEDS_GENERATION, MotionSettings, PixelMotion, pixel_motion, texture_change
from solvers.pair_input import load_pair, measurement_backend
from solvers.run_folder import remove_stale_temp, temp_path
from solvers.sequence_writer import SequenceWriter
from solvers.trajectory import build_trajectory, presence_majority_mask

log = logging.getLogger(__name__)

UNBOUNDED = 1e12  # trajectory without its final clip, so that test mode can count what the clip changes


@dataclass
class TrajectorySettings:
    """How the driving AUs become the generator's targets (see solvers/trajectory.py)."""

    mode: str = "1v1"  # "1v1" | "linear_fitting" | "apex_frame"
    re_code: bool = False
    apex: int | None = None  # --top_frame; None = automatic
    au_mode: str = "auto"  # "auto" (relative when the template's AUs are known) | "absolute" | "relative"
    factor: float = 1.0
    smooth_window: int = 0
    calibrate: bool = True  # invert the model's AU-response curves when it has them (models/au_response.py)

    def folder_tag(self) -> str:
        """The seed's naming: <re_code|no-re_code>_<linear_fitting|apex_frame|1V1>."""
        recode = "re_code" if self.re_code else "no-re_code"
        return f"{recode}_{'1V1' if self.mode == '1v1' else self.mode}"


@dataclass
class SequenceOutput:
    output_size: int = 256
    fps: float | None = None  # None: the clip's native rate
    videos: bool = True
    max_frames: int | None = None
    preset: dict | None = None  # --preset and the flags typed over it, recorded in run.json


class SequenceGenerator:
    """A checkpoint's generator, ready to stream (template, target AUs) through in batches."""

    def __init__(self, checkpoint: Checkpoint | Path, device: torch.device, batch_size: int = 32, amp: bool = False,
                 speed: FastPath | None = None):
        # What checkpoints.read returned (test mode: read once with --ckpt_format); a path is read here, format
        # detected (native, or a seed's generator file imported in memory).
        if not isinstance(checkpoint, Checkpoint):
            checkpoint = read(checkpoint, fmt="auto")
        self.model_args = checkpoint.model_args
        self.schema: AUSchema = SCHEMAS[self.model_args["aus_schema"]]
        self.image_size = self.model_args["discriminator"]["final_size"]
        self.epoch = checkpoint.epoch
        self.generator = checkpoint.generator()
        self.speed = speed if speed is not None else FastPath(amp=amp)
        fmt = torch.channels_last if self.speed.channels_last else torch.preserve_format
        self.generator.to(device, memory_format=fmt).eval()
        apply_backend_settings(self.speed)
        self.run_generator = maybe_compile(self.generator, self.speed, device, inference=True)
        self.device, self.batch_size, self.amp = device, max(1, batch_size), self.speed.amp
        self.checkpoint = checkpoint.path
        self.calibration = au_calibration.load_response(checkpoint.path, self.schema.names)
        if self.speed.compile:
            self._compile_now()

    def _compile_now(self) -> None:
        """Compile on a dummy batch here, so that the frames/s a run reports measures generation, not
        compilation (tens of seconds on a CPU)."""
        size, n = self.image_size, self.schema.n
        template = torch.zeros(3, size, size)
        self.generate(template, np.zeros((self.batch_size, n)), template_aus=np.zeros(n))

    def load_template(self, template: Template) -> torch.Tensor:
        img = template_pixels(template, self.image_size)
        return torch.from_numpy(img).permute(2, 0, 1).float().div(127.5).sub(1.0)

    @property
    def needs_source_aus(self) -> bool:
        """N2ME's U-Net is driven by the AU change from the input face, so it needs that face's AUs."""
        return conditioning(self.model_args).kind == "difference"

    def generate(self, template: torch.Tensor, targets_raw: np.ndarray, progress: bool = False,
                 template_aus: np.ndarray | None = None) -> np.ndarray:
        """Raw 0..5 target AUs (T, n) -> uint8 frames (T, H, W, 3) (short sequences; test mode streams)."""
        return np.concatenate(list(self.generate_batches(template, targets_raw, progress, template_aus)))

    @torch.inference_mode()
    def generate_batches(self, template: torch.Tensor, targets_raw: np.ndarray, progress: bool = False,
                         template_aus: np.ndarray | None = None):
        """Raw 0..5 target AUs (T, n) -> uint8 frames, yielded one batch (B, H, W, 3) at a time, so that a sequence
        of any length is written without ever being whole in memory."""
        if targets_raw.shape[1] != self.schema.n:
            raise ValueError(f"the AUs have {targets_raw.shape[1]} values but the checkpoint's generator expects "
                             f"{self.schema.n} ({self.schema.key}): {self.checkpoint}")
        condition = conditioning(self.model_args)
        source = np.zeros(self.schema.n) if template_aus is None else template_aus
        if condition.kind == "difference" and template_aus is None:
            raise ValueError(f"{self.checkpoint}: this generator is driven by AU differences and needs the input "
                             f"face's AUs (AU table, csvs2/ or --pre_treatment)")
        cond = condition(torch.from_numpy(self.schema.to_network(source))[None],
                         torch.from_numpy(self.schema.to_network(targets_raw)))
        # A fresh contiguous inference tensor whatever the caller passed: one kind of input, so a compiled generator
        # is not recompiled per template (strides and inference-mode dispatch keys are part of its guards).
        src = template.to(self.device).clone(memory_format=torch.contiguous_format)[None]
        if self.speed.channels_last:
            src = src.contiguous(memory_format=torch.channels_last)
        for start in tqdm(range(0, len(cond), self.batch_size), desc="generating", leave=False,
                          disable=not progress):
            aus = cond[start:start + self.batch_size].to(self.device)
            n = len(aus)
            # A sequence's short last batch is padded to the full batch shape, so the compiled graph is reused; a
            # call shorter than one batch (N2ME's single neutral face) runs at its own size instead of 25x work.
            if self.speed.compile and n < self.batch_size <= len(cond):
                aus = torch.cat([aus, aus[-1:].expand(self.batch_size - n, -1)])
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                out, _, _ = self.run_generator(src.expand(len(aus), -1, -1, -1), aus)
            yield _to_uint8(out[:n].float())


def template_pixels(template: Template, size: int) -> np.ndarray:
    """The template at size x size: the front end's aligned crop when there is one, else the file."""
    if template.aligned is None:
        return load_rgb(template.path, size)
    return media.resize_frames(template.aligned[None], size)[0]


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def unique_folder(path: Path) -> Path:
    """Never overwrite a result: name, name_2, name_3, ..."""
    if not path.exists():
        return path
    n = 2
    while path.with_name(f"{path.name}_{n}").exists():
        n += 1
    log.warning("%s exists: writing to %s_%d instead", path, path.name, n)
    return path.with_name(f"{path.name}_{n}")


@functools.lru_cache(maxsize=64)
def _face_count(path: str, mtime_ns: int) -> int:
    """Faces found in an image; -1 when the detector cannot run here (the check is advice, never a failure)."""
    try:
        from openface.landmarks import Landmarker

        landmarker = Landmarker(max_faces=1)
    except Exception as err:
        log.debug("template face check skipped: %s", err)
        return -1
    try:
        return len(landmarker.detect(load_rgb(path)))
    finally:
        landmarker.close()


def warn_if_no_face(template: Template) -> None:
    """A template without a face still 'works' (the generator paints on whatever is there): say so, once per file.
    A template aligned by the front end (``--pre_treatment``) has a face by construction."""
    if template.aligned is None and _face_count(str(template.path), template.path.stat().st_mtime_ns) == 0:
        log.warning("%s: no face found in the template; the result will not look like a face", template.path)


def recode_mask(clip: DrivingClip, schema: AUSchema) -> np.ndarray:
    if clip.presence is None:
        raise ValueError(f"--re_code needs OpenFace presence flags (csvs/) for {clip.name}; its AUs came from "
                         f"{clip.source}")
    return presence_majority_mask(clip.presence, OPENFACE_PRESENCE, schema.names)


@dataclass
class SequenceResult:
    out_dir: Path
    frames: int
    apex: int
    fps: float
    seconds: float
    frames_per_s: float
    files: list[str] = field(default_factory=list)


def generate_sequence(model: SequenceGenerator, clip: DrivingClip, template: Template, out_dir: Path,
                      traj: TrajectorySettings, out: SequenceOutput, progress: bool = False,
                      request: dict | None = None, motion: MotionSettings = SEEDS_GENERATION) -> SequenceResult:
    """Trajectory -> (warp +) generator -> frames, videos, GIF, AU curves, records; all in ``out_dir`` or nothing.
    ``motion`` picks motion transfer (solvers/motion_path.py; the command line's default) or the seeds' AU-only
    generation (this function's default, for callers that predate motion transfer). When another process took
    ``out_dir`` meanwhile, the result goes to the next free ``out_dir_N`` (the returned ``out_dir``). ``request``
    (what for_megc2021.py asked for) is kept in run.json, so a rerun can reuse it."""
    clip_aus = clip.aus if out.max_frames is None else clip.aus[:out.max_frames]
    frames_src = clip.frames if out.max_frames is None or clip.frames is None else clip.frames[:out.max_frames]
    if len(clip_aus) == 0:
        raise ValueError(f"{clip.name}: the clip has no frames")
    mask = recode_mask(clip, model.schema) if traj.re_code else None
    au_mode = resolved_au_mode(traj.au_mode, template)
    needs = [why for why, needed in (("--apex_frame", traj.mode == "apex_frame"),
                                     ("--au_mode relative", au_mode == "relative"),
                                     (f"the {model.model_args['name']} model", model.needs_source_aus)) if needed]
    if needs and template.aus is None:
        raise ValueError(f"{template.path}: {needs[0]} needs the template's AUs (an entry in the AU table, "
                         f"csvs2/{template.path.stem}.csv, or --pre_treatment)")
    warn_if_no_face(template)
    unclipped, apex = build_trajectory(
        clip_aus, template_aus=template.aus if template.aus is not None else np.zeros(model.schema.n),
        mode=traj.mode, re_code_mask=mask, apex=traj.apex, au_mode=au_mode, factor=traj.factor,
        smooth_window=traj.smooth_window, max_intensity=UNBOUNDED)
    targets = np.minimum(unclipped, model.schema.max_intensity)
    clipped = int((unclipped > model.schema.max_intensity).sum())
    if clipped:  # magnification (or relative offsets) beyond the trained range: clipped, and counted
        log.warning("%s: %d target AU value(s) above %g clipped to it (--factor %g)", clip.name, clipped,
                    model.schema.max_intensity, traj.factor)
    fps = out.fps or clip.fps
    drive = calibrated_drive(model, targets, template, traj)
    kind = motion.resolve(frames_src is not None)
    plan = None
    if kind != "none":
        plan = motion_plan(kind, model, clip, template, frames_src, targets, traj, out, motion)

    tmp = temp_path(out_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if plan is None:
            seconds, files = _stream_outputs(tmp, model, template, frames_src, drive, fps, out, progress)
        else:
            seconds, files = _stream_motion_outputs(tmp, model, template, frames_src, drive, fps, out, progress,
                                                    plan, motion.texture_for(kind) == "generator")
        write_au_csv(tmp / "aus_driven.csv", model.schema.names, targets)
        media.plot_au_curves(tmp / "au_curves.png", model.schema.names, targets, clip_aus, fps, apex)
        files += ["aus_driven.csv", "au_curves.png"]
        if drive is not targets:  # what the generator was given; aus_driven.csv keeps what the face should show
            write_au_csv(tmp / "aus_generator_input.csv", model.schema.names, drive)
            files.append("aus_generator_input.csv")
        rate = len(targets) / max(seconds, 1e-9)
        record = {"clip": clip.name, "au_source": clip.source, "template": str(template.path),
                  "source_frames": str(frames_src[0].parent) if frames_src else None,
                  "source_frame_gaps": clip.frame_gaps,
                  "checkpoint": str(model.checkpoint), "epoch": model.epoch, "frames": len(targets), "apex": apex,
                  "fps": fps, "trajectory": asdict(traj), "au_mode_used": au_mode, "output_size": out.output_size,
                  "calibration": str(model.calibration.source) if drive is not targets else None,
                  "preset": out.preset,
                  "motion": motion.record(kind) | (plan.record if plan is not None else {}),
                  "generation_seconds": round(seconds, 4), "frames_per_s": round(rate, 2),
                  "device": str(model.device)}
        if request is not None:
            record["request"] = request
        (tmp / "run.json").write_text(json.dumps(record, indent=2) + "\n")
        out_dir = publish(tmp, out_dir)  # the folder appears complete or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SequenceResult(out_dir, len(targets), apex, fps, seconds, rate, files + ["run.json"])


def file_state(path: Path) -> list | None:
    """A file as a request sees it: path, size and modification time (a checkpoint saved again is another one)."""
    if not Path(path).is_file():
        return None
    st = Path(path).stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def generation_request(model: SequenceGenerator, traj: TrajectorySettings, out: SequenceOutput, **settings) -> dict:
    """What decides a result besides its input files: the checkpoint file, its AU-response curves, the AU
    estimator's calibration ($MEGAN_AU_CALIBRATION), the trajectory and output settings, and ``settings``."""
    return {"checkpoint": file_state(model.checkpoint), "epoch": model.epoch,
            "response_curves": file_state(au_calibration.path_for(model.checkpoint)),
            "au_estimator": os.environ.get(CALIBRATION_ENV), "trajectory": asdict(traj), "output": asdict(out),
            **settings}


def publish(tmp: Path, out_dir: Path) -> Path:
    """Rename the filled ``tmp`` to ``out_dir``, or, when another writer (a second batch into the same results
    folder) got there first, to the next free ``out_dir_N``: never onto another's result, never losing this one."""
    target = out_dir
    while True:
        try:
            os.rename(tmp, target)
            return target
        except OSError as err:
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            target = unique_folder(out_dir)


def check_output_folder(folder: Path, flag: str) -> None:
    """An output folder that is a file: one line naming it (before: '[Errno 17] File exists')."""
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{flag} {folder} is a file: give a folder (created if missing)")


def resolved_au_mode(au_mode: str, template: Template) -> str:
    """``auto``: relative when the template's AUs are known. Relative driving keeps the driving person's resting
    AUs off the template (its onset frame is the template); measured against absolute in docs/bundled_model.md."""
    if au_mode != "auto":
        return au_mode
    return "relative" if template.aus is not None else "absolute"


def calibrated_drive(model: SequenceGenerator, targets: np.ndarray, template: Template,
                     traj: TrajectorySettings) -> np.ndarray:
    """The generator's input for these targets: through the model's AU-response calibration when it has one and
    ``traj.calibrate`` is on, anchored on the template's AUs (zeros when unknown); else the targets themselves."""
    if not traj.calibrate or model.calibration is None:
        return targets
    anchor = template.aus if template.aus is not None else np.zeros(model.schema.n)
    return model.calibration.drive(targets, anchor)


def _stream_outputs(folder: Path, model: SequenceGenerator, template: Template, frames_src: list[Path] | None,
                    drive: np.ndarray, fps: float, out: SequenceOutput, progress: bool) -> tuple[float, list[str]]:
    """Generate from the generator's input AUs ``drive`` and write batch by batch (memory flat in the sequence
    length); returns the seconds spent in the generator alone, and the files written."""
    still = template_pixels(template, out.output_size) if frames_src is None and out.videos else None
    batches = model.generate_batches(model.load_template(template), drive, progress=progress,
                                     template_aus=template.aus)
    seconds = 0.0
    with SequenceWriter(folder, len(drive), out.output_size, fps, out.videos, frames_src, still) as writer:
        while True:
            start = time.perf_counter()
            batch = next(batches, None)
            seconds += time.perf_counter() - start
            if batch is None:
                return seconds, writer.files()
            writer.add(batch)


@dataclass
class MotionPlan:
    """Motion transfer for one pair: the template's warp and every output frame's motion."""

    template: TemplateMotion
    motion: PixelMotion

    @property
    def record(self) -> dict:
        return self.motion.record


def motion_plan(kind: str, model: SequenceGenerator, clip: DrivingClip, template: Template,
                frames_src: list[Path] | None, targets: np.ndarray, traj: TrajectorySettings,
                out: SequenceOutput, settings: MotionSettings) -> MotionPlan:
    still = template_pixels(template, out.output_size)
    face = TemplateMotion.from_image(still, template.path)
    motion = pixel_motion(kind, face, settings, frames=frames_src, fps=clip.fps, clip_name=clip.name,
                          targets=targets, au_names=model.schema.names, factor=traj.factor)
    if len(motion.displacements) < len(targets):
        raise ValueError(f"{clip.name}: motion for {len(motion.displacements)} frames, AUs for {len(targets)}")
    return MotionPlan(face, motion)


def _stream_motion_outputs(folder: Path, model: SequenceGenerator, template: Template,
                           frames_src: list[Path] | None, drive: np.ndarray, fps: float, out: SequenceOutput,
                           progress: bool, plan: MotionPlan, with_texture: bool) -> tuple[float, list[str]]:
    """The warped template per frame, plus the generator's AU-driven change when ``with_texture``; returns the
    seconds spent generating (generator and warp) and the files written."""
    still = plan.template.warp.image if frames_src is None and out.videos else None
    batches = None
    first = None
    if with_texture:
        batches = model.generate_batches(model.load_template(template), drive, progress=progress,
                                         template_aus=template.aus)
    seconds, done = 0.0, 0
    with SequenceWriter(folder, len(drive), out.output_size, fps, out.videos, frames_src, still) as writer:
        while done < len(drive):
            start = time.perf_counter()
            if batches is not None:
                generated = next(batches)
                first = generated[0] if first is None else first
                textures = [texture_change(first, g, out.output_size) for g in generated]
            else:
                count = min(model.batch_size, len(drive) - done)
                textures = [plan.motion.clip_texture(done + i) for i in range(count)]
            frames = np.stack([plan.template.render(plan.motion.displacements[done + i], tex,
                                                    plan.motion.extra(done + i))
                               for i, tex in enumerate(textures)])
            seconds += time.perf_counter() - start
            writer.add(frames)
            done += len(frames)
        return seconds, writer.files()


def write_au_csv(path: Path, names: tuple[str, ...], aus: np.ndarray, row_names: list[str] | None = None) -> None:
    """One row per frame (``frame`` = index) or per named image (``name``), AU columns by name."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["frame" if row_names is None else "name", *names])
    for i, row in enumerate(aus):
        # full precision: small estimator values must not round to exactly 0 (AU09 once did for 96 % of frames)
        writer.writerow([i if row_names is None else row_names[i], *(repr(float(v)) for v in row)])
    path.write_text(buf.getvalue())


def apex_still(result_dir: Path, apex: int) -> Image.Image:
    frames = sorted((result_dir / "frames").glob("*.png"))
    return Image.open(frames[min(apex, len(frames) - 1)]).convert("RGB")


@dataclass
class Tester:
    """``--mode test`` on one folder (ULME layout) or one AU matrix."""

    checkpoint: Checkpoint
    device: torch.device
    results_dir: Path
    traj: TrajectorySettings
    out: SequenceOutput
    data_root: Path | None = None
    aus_matrix: Path | None = None
    template: str | None = None  # a name in imgs2/ or, with an AU matrix, an image path
    batch_size: int = 32
    amp: bool = False
    speed: FastPath | None = None  # the fast-path settings (None: plain, plus --amp)
    progress: bool = True
    au_backend: str = "table"  # "table" (AU table or csvs/), or --pre_treatment's auto | builtin | openface | csv
    openface_bin: str | None = None
    clip_aus: bool = False  # --clip_aus: clip out-of-range AUs (counted) instead of stopping
    motion: MotionSettings = field(default_factory=MotionSettings)  # --motion / --texture

    def run(self) -> SequenceResult:
        check_output_folder(self.results_dir, "--results_dir")
        if self.data_root is not None and not self.data_root.is_dir():
            what = "not a folder" if self.data_root.exists() else "no such folder"
            raise FileNotFoundError(f"--data_root {self.data_root}: {what}; give a pair folder with imgs/ (and imgs2/)")
        model = SequenceGenerator(self.checkpoint, self.device, self.batch_size, self.amp, self.speed)
        clip, template = self._inputs(model.schema)
        name = f"{clip.name}_{model.model_args['name']}_{model.epoch}_{self.traj.folder_tag()}"
        name += self.motion.folder_tag()
        remove_stale_temp(self.results_dir)  # hidden half-written result folders of killed runs
        out_dir = unique_folder(self.results_dir / name)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        result = generate_sequence(model, clip, template, out_dir, self.traj, self.out, self.progress,
                                   motion=self.motion)
        log.info("%d frames (apex %d) at %.1f frames/s on %s -> %s", result.frames, result.apex,
                 result.frames_per_s, self.device, result.out_dir)
        return result

    def _inputs(self, schema: AUSchema) -> tuple[DrivingClip, Template]:
        if self.template and not Path(self.template).is_file() and Path(self.template).suffix:
            raise FileNotFoundError(f"--template {self.template}: no such image file")
        if self.aus_matrix is None:
            return load_pair(self.data_root, schema, re_code=self.traj.re_code, au_backend=self.au_backend,
                             openface_bin=self.openface_bin, template=self.template, clip_aus=self.clip_aus)
        with measurement_backend(self.au_backend, self.data_root, self.openface_bin) as backend:
            clip = read_au_matrix(self.aus_matrix, schema, self.clip_aus)
            if self.template and Path(self.template).is_file():
                return clip, template_from_image(Path(self.template), schema, backend.front_end)
            if self.data_root is None:
                raise ValueError("--aus_matrix needs a template face: --template IMAGE or --data_root with imgs2/")
            return clip, read_template(self.data_root, schema, None, self.template, backend.front_end)
