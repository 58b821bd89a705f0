"""The wrong-clip control: every result is also scored against another clip's source.

A metric that compares the result's movement with the source's (``CONTROLLED`` in ``metrics/registry.py``) is only
informative if it scores the right clip clearly better than a wrong one: a smooth rise-and-fall of similar size
correlates with almost any micro-expression. So each result gets ``<metric>_control`` values, the same metric against
a different source clip, and the batch summary says on how many pairs the right clip beat the wrong one.

Which clip: the distinct source clips known to the batch (the results' own sources and every clip under
``--sources``) are identified by content, not by name (the 12 MEGC2021 pair folders hold 6 clips, each under two
template names), put in sorted order of their names, and each result's control is the next clip after its own source
in that order (wrapping round). Deterministic, and never the same clip under another name. A clip of another length
is put on the result's frames by normalised time, as the right source is (``metrics/timeline.py``).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from media.images import natural_key
from metrics.inputs import ResultEntry, Sequence, source_candidates

VIDEO_HEAD_BYTES = 1 << 20  # a video clip is identified by its size and first MiB


def clip_id(seq: Sequence) -> str:
    """A digest of a clip's content: its frame count and the bytes of its first, middle and last frame (a frame
    folder), or its size and first MiB (a video). Byte-identical copies under other names get the same id."""
    digest = hashlib.blake2b(digest_size=12)
    try:
        if seq.frames is not None:
            digest.update(str(len(seq.frames)).encode())
            for i in sorted({0, len(seq.frames) // 2, len(seq.frames) - 1} if seq.frames else ()):
                digest.update(Path(seq.frames[i]).read_bytes())  # in frame order: the same bytes give the same id
        else:
            digest.update(str(seq.path.stat().st_size).encode())
            with open(seq.path, "rb") as fh:
                digest.update(fh.read(VIDEO_HEAD_BYTES))
    except OSError:  # its pair reports the unreadable clip when it loads it; here it is a clip of its own
        return f"unreadable {seq.path}"
    return digest.hexdigest()


def _order(seq: Sequence) -> tuple:
    return natural_key(seq.name), natural_key(str(seq.path))


def distinct_clips(entries: list[ResultEntry], sources: Path | None) -> list[tuple[str, Sequence]]:
    """(clip id, the sequence that stands for it), sorted by name. A clip that is some result's source is
    represented by that sequence (its measurements are then shared with that pair's)."""
    used = [e.source for e in entries if e.source is not None]
    pool = list(used)
    if sources is not None:
        pool += [s for bucket in source_candidates(Path(sources)).values() for s in bucket]
    clips: dict[str, Sequence] = {}
    ids: dict[str, str] = {}
    for seq in sorted(pool, key=lambda s: (s not in used, _order(s))):  # used ones first: they represent the clip
        key = str(seq.path)
        if key not in ids:
            ids[key] = clip_id(seq)
        clips.setdefault(ids[key], seq)
    return sorted(clips.items(), key=lambda item: _order(item[1]))


def attach_controls(entries: list[ResultEntry], sources: Path | None) -> list[str]:
    """Set each entry's ``control`` to the next distinct clip after its source; batch notes when there is none."""
    clips = distinct_clips(entries, sources)
    if len(clips) < 2:
        if any(e.source is not None for e in entries):
            return ["wrong-clip control absent: the batch knows only one distinct source clip (give --sources a "
                    "folder with more clips)"]
        return []
    position = {clip: i for i, (clip, _) in enumerate(clips)}
    ids: dict[str, str] = {}
    for entry in entries:
        if entry.source is None:
            continue
        key = str(entry.source.path)
        own = ids.setdefault(key, clip_id(entry.source))
        entry.control = clips[(position[own] + 1) % len(clips)][1]
    return []
