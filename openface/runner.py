"""Run a real OpenFace 2.x install (FaceLandmarkImg per image, FeatureExtraction per sequence) and read its CSVs.

This module stages the inputs, runs the tool and collects the results; finding and starting the binary is in
openface/openface_bin.py, reading the CSVs and choosing among several faces in openface/openface_outputs.py.

OpenFace cannot be installed from a package registry. Users who built or downloaded it point the toolkit at it with
``--openface_bin`` or ``$OPENFACE_BIN``; everything else works without it (``--au_backend builtin``).

What this module relies on, as the OpenFace 2.x sources behave (ImageCapture.cpp, SequenceCapture.cpp,
RecorderOpenFace.cpp, RecorderOpenFaceParameters.cpp, FaceAnalyserParameters.cpp):

- Input is ``-f FILE`` or ``-fdir DIR``. ``-fdir`` keeps only ``.jpg .jpeg .png .bmp`` (compared case-sensitively, so
  ``.JPG`` is skipped) in plain lexicographic order (``img10`` before ``img2``). Paths go through ``std::string``,
  which on Windows cannot hold every non-ASCII name. So the runner links the images into a private folder under
  ASCII names that keep their order, runs OpenFace there with relative paths, and gives the outputs their original
  names back.
- Output goes to ``-out_dir DIR``: ``<stem>.csv`` and ``<stem>_of_details.txt`` for each image, or ``-of NAME`` for a
  sequence. FaceLandmarkImg writes **no CSV** for an image without a face. When there are several faces it writes one
  row for each (``face`` = 0, 1, ...).
- With no output flag at all OpenFace writes everything (HOG, tracked images, aligned faces). ``-aus`` keeps it to the
  AU columns. ``-2Dfp`` adds the landmarks ``x_0..x_67, y_0..y_67`` (needed to pick the largest face).
- The CSV header is ``", "``-separated up to 2.1 and ``","``-separated in 2.2. Columns are always read by name.
- Models are looked up in the working directory, then next to ``argv[0]``. So the tool is run by its real absolute
  path, never a copy or a link.
- Errors are printed on stdout rather than stderr. One unreadable image stops the whole FaceLandmarkImg batch with
  exit code 1.
- FaceLandmarkImg uses the static AU models. FeatureExtraction uses the dynamic ones, with a per-sequence
  normalisation. So the same frame gets different AU values from the two tools: do not mix them in one table.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from media.images import natural_key
from openface.csv_io import OpenFaceRows
from openface.openface_bin import (
    IMAGE_TOOL,
    SEQUENCE_TOOL,
    OpenFaceError,
    check_extra_args,
    find_openface_bin,
    run_tool,
)
from openface.openface_outputs import (
    FACE_PICKS,
    au_table_from_rows,
    has_data_rows,
    pick_face,
    read_au_csv,
    read_columns,
    select_rows,
)

# The only extensions OpenFace's folder readers accept (it compares them case-sensitively; we do not).
OPENFACE_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

# Names given to staged inputs: ASCII letters then digits, so OpenFace's lexicographic order is the input order.
_STAGED_NAME = re.compile(r"^([a-z]+\d{6,})(.*)$", re.DOTALL)


# ---------------------------------------------------------------------------------------------------------------
# Staging inputs under ASCII names, and bringing the outputs back under the original names


def _readable_by_openface(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in OPENFACE_IMAGE_EXTENSIONS


def _list_frames(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if _readable_by_openface(p)), key=lambda p: natural_key(p.name))


def _collect_images(images: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """A folder (its .jpg/.jpeg/.png/.bmp files), one image, or a list of images. Stems must be unique."""
    if isinstance(images, (str, os.PathLike)):
        given = Path(images)
        if given.is_dir():
            paths = _list_frames(given)
            if not paths:
                raise FileNotFoundError(f"{given}: no images OpenFace can read "
                                        f"({', '.join(OPENFACE_IMAGE_EXTENSIONS)})")
            return paths
        paths = [given]
    else:
        paths = [Path(p) for p in images]
    if not paths:
        raise ValueError("no images given")
    absent = [str(p) for p in paths if not p.is_file()]
    if absent:
        raise FileNotFoundError(f"image(s) not found: {', '.join(absent[:10])}")
    unreadable = [p.name for p in paths if p.suffix.lower() not in OPENFACE_IMAGE_EXTENSIONS]
    if unreadable:
        raise ValueError(f"OpenFace reads only {', '.join(OPENFACE_IMAGE_EXTENSIONS)}; convert these first: "
                         f"{', '.join(unreadable[:10])}")
    _check_unique_stems(paths)
    return paths


def _check_unique_stems(paths: list[Path]) -> None:
    # OpenFace names each CSV after the image stem, and AU tables are keyed by it: two "a.*" would overwrite.
    seen: dict[str, Path] = {}
    for path in paths:
        if path.stem in seen:
            raise ValueError(f"two images share the name '{path.stem}': {seen[path.stem]} and {path}")
        seen[path.stem] = path


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.symlink(src.resolve(), dst)
    except OSError:  # no symlink rights (Windows without developer mode), or a filesystem without links
        shutil.copyfile(src, dst)


def _stage(paths: list[Path], in_dir: Path, prefix: str) -> dict[str, Path]:
    """Link the inputs into in_dir as <prefix>000000.<ext>, ... in the given order; staged stem -> original path."""
    width = max(6, len(str(len(paths))))
    staged = {}
    for i, src in enumerate(paths):
        stem = f"{prefix}{i:0{width}d}"
        _link_or_copy(src, in_dir / f"{stem}{src.suffix.lower()}")
        staged[stem] = src
    return staged


def _move_outputs(staged_out: Path, out_dir: Path, names: Mapping[str, str]) -> None:
    """Move everything OpenFace wrote (CSV, _of_details.txt, _aligned/, .hog, ...) to out_dir under original names."""
    for entry in staged_out.iterdir():
        match = _STAGED_NAME.match(entry.name)
        if match and match.group(1) in names:
            target = out_dir / (names[match.group(1)] + match.group(2))
        else:
            target = out_dir / entry.name
        _remove(target)
        shutil.move(str(entry), str(target))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


# ---------------------------------------------------------------------------------------------------------------
# FaceLandmarkImg: one CSV per image


@dataclass
class ImageResults:
    """What FaceLandmarkImg found in a batch of images."""

    rows: dict[str, OpenFaceRows]  # image stem -> the chosen face (one row); the CSV in out_dir keeps every face
    n_faces: dict[str, int]  # image stem -> number of face rows OpenFace wrote
    missing: list[Path]  # images without any face: no CSV, or a CSV with no rows
    out_dir: Path

    def au_table(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        return au_table_from_rows(self.rows)


def run_face_landmark_img(images: str | os.PathLike | Iterable[str | os.PathLike], out_dir: str | os.PathLike,
                          openface_bin: str | os.PathLike | None = None, extra_args: Sequence[str] = (),
                          pick: str = "confidence", timeout: float | None = None) -> ImageResults:
    """Run FaceLandmarkImg on a folder, one image or a list of images; read the CSVs by column name.

    ``out_dir`` receives ``<stem>.csv`` and ``<stem>_of_details.txt`` per image, as OpenFace itself names them. A CSV
    left there by an earlier run for an image where no face is found now is removed, so out_dir matches this run.
    Several faces: ``pick`` chooses one (see pick_face; "largest" adds -2Dfp). ``extra_args`` go to OpenFace
    unchanged, e.g. ["-simalign", "-simsize", "128", "-nomask", "-format_aligned", "jpg"]. ``timeout`` in seconds
    (None: no limit; OpenFace needs about 0.1-0.5 s per image).
    """
    if pick not in FACE_PICKS:
        raise ValueError(f"unknown face pick '{pick}', expected one of {FACE_PICKS}")
    paths = _collect_images(images)
    flags = ["-aus"] + (["-2Dfp"] if pick == "largest" else [])
    flags += [a for a in check_extra_args(extra_args) if a not in flags]
    tool = find_openface_bin(openface_bin, IMAGE_TOOL)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    # Staging inside out_dir: same filesystem, so moving the results back is a rename.
    with tempfile.TemporaryDirectory(prefix=".openface_run_", dir=out_dir) as tmp:
        work = Path(tmp)
        (work / "in").mkdir()
        (work / "out").mkdir()
        staged = _stage(paths, work / "in", "img")
        names = {stem: src.stem for stem, src in staged.items()}
        display = {stem: str(src) for stem, src in staged.items()}
        try:
            run_tool([str(tool), "-fdir", "in", "-out_dir", "out", *flags], work, timeout, display)
        finally:
            # Even after a failure, keep the CSVs OpenFace wrote before it stopped.
            produced = {stem for stem in staged if (work / "out" / f"{stem}.csv").exists()}
            _move_outputs(work / "out", out_dir, names)
    return _read_image_results(staged, produced, out_dir, pick)


def _read_image_results(staged: Mapping[str, Path], produced: set[str], out_dir: Path, pick: str) -> ImageResults:
    rows, n_faces, missing = {}, {}, []
    for stem, src in staged.items():
        csv_path = out_dir / f"{src.stem}.csv"
        if stem not in produced:
            _remove(csv_path)  # stale output of an earlier run
            missing.append(src)
            continue
        if not has_data_rows(csv_path):
            missing.append(src)
            continue
        found = read_au_csv(csv_path, IMAGE_TOOL)
        n_faces[src.stem] = len(found.confidence)
        rows[src.stem] = select_rows(found, pick_face(found, pick))
    return ImageResults(rows, n_faces, missing, out_dir)


# ---------------------------------------------------------------------------------------------------------------
# FeatureExtraction: one CSV per sequence


@dataclass
class SequenceResults:
    """FeatureExtraction's output for one sequence: one row per frame, in frame order."""

    rows: OpenFaceRows
    frame: np.ndarray  # OpenFace's 1-based frame numbers
    frame_names: list[str]  # frame file stem of each row ("frame_000001" style for a video)
    success: np.ndarray  # bool: OpenFace tracked the face in that frame
    timestamp: np.ndarray  # seconds (0 for every frame of an image folder: OpenFace knows no frame rate there)
    csv_path: Path

    @property
    def failed(self) -> list[str]:
        """Frames where tracking failed (success == 0): their AU values are not measurements."""
        return [name for name, ok in zip(self.frame_names, self.success) if not ok]

    def per_frame(self, include_failed: bool = False) -> dict[str, OpenFaceRows]:
        """Frame name -> its one-row OpenFaceRows; feed to au_table_from_rows for an AU table."""
        return {name: select_rows(self.rows, i) for i, name in enumerate(self.frame_names)
                if include_failed or self.success[i]}


