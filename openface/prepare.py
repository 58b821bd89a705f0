"""Prepare a training or test set with the built-in front end: aligned crops + AU table + a report.

    python -m openface.prepare INPUT OUT [--size 128] [--aus_schema openface17|n2me18] [--workers 2]
                               [--clips] [--fps 200]

INPUT is a folder of photos, a folder of frame folders (any depth), a video, or a folder of videos. Photos are
measured one by one (the estimator's per-image mode); the frames of a video, and with ``--clips`` the images of
each folder (in natural order, the first being the onset), are one clip each and get the sequence mode's AUs
(movement from the first frame; ``--fps`` for frame folders, a video's own rate otherwise). OUT receives:

    imgs/<name>.png      aligned crops (canonical similarity alignment, --size px)
    aus.csv              AU table (17 OpenFace AUs, full precision; with n2me18 also AU27*, N2ME's mouth opening
                         scaled to 0..5)
    presence.csv         OpenFace-style presence flags (intensity >= 1)
    train_ids.txt, test_ids.txt   a split by first folder (person / subject / clip), stable across re-runs
    faces.jsonl          one record per input: per-image AUs, the sequence mode's sources, crop matrix, pose,
                         sharpness, or why it was rejected
    rejected.csv         rejected inputs and the reason (no face, not frontal, blurred, unreadable, ...)
    contact_sheet.png    the first 64 crops

Re-running with the same OUT skips every input already in faces.jsonl, so an interrupted run resumes (a video
from its last recorded frame: each record is written as soon as it is measured). Each record keeps its input's size
and modification time; on resume an input that was replaced since is measured again, and the records of an input
that is gone are dropped (with a line saying how many). A video that cannot be decoded to its end is rejected whole:
its frames read before the failure stay out of the tables. One process at a time writes an OUT (``OUT/.lock``).
Names: the input's path relative to INPUT with "/" replaced by "__" (video frames: <video>__f00001).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import multiprocessing as mp
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from catalog.au_schema import MOUTH_OPEN, OPENFACE_AUS, SCHEMAS
from catalog.datasets import fps_summary
from media.folder_lock import FolderLock
from media.images import IMAGE_EXTENSIONS, BadImageError, deterministic_split, load_rgb, natural_key
from media.video import GIF_EXTENSIONS, VIDEO_EXTENSIONS, BadVideoError, iter_frames, video_fps
from openface.au_estimator import PRESENCE_THRESHOLD, AUEstimator, au_features, calibration_in_use
from openface.au_sequence import source_values


@dataclass(frozen=True)
class Item:
    name: str
    path: Path
    frame: int | None = None  # frame index for video inputs
    clip: str | None = None  # the clip an image belongs to (--clips), None for a photo


CLIP_EXTENSIONS = VIDEO_EXTENSIONS + GIF_EXTENSIONS  # each one clip (a GIF decodes frame by frame, as a video)


def discover(root: Path) -> list[Path]:
    """Images, videos and GIFs under ``root``; symlinked folders are followed (once each: a link loop is not)."""
    if root.is_file():
        return [root]
    files, seen = [], set()
    for here, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(here)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        files += [Path(here) / n for n in names if Path(n).suffix.lower() in IMAGE_EXTENSIONS + CLIP_EXTENSIONS]
    return sorted(files, key=lambda p: natural_key(str(p.relative_to(root))))


def is_clip_file(path: Path) -> bool:
    return path.suffix.lower() in CLIP_EXTENSIONS


def input_stat(path: Path) -> list[int]:
    """What tells a replaced input from the one measured: its size and modification time."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def item_name(root: Path, path: Path) -> str:
    rel = path.name if root.is_file() else str(path.relative_to(root).with_suffix(""))
    return rel.replace("/", "__").replace(" ", "_")


# ---------------------------------------------------------------- workers
_FRONT_END = None
_OUT: Path | None = None
_LOG_LOCK = None


