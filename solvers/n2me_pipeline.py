"""N2ME's two stages: neutralise input faces, then give each neutral face real micro-expressions.

Stage 1 (``--test_mode neutral``): the neutral model (an 18-AU GANimation) is asked for all-zero AUs, which makes any
face neutral with the mouth closed. Writes ``<test_dir>/neutral/<neutral_expr_name>/<name>.jpg`` (the aligned crop,
or the photo with the neutral face pasted back with ``--keep_size``) and ``aus.csv``, the AUs measured on the
neutral faces.

Stage 2 (``--test_mode me`` or ``all``; both run stage 1 first, as N2ME does): for every selected clip of every
selected emotion, one frame per clip frame, driven by the clip's real AU curve. The ME model is conditioned on the
AU difference (clip frame - neutral face) when it is N2ME's U-Net, on the clip's AUs when it is a GANimation.
Writes ``<test_dir>/<emotion>/<me_expr_name>/<clip_id>/<input_name>/NNN.jpg`` plus videos and AU curves.
"""
from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from catalog.au_schema import OPENFACE_AUS
from checkpoints import Checkpoint
from data.annotations import SUMMARY_EMOTIONS, build_me_summary, read_annotations
from data.me_curves import load_clip_curve
from data.sequences import Template
from media import frames as media
from media.images import list_images, load_rgb
from motion.transfer import NoTemplateFaceError, TemplateMotion
from openface.align import paste_back
from openface.frontend import FaceFrontEnd, NoFaceError, au_vector
from solvers.fast_path import FastPath
from solvers.motion_path import MotionSettings, texture_change
from solvers.tester import SequenceGenerator, write_au_csv

log = logging.getLogger(__name__)


@dataclass
class N2MESettings:
    test_dir: Path
    input_dir: Path
    mode: str  # "neutral" | "me" | "all"
    neutral_ckpt: Checkpoint
    neutral_expr_name: str
    me_ckpt: Checkpoint | None = None
    me_expr_name: str = "me"
    keep_size: bool = False
    aus_dirs: dict[str, Path] = field(default_factory=dict)
    me_summary: Path | None = None
    me_annotations: list[Path] = field(default_factory=list)
    me_emotions: str = "all"
    me_samples: int = 10
    seed: int = 2021
    fps: float | None = None
    videos: bool = True
    motion: MotionSettings = field(default_factory=lambda: MotionSettings(motion="none"))  # --motion / --texture


@dataclass
class NeutralFace:
    name: str
    crop: np.ndarray  # aligned neutral face, model size
    aus: np.ndarray  # measured on the neutral face, raw 0..5, in the ME model's schema order (17 OpenFace AUs)