def run_feature_extraction(source: str | os.PathLike, out_dir: str | os.PathLike,
                           openface_bin: str | os.PathLike | None = None, name: str | None = None,
                           extra_args: Sequence[str] = (), timeout: float | None = None) -> SequenceResults:
    """Run FeatureExtraction on a folder of frames (as one sequence) or a video file; read its CSV by column name.

    Frames are taken in natural order (frame2 before frame10; OpenFace alone would sort them as text). The CSV is
    ``out_dir/<name>.csv`` (name: the folder or video name by default). Frames where OpenFace lost the face
    (success == 0) are listed in ``.failed``.
    """
    source = Path(source)
    flags = ["-aus"] + [a for a in check_extra_args(extra_args) if a != "-aus"]
    name = name or (source.name if source.is_dir() else source.stem)
    tool = find_openface_bin(openface_bin, SEQUENCE_TOOL)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix=".openface_run_", dir=out_dir) as tmp:
        work = Path(tmp)
        (work / "out").mkdir()
        input_args, staged = _stage_sequence(source, work)
        names = {"seq000000": name}
        display = {"seq000000": name, **{stem: str(src) for stem, src in staged.items()}}
        try:
            run_tool([str(tool), *input_args, "-out_dir", "out", "-of", "seq000000", *flags], work, timeout, display)
        finally:
            _move_outputs(work / "out", out_dir, names)
    frame_names = [src.stem for src in staged.values()] if source.is_dir() else None
    return _read_sequence_results(out_dir / f"{name}.csv", frame_names)