def _init_worker(size: int, face: str, out: Path, lock) -> None:
    global _FRONT_END, _OUT, _LOG_LOCK
    from openface.frontend import FaceFrontEnd

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the main process stops the pool and says so in one line

    _FRONT_END = FaceFrontEnd(size=size, face_choice=face)
    _OUT, _LOG_LOCK = out, lock


def _keep(record: dict, crop: np.ndarray | None, item: Item) -> None:
    """Write one result now (the crop first, whole, then its record), so that memory stays one frame and an
    interrupted run keeps everything measured so far."""
    record["input_stat"] = input_stat(item.path)
    if crop is not None:
        path = _OUT / "imgs" / f"{record['name']}.png"
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            Image.fromarray(crop).save(tmp, format="PNG")
            os.replace(tmp, path)
        except BaseException:  # a full disk: no partial PNG left behind
            tmp.unlink(missing_ok=True)
            raise
    with _LOG_LOCK, open(_OUT / "faces.jsonl", "a") as log:
        log.write(json.dumps(record) + "\n")


def _measure(name: str, rgb: np.ndarray, source: str, clip: str | None = None,
             fps: float | None = None) -> tuple[dict, np.ndarray | None]:
    """(record, aligned crop); the crop is None when no face was found."""
    from openface.frontend import NoFaceError

    try:
        m = _FRONT_END.measure(rgb, source)
    except NoFaceError:
        return {"name": name, "source": source, "status": "rejected", "reason": "no face found", "clip": clip}, None
    record = {"name": name, "source": source, "status": "ok" if not m.problems else "rejected",
              "reason": "; ".join(m.problems), "intensity": m.intensity.tolist(), "clip": clip, "fps": fps,
              "scores": au_features(m.face).tolist(),
              "sources": source_values(m.face.landmarks, m.face.blendshapes).tolist(),
              "presence": m.presence.tolist(), "mouth_opening": round(m.mouth_opening, 3),
              "faces_found": m.faces_found, "yaw_pitch_roll": [round(v, 2) for v in m.yaw_pitch_roll],
              "sharpness": round(m.sharpness, 1), "crop": m.crop.to_dict(), "size": list(rgb.shape[:2])}
    return record, m.crop.image


def _process_image(item: Item) -> None:
    try:
        rgb = load_rgb(item.path)
    except BadImageError as err:
        _keep({"name": item.name, "source": str(item.path), "status": "rejected", "reason": str(err)}, None, item)
        return
    _keep(*_measure(item.name, rgb, str(item.path), item.clip), item)


def _process_video(item: Item, done: set[str]) -> None:
    """One record per frame not yet ``done``, each written as it is measured. A video that cannot be decoded to
    its end gets one rejected record (``"video": true``): its frames recorded before it stay out of the tables, so
    a clip is read whole or not at all, and the other inputs go on."""
    try:
        fps = video_fps(item.path)
        for i, rgb in enumerate(iter_frames(item.path)):
            name = f"{item.name}__f{i + 1:05d}"
            if name not in done:
                _keep(*_measure(name, rgb, f"{item.path}#{i + 1}", item.name, fps), item)
    except BadVideoError as err:
        _keep({"name": item.name, "source": str(item.path), "status": "rejected", "reason": str(err),
               "video": True}, None, item)


def _process(args) -> None:
    item, done = args
    if is_clip_file(item.path):
        _process_video(item, done)
    else:
        _process_image(item)


# ---------------------------------------------------------------- outputs
def load_done(records_path: Path) -> dict[str, dict]:
    """The records so far. A torn last line (a run killed mid-write) is dropped, with a line saying so, and that
    input is measured again; damage anywhere else is an error naming the file and line."""
    if not records_path.is_file():
        return {}
    lines = records_path.read_text().splitlines()
    records = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            records[rec["name"]] = rec
        except (ValueError, KeyError, TypeError) as err:
            if number == len(lines):
                print(f"{records_path}: line {number} was cut short (a run stopped while writing it); that input "
                      f"is measured again", file=sys.stderr)
                _rewrite_records(records_path, list(records.values()))
                break
            raise ValueError(f"{records_path}: line {number} is not a record ({err}); delete that line (its input "
                             f"is then measured again), or use a new OUT") from err
    return records


