"""Is a pair's result complete? Frame-numbering gaps in the result, a frame count that disagrees with ``run.json``,
and a result without a face in any frame all make a pair's status other than "ok": its metrics are still computed
(on the frames that exist, which the record lists), but it stays out of the summary and the exit code says so (1).

Gaps in the *source* clip's numbering are recorded and noted but leave the status alone: a source is often a
deliberate subsample (every k-th frame), and test mode already warned about missing source frames when it
generated."""
from __future__ import annotations

from media.images import describe_gaps, numbering_gaps
from metrics.inputs import ResultEntry

INCOMPLETE = "incomplete"  # frames missing from the result or the source
NO_FACE = "no_face"  # no face in any result frame: nothing face-related could be measured


def check_pair(entry: ResultEntry, frames: int, no_face: int) -> tuple[str, dict, list[str]]:
    """(status, record fields, notes) for a result of ``frames`` frames, ``no_face`` of them faceless."""
    notes, source_notes = [], []
    fields = {"frames_expected": None, "frame_gaps": [], "source_frame_gaps": []}
    if entry.generated.frames is not None:
        fields["frame_gaps"] = numbering_gaps([p.name for p in entry.generated.frames])
        if fields["frame_gaps"]:
            notes.append(f"result frames: {describe_gaps(fields['frame_gaps'])} (metrics computed on the "
                         f"{frames} frames present)")
    if entry.source is not None and entry.source.frames is not None:
        fields["source_frame_gaps"] = numbering_gaps([p.name for p in entry.source.frames])
        if fields["source_frame_gaps"]:
            source_notes.append(f"source frames: {describe_gaps(fields['source_frame_gaps'])} (recorded; the "
                                f"status judges the result)")
    expected = (entry.run or {}).get("frames")
    if expected is not None:
        fields["frames_expected"] = int(expected)
        if int(expected) != frames:
            notes.append(f"run.json records {expected} frames but the result holds {frames}")
    status = "ok"
    if notes:
        status = INCOMPLETE
    elif frames and no_face >= frames:
        status = NO_FACE
        notes.append(f"no face in any of the {frames} result frames: the pair is not scored as ok")
    return status, fields, notes + source_notes
