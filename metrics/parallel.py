"""``--workers N``: the clips of an evaluation measured in N processes, ahead of the pairs that use them.

Measuring (MediaPipe landmarks, the AU estimator, dlib descriptors, optical flow) is nearly all of an evaluation's
time, and each clip is measured on its own, so the work spreads over processes without changing any number: every
worker runs the same ``analysis.analyse`` on the same decoded frames with the same parameters, and a clip's
measurement depends on nothing but those. The main process then scores the pairs in their usual order, finding
each clip in ``tools.clips`` by the same key; anything it does not find there (a clip a worker failed on) it
measures itself, so a worker's failure shows up exactly as it would with one worker.

Source clips and templates go first (each distinct clip once, however many pairs share it); then the results,
streamed in pair order, so only a few measured results wait in memory at any time. Workers are started with
``spawn`` (MediaPipe's threads do not survive ``fork``) and load the models once each.
"""
from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from media.images import load_rgb
from metrics.analysis import Tools, analyse, measurement_key
from metrics.clip_cache import ClipStore
from metrics.inputs import ResultEntry, Sequence

log = logging.getLogger("metrics.evaluate")


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ClipJob:
    """One clip to measure, with the parameters ``pairs.evaluate_entry`` will ask for."""

    clip: Sequence | Path  # a sequence, or a template image
    flow: str | None
    describe: bool
    fps: float | None
    persist: bool  # sources and templates: kept in the disk store
    once: bool  # results: read once by their pair

    def frames(self):
        return self.clip.load() if isinstance(self.clip, Sequence) else load_rgb(self.clip)[None]


_WORKER_TOOLS: Tools | None = None


def _start_worker(cache_dir: str | None, identity_every: int) -> None:
    global _WORKER_TOOLS
    _WORKER_TOOLS = Tools(store=ClipStore(Path(cache_dir) if cache_dir else None), identity_every=identity_every)


def _measure(job: ClipJob) -> tuple[str, object] | None:
    """In a worker: (key, measurement) of the clip, or None when it cannot be read or measured (the main process
    then meets the same problem itself and reports it for its pair, as with one worker)."""
    try:
        frames = job.frames()
        clip = analyse(frames, _WORKER_TOOLS, job.flow, job.describe, job.fps, persist=job.persist)
        return measurement_key(frames, _WORKER_TOOLS, job.flow, job.describe, job.fps), clip
    except Exception:  # noqa: BLE001 - see the docstring
        return None


def source_jobs(entries: list[ResultEntry], rates: list[float], flow: str) -> list[ClipJob]:
    """The source clips and templates of a batch, each once, as ``evaluate_entry`` will measure them. "Once" is by
    content: the MEGC2021 package holds each clip under two template names, and two workers measuring the same
    frames at the same time would each pay for them."""
    jobs: dict[tuple, ClipJob] = {}
    for entry, rate in zip(entries, rates):
        sources = [entry.source, getattr(entry, "control", None)]  # a wrong-clip control is measured as a source
        for seq in (s for s in sources if s is not None):
            jobs.setdefault((file_digest(seq), flow, rate), ClipJob(seq, flow, True, rate, True, False))
        if entry.template is not None:
            jobs.setdefault((file_digest(entry.template),), ClipJob(entry.template, None, True, None, True, False))
    return list(jobs.values())


def file_digest(clip: Sequence | Path) -> str:
    """A digest of the bytes of a clip's files (its frames in order, or its video), or of one image; a file that
    cannot be read gives its path instead (the pair reports the problem when it measures the clip itself)."""
    digest = hashlib.blake2b(digest_size=16)
    paths = [clip] if isinstance(clip, Path) else clip.frames if clip.frames is not None else [clip.path]
    try:
        for path in paths:
            digest.update(Path(path).read_bytes())
    except OSError:
        return f"unreadable {[str(p) for p in paths]}"
    return digest.hexdigest()


def result_job(entry: ResultEntry, rate: float, flow: str) -> ClipJob:
    describe = entry.template is not None or entry.source is not None
    return ClipJob(entry.generated, flow, describe, rate, False, True)


def measure_ahead(entries: list[ResultEntry], rates: list[float], flow: str, tools: Tools,
                  workers: int) -> Iterator[ResultEntry]:
    """Yield the entries in order, each once its clips are in ``tools.clips``. With ``workers`` <= 1, or a single
    entry, nothing is measured ahead (the pairs measure their clips as they go). Should the pool break (a worker
    killed), the remaining entries are yielded as they are and measured by the main process."""
    if workers <= 1 or len(entries) <= 1:
        yield from entries
        return
    context = multiprocessing.get_context("spawn")
    folder = str(tools.clips.folder) if tools.clips.folder is not None else None
    done = 0
    try:
        # never more processes than results: each one loads its own models
        with ProcessPoolExecutor(min(workers, len(entries)), mp_context=context, initializer=_start_worker,
                                 initargs=(folder, tools.identity_every)) as pool:
            _keep_all(tools, source_jobs(entries, rates, flow), pool)
            jobs = [result_job(e, r, flow) for e, r in zip(entries, rates)]
            for entry, job, found in zip(entries, jobs, pool.map(_measure, jobs)):
                _keep(tools, job, found)
                done += 1
                yield entry
    except BrokenProcessPool as err:
        log.warning("the measuring workers stopped (%s); the main process measures the rest", err)
        yield from entries[done:]


def _keep_all(tools: Tools, jobs: list[ClipJob], pool: ProcessPoolExecutor) -> None:
    for job, found in zip(jobs, pool.map(_measure, jobs)):
        _keep(tools, job, found)


def _keep(tools: Tools, job: ClipJob, found: tuple[str, object] | None) -> None:
    """Put a worker's measurement where the main process's ``analyse`` will look for it."""
    if found is not None:
        key, clip = found
        tools.clips.remember(key, clip, once=job.once)