def _rewrite_records(records_path: Path, records: list[dict]) -> None:
    tmp = records_path.with_name(f".{records_path.name}.tmp{os.getpid()}")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.replace(tmp, records_path)


def _records_of(item: Item, done: dict[str, dict]) -> list[str]:
    if is_clip_file(item.path):
        return [n for n in done if n == item.name or n.startswith(item.name + "__f")]
    return [item.name] if item.name in done else []


def drop_stale(out: Path, done: dict[str, dict], items: list[Item]) -> list[str]:
    """Resume re-checks its inputs: the records of an input replaced since it was measured (another size or
    modification time) and of an input that is gone are removed from faces.jsonl (with their crops), so the first
    is measured again and the second leaves the tables. Records written before inputs were recorded stay."""
    keep: set[str] = set()
    for item in items:
        names = _records_of(item, done)
        current = input_stat(item.path)
        if all(done[n].get("input_stat", current) == current for n in names):
            keep.update(names)
    stale = [n for n in done if n not in keep]
    if stale:
        for name in stale:
            done.pop(name)
            (out / "imgs" / f"{name}.png").unlink(missing_ok=True)
        _rewrite_records(out / "faces.jsonl", list(done.values()))
        print(f"{out}: {len(stale)} earlier record(s) dropped, their input changed or is gone (e.g. {stale[0]})",
              file=sys.stderr)
    return stale


def usable(records: list[dict]) -> list[dict]:
    """The records the tables list: a video rejected as a whole takes its frames with it, and a frame of another
    size than its clip's first is rejected (the sequence mode measures movement from the first frame: a frame from
    another recording or crop would read as a large movement and become the apex)."""
    broken = {r["name"] for r in records if r.get("video") and r["status"] != "ok"}
    kept = [r for r in records if r.get("clip") not in broken]
    first: dict[str, dict] = {}
    for r in sorted((r for r in kept if r["status"] == "ok" and r.get("clip") and r.get("size")),
                    key=lambda r: natural_key(r["name"])):
        first.setdefault(r["clip"], r)
    return [_other_size(r, first[r["clip"]]) if r.get("clip") in first and r.get("size") and r["status"] == "ok"
            and r["size"] != first[r["clip"]]["size"] else r for r in kept]


def _other_size(record: dict, first: dict) -> dict:
    (h, w), (fh, fw) = record["size"], first["size"]
    return {**record, "status": "rejected",
            "reason": f"{w}x{h} px, but the clip's first frame {first['name']} is {fw}x{fh}: resize or remove it"}


def clip_intensities(ok: list[dict], fps: float | None, estimator: AUEstimator | None = None) -> dict[str, list]:
    """name -> sequence-mode intensities for the frames of every clip (records with a "clip"), in natural frame
    order; photos keep their per-image intensities. A frame folder's rate is ``fps``, a video's its own."""
    estimator = estimator or AUEstimator()
    clips: dict[str, list[dict]] = {}
    for r in ok:
        if r.get("clip") is not None and r.get("sources") is not None and r.get("scores") is not None:
            clips.setdefault(r["clip"], []).append(r)
    out = {}
    for frames in clips.values():
        frames.sort(key=lambda r: natural_key(r["name"]))
        rate = frames[0].get("fps") or fps
        intensity = estimator.clip_intensities(np.array([r["scores"] for r in frames]),
                                               np.array([r["sources"] for r in frames]), rate)
        out.update({r["name"]: row.tolist() for r, row in zip(frames, intensity)})
    return out


