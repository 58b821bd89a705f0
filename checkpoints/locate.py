"""Which file a ``--ckpt`` / ``--ckpt_dir`` + ``--load_epoch`` names: a file as it is, or in a run folder this
toolkit's ``epoch_NNNN.pth`` / ``latest.pth``, or a seed's generator file (its critic is found beside it by name).
Only names are looked at here: no file is opened."""
from __future__ import annotations

import logging
from pathlib import Path

from checkpoints import native
from checkpoints.seed_formats import ALIASES, LAYOUTS, first_few, layout_from_name, normalise_format

log = logging.getLogger(__name__)


def find_checkpoint(source: str | Path, load_epoch="latest", fmt: str = "native") -> Path:
    """A checkpoint file from a file, or from a run folder (native or a seed's) + epoch N / latest.

    ``fmt`` (``--ckpt_format``) "native" finds only this toolkit's files; "auto" prefers them and otherwise looks
    for a seed's file names; a seed format (ulme, replicate, ganimation, n2me) looks only for that seed's names."""
    fmt = normalise_format(fmt)
    source = Path(source)
    if source.is_file():
        return source
    if not source.is_dir():
        raise FileNotFoundError(f"no checkpoint or run folder at {source}")
    has_native = bool(native.epoch_files(source)) or (source / native.LATEST).is_file()
    if fmt == "native" or (fmt == "auto" and has_native):
        return native.resolve_run(source, load_epoch)
    return _seed_generator(source, load_epoch, fmt)


def _seed_generator(source: Path, load_epoch, fmt: str) -> Path:
    found = scan_folder(source)
    if fmt != "auto":
        found = {k: v for k, v in found.items() if k == ALIASES.get(fmt, fmt)}
    if not found:
        if fmt != "auto":
            layout = LAYOUTS[ALIASES.get(fmt, fmt)]
            raise FileNotFoundError(f"{source}: no {layout.title} files ({layout.pattern}) for --ckpt_format {fmt}")
        raise FileNotFoundError(_no_checkpoint_message(source))
    if len(found) > 1:
        kinds = ", ".join(LAYOUTS[k].title for k in found)
        raise ValueError(f"{source} holds checkpoints of several formats ({kinds}): pass --ckpt_format")
    name, epochs = next(iter(found.items()))
    generators = {e: roles["G"] for e, roles in epochs.items() if "G" in roles}
    if not generators:
        raise FileNotFoundError(f"{source}: only critic files ({LAYOUTS[name].file_name('<E>', 'D')}); test mode "
                                f"and fine-tuning need the generator ({LAYOUTS[name].file_name('<E>', 'G')})")
    epoch = native.parse_epoch(load_epoch)
    if epoch is None:
        epoch = max(generators)
    if epoch not in generators:
        raise FileNotFoundError(f"{source} has no {LAYOUTS[name].title} generator for epoch {epoch} "
                                f"(epochs saved: {', '.join(map(str, sorted(generators)))})")
    log.info("%s: %s checkpoint of epoch %d (%s)", source, LAYOUTS[name].title, epoch, generators[epoch].name)
    return generators[epoch]


def scan_folder(folder: Path) -> dict[str, dict[int, dict[str, Path]]]:
    """layout name -> epoch -> role -> file, for the seed file names found in ``folder``."""
    found: dict = {}
    for p in sorted(folder.iterdir()):
        layout, role, epoch = layout_from_name(p)
        if layout is not None and p.is_file():
            found.setdefault(layout.name, {}).setdefault(int(epoch), {})[role] = p
    return found


def _no_checkpoint_message(folder: Path) -> str:
    names = "; ".join(f"{lay.title}: {lay.pattern}" for lay in LAYOUTS.values())
    hint = ""
    nested = [p for p in sorted(folder.glob("*/*")) + sorted(folder.glob("*")) if p.is_dir() and scan_folder(p)]
    if nested:
        hint = f". Sub-folders that hold checkpoints: {first_few([str(p.relative_to(folder)) for p in nested], 5)}"
    return (f"{folder} holds no checkpoints: neither this toolkit's (epoch_NNNN.pth, {native.LATEST}) nor a seed's "
            f"({names}){hint}")
