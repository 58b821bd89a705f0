"""Reading a test pair, for test mode and for_megc2021.py alike: the driving clip and the template face, with their
AUs from the tables, OpenFace's CSVs, a real OpenFace run now, or the built-in front end (``--pre_treatment``)."""
from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from catalog.au_schema import AUSchema
from data.sequences import DrivingClip, Template, read_clip_folder, read_pair_folder, template_from_image


def load_pair(folder: Path | None, schema: AUSchema, *, re_code: bool, au_backend: str = "table",
              openface_bin: str | None = None, template: str | None = None, template_image: Path | None = None,
              name: str | None = None, clip_aus: bool = False) -> tuple[DrivingClip, Template]:
    """A driving clip and its template, for test mode and for_megc2021.py alike: a pair folder (imgs/ + imgs2/,
    ``template`` picking a name in imgs2/), or a clip folder and ``template_image`` (then the clip is called
    ``name``). With --pre_treatment, ``au_backend`` measures the AUs instead of reading the tables; ``clip_aus``
    (--clip_aus) clips out-of-range AUs instead of stopping."""
    with measurement_backend(au_backend, folder, openface_bin) as backend:
        if folder is None:
            raise ValueError("test mode needs --data_root (a folder with imgs/ and imgs2/) or --aus_matrix")
        need_presence = re_code or backend.csv_only  # re-encoding reads OpenFace's presence flags
        if template_image is None:
            return read_pair_folder(folder, schema, need_presence=need_presence, template=template,
                                    front_end=backend.front_end, csv_root=backend.csv_root,
                                    use_table=not backend.csv_only, clip_aus=clip_aus)
        clip, _ = read_clip_folder(folder, schema, need_presence=need_presence, front_end=backend.front_end,
                                   csv_root=backend.csv_root, use_table=not backend.csv_only, clip_aus=clip_aus)
        clip.name = name or clip.name
        return clip, template_from_image(template_image, schema, backend.front_end)


@dataclass
class Backend:
    """Where --pre_treatment gets AUs: the built-in front end, or OpenFace CSVs (run now, or already there)."""

    front_end: object | None = None
    csv_root: Path | None = None
    csv_only: bool = False


@contextlib.contextmanager
def measurement_backend(kind: str, data_root: Path | None, openface_bin: str | None):
    if kind == "auto":  # a real OpenFace first, where one is installed
        from openface.backend_choice import choose_au_backend

        kind = choose_au_backend(openface_bin) if data_root is not None else "builtin"
    if kind == "builtin":
        from openface.frontend import FaceFrontEnd

        with FaceFrontEnd() as front_end:
            yield Backend(front_end=front_end)
    elif kind == "openface":
        if data_root is None:
            raise ValueError("--au_backend openface needs --data_root (OpenFace runs on its imgs/ and imgs2/)")
        from openface.runner import run_face_landmark_img

        with tempfile.TemporaryDirectory(prefix="openface_") as tmp:
            for images, csvs in (("imgs", "csvs"), ("imgs2", "csvs2")):
                if (data_root / images).is_dir():
                    run_face_landmark_img(data_root / images, Path(tmp) / csvs, openface_bin=openface_bin)
            yield Backend(csv_root=Path(tmp), csv_only=True)
    elif kind == "csv":
        yield Backend(csv_only=True)
    else:  # "table": AU table when present, else csvs/
        yield Backend()