def write_tables(out: Path, records: list[dict], schema_key: str, fps: float | None = None) -> int:
    schema = SCHEMAS[schema_key]
    records = usable(records)
    ok = [r for r in records if r["status"] == "ok"]
    sequence = clip_intensities(ok, fps)
    mouth = np.array([r["mouth_opening"] for r in ok]) if ok else np.zeros(0)
    lo, hi = (float(mouth.min()), float(mouth.max())) if len(mouth) else (0.0, 1.0)
    rows = []
    presence = []
    for r in ok:
        intensity = sequence.get(r["name"], r["intensity"])
        values = dict(zip(OPENFACE_AUS, intensity))
        # N2ME: mouth opening min-max scaled over the training set, times 5.
        values[MOUTH_OPEN] = 5.0 * (r["mouth_opening"] - lo) / (hi - lo) if hi > lo else 0.0
        rows.append([r["name"], *(repr(float(values[au])) for au in schema.names)])  # full precision
        presence.append([r["name"], *(int(v >= PRESENCE_THRESHOLD) for v in intensity)])
    _write_csv(out / "aus.csv", ["name", *schema.names], rows)
    _write_csv(out / "presence.csv", ["name", *OPENFACE_AUS], presence)
    _write_csv(out / "rejected.csv", ["name", "source", "reason"],
               [[r["name"], r["source"], r["reason"]] for r in records if r["status"] != "ok"])
    write_id_lists(out, [r["name"] for r in ok])
    return len(ok)


def write_id_lists(out: Path, names: list[str], test_fraction: float = 0.05) -> None:
    """N2ME-style train_ids.txt / test_ids.txt, split by the first folder of each name (a person, subject or
    clip) so that no identity sits on both sides; a stable hash decides, as in data.id_lists."""
    groups = sorted({n.split("__")[0] for n in names})
    _, test_groups = deterministic_split(groups, test_fraction) if len(groups) > 1 else (groups, [])
    held = set(test_groups)
    (out / "train_ids.txt").write_text("".join(f"{n}\n" for n in names if n.split("__")[0] not in held))
    (out / "test_ids.txt").write_text("".join(f"{n}\n" for n in names if n.split("__")[0] in held))


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buf.getvalue())