def _stage_sequence(source: Path, work: Path) -> tuple[list[str], dict[str, Path]]:
    """Input arguments for FeatureExtraction, and the staged stem -> original path of each frame or the video."""
    if source.is_dir():
        frames = _list_frames(source)
        if not frames:
            raise FileNotFoundError(f"{source}: no frames OpenFace can read ({', '.join(OPENFACE_IMAGE_EXTENSIONS)})")
        (work / "in").mkdir()
        return ["-fdir", "in"], _stage(frames, work / "in", "frame")
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such frame folder or video")
    video = work / f"video000000{source.suffix.lower()}"
    _link_or_copy(source, video)
    return ["-f", video.name], {"video000000": source}


def _read_sequence_results(csv_path: Path, frame_names: list[str] | None) -> SequenceResults:
    if not csv_path.exists() or not has_data_rows(csv_path):
        raise OpenFaceError(f"{SEQUENCE_TOOL} wrote no frames to {csv_path} (unreadable video or empty folder?)")
    rows = read_au_csv(csv_path, SEQUENCE_TOOL)
    extra = read_columns(csv_path, ("frame", "timestamp", "success"))
    n = len(rows.confidence)
    frame = extra.get("frame", np.arange(1, n + 1)).astype(int)
    success = extra["success"] > 0.5 if "success" in extra else np.ones(n, dtype=bool)
    timestamp = extra.get("timestamp", np.zeros(n))
    return SequenceResults(rows, frame, _frame_names(frame, frame_names), success, timestamp, csv_path)


def _frame_names(frame: np.ndarray, names: list[str] | None) -> list[str]:
    if names is None:
        return [f"frame_{k:06d}" for k in frame]
    return [names[k - 1] if 1 <= k <= len(names) else f"frame_{k:06d}" for k in frame]