class N2MEPipeline:
    def __init__(self, settings: N2MESettings, device: torch.device, batch_size: int = 32, amp: bool = False,
                 speed: FastPath | None = None):
        self.s, self.device, self.batch_size, self.amp = settings, device, batch_size, amp
        self.speed = speed  # fast-path settings for both generators (None: plain, plus amp)
        self.problems: list[str] = []

    def run(self) -> dict:
        neutral_model = SequenceGenerator(self.s.neutral_ckpt, self.device, self.batch_size, self.amp, self.speed)
        with FaceFrontEnd(size=neutral_model.image_size) as front_end:
            neutrals = self.neutralise(neutral_model, front_end)
            written = {"neutral": len(neutrals), "sequences": 0}
            if self.s.mode in ("me", "all") and neutrals:
                written["sequences"] = self.micro_expressions(neutrals, front_end)
        for problem in self.problems:
            log.warning(problem)
        (self.s.test_dir / "n2me_report.json").write_text(json.dumps({**written, "problems": self.problems}, indent=1))
        log.info("N2ME: %d neutral face(s), %d sequence(s), %d problem(s) -> %s", written["neutral"],
                 written["sequences"], len(self.problems), self.s.test_dir)
        return written

    # ------------------------------------------------------------ stage 1
    def neutralise(self, model: SequenceGenerator, front_end: FaceFrontEnd) -> list[NeutralFace]:
        images = list_images(self.s.input_dir) if self.s.input_dir.is_dir() else {}
        if not images:
            raise FileNotFoundError(f"no input images in {self.s.input_dir}")
        out_dir = self.s.test_dir / "neutral" / self.s.neutral_expr_name
        out_dir.mkdir(parents=True, exist_ok=True)
        neutrals, table = [], {}
        for name, path in images.items():
            photo = load_rgb(path)
            try:
                measured = front_end.measure(photo, str(path))
            except NoFaceError:
                self.problems.append(f"{path}: no face found, skipped")
                continue
            crop = measured.crop
            tensor = torch.from_numpy(crop.image).permute(2, 0, 1).float().div(127.5).sub(1.0)
            neutral = model.generate(tensor, np.zeros((1, model.schema.n)))[0]  # zero AUs: the neutral face
            picture = paste_back(photo, neutral, crop.matrix, crop.size) if self.s.keep_size else neutral
            Image.fromarray(picture).save(out_dir / f"{name}.jpg", quality=95)
            try:
                aus = au_vector(front_end.measure(neutral, f"neutral {name}"), OPENFACE_AUS)[0]
            except NoFaceError:
                self.problems.append(f"{path}: the neutral face could not be measured; its AUs are taken as 0")
                aus = np.zeros(len(OPENFACE_AUS))
            neutrals.append(NeutralFace(name, neutral, aus))
            table[name] = aus
        write_au_csv(out_dir / "aus.csv", OPENFACE_AUS, np.array(list(table.values())), list(table))
        return neutrals

    # ------------------------------------------------------------ stage 2
    def micro_expressions(self, neutrals: list[NeutralFace], front_end: FaceFrontEnd) -> int:
        if self.s.me_ckpt is None:
            raise ValueError("--test_mode me/all needs the ME model: --me_ckpt")
        selection = select_clips(self.load_summary(), self.s.me_emotions, self.s.me_samples, self.s.seed,
                                 self.problems)
        model = SequenceGenerator(self.s.me_ckpt, self.device, self.batch_size, self.amp, self.speed)
        if model.schema.names != OPENFACE_AUS:
            raise ValueError(f"{self.s.me_ckpt.path}: the ME model must use the 17 OpenFace AUs "
                             f"(has {model.schema.key})")
        count = 0
        for emotion, clip_ids in selection.items():
            for clip_id in clip_ids:
                try:
                    curve = load_clip_curve(clip_id, self.s.aus_dirs, front_end)
                except (FileNotFoundError, ValueError) as err:
                    self.problems.append(f"{clip_id} skipped: {err}")
                    continue
                self.problems.extend(curve.notes)
                for face in neutrals:
                    out = self.s.test_dir / emotion / self.s.me_expr_name / clip_id / face.name
                    try:
                        self.write_sequence(model, face, curve, out)
                    except NoTemplateFaceError as err:  # motion transfer needs landmarks on the neutral face
                        self.problems.append(f"{clip_id} x {face.name} skipped: {err}")
                        continue
                    count += 1
        return count

    def write_sequence(self, model: SequenceGenerator, face: NeutralFace, curve, out: Path) -> None:
        template = Template(out, face.aus, face.crop)
        kind = self.s.motion.resolve(has_frames=False)
        if kind == "none":
            frames = model.generate(model.load_template(template), curve.aus, template_aus=face.aus)
        else:
            frames = self.moved_frames(model, template, face, curve)
        out.mkdir(parents=True, exist_ok=True)
        media.write_png_frames(frames, out, ext=".jpg")
        fps = self.s.fps or curve.fps
        media.plot_au_curves(out / "au_curves.png", OPENFACE_AUS, curve.aus, None, fps, None)
        if self.s.videos:
            media.write_mp4(frames, out / "target.mp4", fps)
            still = np.repeat(face.crop[None], len(frames), axis=0)
            media.write_mp4(media.side_by_side(still, frames), out / "compare.mp4", fps)

    def moved_frames(self, model: SequenceGenerator, template: Template, face: NeutralFace, curve) -> np.ndarray:
        """Motion transfer (docs/motion.md): the clip's ME curve moves the neutral face through the per-AU motion
        primitives; with --texture generator the ME model adds its change from the curve's first frame."""
        from motion.primitives import load_primitives

        mover = TemplateMotion.from_image(face.crop, f"the neutral face of {face.name}")
        primitives = load_primitives()
        change = curve.aus - curve.aus[:1]
        moved = mover.from_canonical(primitives.displacements(change, OPENFACE_AUS), primitives.reference)
        textures: list[np.ndarray | None] = [None] * len(moved)
        if self.s.motion.texture_for("aus") == "generator":
            generated = model.generate(model.load_template(template), curve.aus, template_aus=face.aus)
            size = face.crop.shape[0]
            textures = [texture_change(generated[0], g, size) for g in generated]
        return np.stack([mover.render(d, tex) for d, tex in zip(moved, textures)])

    def load_summary(self) -> dict[str, list[str]]:
        path = self.s.me_summary or self.s.test_dir / "me_summary.json"
        if path.is_file():
            summary = json.loads(path.read_text())
            unknown = [k for k in summary if k not in SUMMARY_EMOTIONS]
            if unknown:
                raise ValueError(f"{path}: unknown emotion(s) {unknown}; known: {', '.join(SUMMARY_EMOTIONS)}")
            return summary
        if not self.s.me_annotations:
            raise FileNotFoundError(f"no {path}: give --me_summary, or --me_annotations with the datasets' "
                                    f"annotation sheets to build it")
        clips = [clip for sheet in self.s.me_annotations for clip in read_annotations(sheet)]
        summary = build_me_summary(clips)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1) + "\n")
        log.info("built %s from %d annotated clips", path, len(clips))
        return summary


def select_clips(summary: dict[str, list[str]], emotions: str, samples: int, seed: int,
                 problems: list[str]) -> dict[str, list[str]]:
    """``--me_emotions all|a,b`` x ``--me_samples N|-1``, sampled reproducibly with the run's seed."""
    wanted = list(SUMMARY_EMOTIONS) if emotions == "all" else [e.strip() for e in emotions.split(",") if e.strip()]
    unknown = [e for e in wanted if e not in SUMMARY_EMOTIONS]
    if unknown:
        raise ValueError(f"unknown emotion(s) {unknown} in --me_emotions; known: {', '.join(SUMMARY_EMOTIONS)}")
    rng = random.Random(seed)
    selection = {}
    for emotion in wanted:
        clips = list(summary.get(emotion, []))
        if samples >= 0 and samples > len(clips):
            problems.append(f"{emotion}: {samples} clips asked, {len(clips)} exist: all of them are used")
        selection[emotion] = clips if samples < 0 or samples >= len(clips) else rng.sample(clips, samples)
    return selection