def prepared_contact_sheet(folder: Path, names: list[str], cols: int = 8, cell: int = 96) -> Image.Image | None:
    names = names[:cols * cols]
    if not names:
        return None
    rows = -(-len(names) // cols)
    sheet = Image.new("RGB", (cols * cell, rows * cell), "white")
    for i, name in enumerate(names):
        with Image.open(folder / f"{name}.png") as img:
            sheet.paste(img.convert("RGB").resize((cell, cell), Image.Resampling.LANCZOS),
                        ((i % cols) * cell, (i // cols) * cell))
    return sheet


def _folder_clip(root: Path, path: Path) -> str:
    """With --clips, the clip of an image is its folder (relative to INPUT)."""
    return item_name(root, path.parent / "x").rsplit("__", 1)[0] if path.parent != root else "."


def _check_unique(items: list[Item]) -> None:
    seen: dict[str, Path] = {}
    clashes = []
    for it in items:
        if it.name in seen:
            clashes.append(f"{seen[it.name]} and {it.path}")
        seen[it.name] = it.path
    if clashes:
        raise ValueError(f"{len(clashes)} input(s) would get the same output name, e.g. {clashes[0]}: rename one")


def prepare(input_path: Path, out: Path, *, size: int = 128, schema: str = "openface17", workers: int = 1,
            face: str = "largest", progress: bool = True, clips: bool = False, fps: float | None = None) -> dict:
    if not input_path.exists():
        raise FileNotFoundError(f"input not found: {input_path}")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"OUT {out} is a file: give a folder (created if missing)")
    items = [Item(item_name(input_path, p), p, clip=_folder_clip(input_path, p) if clips else None)
             for p in discover(input_path)]
    if not items:
        raise FileNotFoundError(f"{input_path} holds no images or videos")
    _check_unique(items)
    (out / "imgs").mkdir(parents=True, exist_ok=True)
    with FolderLock(out, "openface.prepare"):  # a second run into the same OUT is refused, naming the first
        records_path = out / "faces.jsonl"
        done = load_done(records_path)
        drop_stale(out, done, items)
        # Videos are re-opened on resume and skip the frames already done (a video recorded as undecodable is not
        # retried unless it was replaced); images already done are skipped here.
        todo = [(it, set(_records_of(it, done))) for it in items if it.name not in done]
        ctx = mp.get_context("spawn")  # MediaPipe graphs must not be forked
        with ctx.Pool(max(1, workers), initializer=_init_worker, initargs=(size, face, out, ctx.Lock())) as pool:
            bar = tqdm(total=len(todo), desc="prepare", unit="input", disable=not progress)
            for _ in pool.imap(_process, todo, chunksize=1):
                bar.update(1)
            bar.close()
        records = usable(list(load_done(records_path).values()))
        n_ok = write_tables(out, records, schema, fps)
        sheet = prepared_contact_sheet(out / "imgs", [r["name"] for r in records if r["status"] == "ok"])
        if sheet is not None:
            tmp = out / f".contact_sheet.png.tmp{os.getpid()}"
            sheet.save(tmp, format="PNG")
            os.replace(tmp, out / "contact_sheet.png")
    return {"inputs": len(items), "faces": n_ok, "rejected": len(records) - n_ok}


def frame_rate(text: str) -> float:
    """--fps: a finite rate of 1..1000 frames per second (0, negative, nan and inf would mean nothing)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r}: give the clips' frame rate, 1..1000 ({fps_summary()})")
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="photo folder, frame folders, video, or folder of videos")
    p.add_argument("out", help="output folder (created; re-use it to resume)")
    p.add_argument("--size", type=int, default=128, choices=(128, 256))
    p.add_argument("--aus_schema", default="openface17", choices=sorted(SCHEMAS))
    p.add_argument("--workers", type=int, default=1, help="processes (one MediaPipe graph each)")
    p.add_argument("--face", default="largest", choices=("largest", "center"), help="which face when several")
    p.add_argument("--clips", action="store_true",
                   help="each folder of images is one clip (frames in natural order): sequence-mode AUs")
    p.add_argument("--fps", type=frame_rate, default=None,
                   help="frame rate of the --clips folders, 1..1000 (sets the smoothing; videos use their own)")
    p.add_argument("--no_progress", action="store_true")
    args = p.parse_args(argv)
    if args.fps is not None and not args.clips:
        p.error("--fps sets the frame rate of --clips folders; without --clips (photos, videos at their own rate) "
                "it would be ignored")
    start = time.perf_counter()
    try:
        calibration = calibration_in_use()  # a bad $MEGAN_AU_CALIBRATION fails here, before any work
        summary = prepare(Path(args.input), Path(args.out), size=args.size, schema=args.aus_schema,
                          workers=args.workers, face=args.face, progress=not args.no_progress, clips=args.clips,
                          fps=args.fps)
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # read-only or full OUT: what was written so far is whole, and a rerun resumes
        print(f"error: cannot write {args.out}: {err.strerror or err}; free space or choose another OUT (a rerun "
              f"resumes)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: what was measured is kept in {args.out}/faces.jsonl; run the same command to resume",
              file=sys.stderr)
        return 130
    seconds = time.perf_counter() - start
    done = summary["faces"] + summary["rejected"]
    print(f"{summary['faces']} faces aligned, {summary['rejected']} rejected (see {args.out}/rejected.csv) "
          f"from {summary['inputs']} inputs -> {args.out} in {seconds:.1f} s ({done / seconds:.1f} images/s "
          f"with {args.workers} worker(s), start-up included)")
    print(f"AU estimator calibration: {calibration['file']} ({calibration['source']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
