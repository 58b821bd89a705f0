"""The HTML report: one self-contained file (inline CSS, images as base64 PNG, no scripts) that opens offline.

Per pair: template, source apex and generated apex stills, flow-magnitude maps onset -> apex, AU curves and region
motion profiles (source vs result); then the pair's metrics and notes. At the top: the summary per dataset and
emotion, batch values, the metric definitions, the exact command and the package versions.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from catalog.au_schema import OPENFACE_AUS
from metrics import timeline
from metrics.analysis import ClipAnalysis
from metrics.frechet import INCEPTION_ABSENT
from metrics.registry import CONTROL_GROUP, CONTROLLED, METRICS, control_name

SUMMARY_COLUMNS = ("au_r", "au_r_control", "au_mae", "apex_error_ms", "apex_error_ms_control", "facs_recall",
                   "identity_distance", "identity_same_rate", "onset_fidelity", "flow_r", "flow_r_control", "strain_r",
                   "strain_r_control", "flow_amplitude_error", "flow_amplitude_error_control", "texture_r",
                   "texture_r_control", "ssim_static", "psnr_static", "artifact_rate", "flicker", "fd_dlib128",
                   "frames_per_s")
MAX_AU_PANELS = 8
CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px} h2{font-size:17px;margin-top:32px;border-top:1px solid #ccc;padding-top:12px}
table{border-collapse:collapse;font-size:12px;margin:8px 0} th{font-weight:600;font-size:11px}
td,th{border:1px solid #ccc;padding:3px 6px} .ctl{color:#666;background:#fafafa}
th{background:#f2f2f2} td.num{text-align:right;font-variant-numeric:tabular-nums} .absent{color:#999}
code,pre{font-size:12px;background:#f6f6f6} pre{padding:8px;white-space:pre-wrap;word-break:break-all}
.notes{font-size:12px;color:#8a4b00} img{max-width:100%;display:block;margin:6px 0}
"""


# ---------------------------------------------------------------------------------------- figures

def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display: the report is written by a batch job
    import matplotlib.pyplot as plt

    return plt


def pair_figures(record: dict, gen: ClipAnalysis, src: ClipAnalysis | None, tpl: ClipAnalysis | None) -> dict:
    """name -> PNG bytes: "stills" (and flow maps), "au_curves", "profiles"."""
    apex = record["details"].get("apex", {})
    figures = {"stills": stills_figure(gen, src, tpl, apex), "au_curves": au_figure(record, gen, src)}
    if gen.profiles is not None:
        figures["profiles"] = profile_figure(record, gen, src)
    return figures


def _apex_index(clip: ClipAnalysis, frame) -> int:
    if frame is None:
        return clip.onset or 0
    return int(min(max(frame, 0), clip.length - 1))


def stills_figure(gen: ClipAnalysis, src: ClipAnalysis | None, tpl: ClipAnalysis | None, apex: dict) -> bytes:
    plt = _pyplot()
    gen_apex = _apex_index(gen, apex.get("result_frame"))
    src_apex = _apex_index(src, apex.get("reference_frame")) if src is not None else None
    maps = []
    if src is not None and src.profiles is not None:
        maps.append((f"source |flow| onset->{src_apex}", src.profiles["magnitude"][src_apex]))
    if gen.profiles is not None:
        maps.append((f"result |flow| onset->{gen_apex}", gen.profiles["magnitude"][gen_apex]))
    vmax = max([float(np.percentile(m, 99.5)) for _, m in maps] + [0.5])
    fig, axes = plt.subplots(1, 5, figsize=(12.5, 2.9))
    panels = [("template", tpl.rgb[0] if tpl is not None else None),
              (f"source apex (frame {src_apex})", src.rgb[src_apex] if src is not None else None),
              (f"result apex (frame {gen_apex})", gen.rgb[gen_apex])]
    for ax, (title, image) in zip(axes[:3], panels):
        ax.set_title(title, fontsize=9)
        if image is None:
            ax.text(0.5, 0.5, "absent", ha="center", va="center", color="0.5", transform=ax.transAxes)
        else:
            ax.imshow(image)
    shown = None
    for ax, (title, magnitude) in zip(axes[3:], maps + [(None, None)] * (2 - len(maps))):
        if title is None or magnitude is None:
            ax.text(0.5, 0.5, "absent", ha="center", va="center", color="0.5", transform=ax.transAxes)
        else:
            ax.set_title(title, fontsize=9)
            shown = ax.imshow(magnitude, cmap="magma", vmin=0, vmax=vmax)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if shown is not None:
        fig.colorbar(shown, ax=list(axes[3:]), fraction=0.025, pad=0.02, label="px (head motion removed)")
    return _png(fig)


def _time_ms(length: int, fps: float) -> np.ndarray:
    return np.arange(length) / fps * 1000.0


def au_figure(record: dict, gen: ClipAnalysis, src: ClipAnalysis | None) -> bytes:
    plt = _pyplot()
    fps = record["fps"] or 30.0
    n = gen.length
    src_aus = timeline.resample(src.aus, n) if src is not None else None
    spans = np.nan_to_num(np.nanmax(gen.aus, 0) - np.nanmin(gen.aus, 0)) if gen.valid.any() else np.zeros(17)
    if src_aus is not None and np.isfinite(src_aus).any():
        spans = np.maximum(spans, np.nan_to_num(np.nanmax(src_aus, 0) - np.nanmin(src_aus, 0)))
    order = [j for j in np.argsort(-spans) if spans[j] > 0][:MAX_AU_PANELS] or [0]
    cols = min(4, len(order))
    rows = -(-len(order) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 2.1 * rows + 0.4), squeeze=False, sharex=True)
    t = _time_ms(n, fps)
    per_au = record["details"].get("au_r_per_au", {})
    for ax, j in zip(axes.flat, order):
        name = OPENFACE_AUS[j]
        if src_aus is not None:
            ax.plot(t, src_aus[:, j], color="0.45", lw=1.2, label="source")
        ax.plot(t, gen.aus[:, j], color="C3", lw=1.4, label="result")
        r = per_au.get(name)
        ax.set_title(name + (f"  r={r:.2f}" if r is not None else ""), fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(order):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="best")
    fig.suptitle("AU intensity (re-measured, 0..5) vs time (ms)", fontsize=9)
    fig.tight_layout()
    return _png(fig)


def profile_figure(record: dict, gen: ClipAnalysis, src: ClipAnalysis | None) -> bytes:
    plt = _pyplot()
    fps = record["fps"] or 30.0
    n = gen.length
    t = _time_ms(n, fps)
    per_region = record["details"].get("flow_r_per_region", {})
    regions = list(gen.profiles["flow"])
    fig, axes = plt.subplots(1, len(regions), figsize=(3.1 * len(regions), 2.3), squeeze=False)
    for ax, region in zip(axes.flat, regions):
        if src is not None and src.profiles is not None:
            ax.plot(t, timeline.resample(src.profiles["flow"][region], n), color="0.45", lw=1.2, label="source")
        ax.plot(t, gen.profiles["flow"][region], color="C0", lw=1.4, label="result")
        r = per_region.get(region)
        ax.set_title(f"{region}" + (f"  r={r:.2f}" if r is not None else ""), fontsize=9)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7, loc="best")
    fig.suptitle("mean |flow| onset -> frame per region (px) vs time (ms)", fontsize=9)
    fig.tight_layout()
    return _png(fig)


# ---------------------------------------------------------------------------------------- HTML

def _fmt(value) -> str:
    if value is None:
        return '<span class="absent">&mdash;</span>'
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return html.escape(str(value))


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _arrow(name: str) -> str:
    return {"higher": "&uarr;", "lower": "&darr;"}.get(METRICS[name].direction, "")


def _is_control(name: str) -> bool:
    return METRICS[name].group == CONTROL_GROUP


def _head(name: str) -> str:
    """A column heading; "_<wbr>" lets long metric names wrap so the table fits a normal window. A control column
    is headed "wrong clip" under the metric it sits beside."""
    if _is_control(name):
        return f"<th class=ctl>{name.removesuffix('_control').replace('_', '_<wbr>')} wrong clip</th>"
    return f"<th>{name.replace('_', '_<wbr>')} {_arrow(name)}</th>"


def summary_table(rows: list[dict], columns: tuple[str, ...] = SUMMARY_COLUMNS) -> str:
    head = "".join(_head(c) for c in columns)
    body = []
    for row in rows:
        cells = "".join(f'<td class="num{" ctl" if _is_control(c) else ""}">{_fmt(row.get(c))}</td>' for c in columns)
        body.append(f"<tr><td>{html.escape(row['dataset'])}</td><td>{html.escape(row['emotion'])}</td>"
                    f'<td class="num">{row["pairs"]}</td>{cells}</tr>')
    return f"<table><tr><th>dataset</th><th>emotion</th><th>pairs</th>{head}</tr>{''.join(body)}</table>"


def control_table(summary: dict | None) -> str:
    """The wrong-clip control over the batch: per metric, right clip against wrong clip, the wrong clip's spread and
    on how many pairs the right clip scored better."""
    if not summary or not any(v["pairs"] for v in summary.values()):
        return "<p>No wrong-clip control: fewer than two distinct source clips (or <code>--no_control</code>).</p>"
    rows = "".join(f"<tr><td><code>{name}</code> {_arrow(name)}</td><td class=num>{_fmt(v['right'])}</td>"
                   f"<td class='num ctl'>{_fmt(v['wrong'])}</td><td class='num ctl'>{_fmt(v['wrong_sd'])}</td>"
                   f"<td class=num>{v['right_better']} / {v['pairs']}</td></tr>"
                   for name, v in summary.items() if v["pairs"])
    return ("<table><tr><th>metric</th><th>right clip (mean)</th><th class=ctl>wrong clip (mean)</th>"
            "<th class=ctl>wrong clip (sd)</th><th>pairs where right beats wrong</th></tr>" + rows + "</table>")


def definitions_table() -> str:
    rows = "".join(f"<tr><td><code>{m.name}</code></td><td>{m.group}</td><td>{html.escape(m.doc)}</td>"
                   f"<td>{m.direction}</td><td>{html.escape(m.value_range)}</td><td>{html.escape(m.needs)}</td></tr>"
                   for m in METRICS.values())
    return ("<table><tr><th>metric</th><th>group</th><th>what</th><th>better</th><th>range</th><th>needs</th></tr>"
            f"{rows}</table>")


def pair_section(record: dict, figures: dict) -> str:
    metrics = record.get("metrics", {})
    cells = "".join(f"<tr><td><code>{name}</code> {_arrow(name)}</td><td class='num'>{_fmt(metrics.get(name))}</td>"
                    f"<td class='num ctl'>{_fmt(metrics.get(control_name(name))) if name in CONTROLLED else ''}</td>"
                    f"<td class='num'>{_fmt(METRICS[name].ideal)}</td></tr>" for name in METRICS
                    if not _is_control(name))
    control = record.get("details", {}).get("control")
    if control:
        notes_control = f"<p class=ctl>wrong clip: <code>{html.escape(control['source'])}</code></p>"
    else:
        notes_control = ""
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in record.get("notes", []))
    if record.get("error"):
        notes += f"<li>evaluation failed: {html.escape(record['error'])}</li>"
    paths = "".join(f"<tr><td>{k}</td><td><code>{html.escape(str(record.get(k)))}</code></td></tr>"
                    for k in ("result", "source", "template") if k in record)
    frames = (f"{record.get('frames')} result frames, {record.get('source_frames') or 'no'} source frames, "
              f"{record.get('fps')} fps") if record.get("status") == "ok" else ""
    images = "".join(_img(figures.get(k), f"{record['pair']} {k}") for k in ("stills", "au_curves", "profiles"))
    return (f"<section><h2>{html.escape(record['pair'])}</h2><p>dataset <b>{html.escape(record['dataset'])}</b>, "
            f"emotion <b>{html.escape(record['emotion'])}</b>; {frames}</p>"
            f"<table>{paths}</table>{f'<ul class=notes>{notes}</ul>' if notes else ''}{images}"
            f"{notes_control}<table><tr><th>metric</th><th>value</th><th class=ctl>wrong clip</th><th>ideal</th></tr>"
            f"{cells}</table></section>")


def render(doc: dict, figures: list[dict]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in doc["versions"].items() if v)
    skipped = "".join(f"<li>{html.escape(s)}</li>" for s in doc.get("skipped", []))
    sections = "".join(pair_section(r, f) for r, f in zip(doc["pairs"], figures))
    batch = doc["batch"]
    if doc.get("inputs", {}).get("inception"):
        frames = batch.get("fid_inception_frames") or {}
        fid = (f"Batch Inception FID ({html.escape(doc['inputs']['inception'])}, full frames, "
               f"{frames.get('real', 0)} source vs {frames.get('generated', 0)} result frames): "
               f"{_fmt(batch.get('fid_inception'))}.")
        columns = (*SUMMARY_COLUMNS[:-1], "fid_inception", SUMMARY_COLUMNS[-1])
    else:
        fid, columns = html.escape(INCEPTION_ABSENT) + ".", SUMMARY_COLUMNS
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ME generation evaluation</title><style>{CSS}</style></head>
<body><h1>Micro-expression generation: evaluation report</h1>
<p>{batch['pairs']} pairs ({batch['failed']} failed) evaluated in {doc['seconds']} s.
Batch FD-dlib128 (all source frames vs all result frames): {_fmt(batch.get('fd_dlib128'))}.
{fid}
Absent values (&mdash;) could not be computed (missing source, template, face or driving AUs): they are not zeros.</p>
<h2>Summary per dataset and emotion (means over pairs; &uarr; higher / &darr; lower is better)</h2>
{summary_table(doc['summary'], columns)}
<h2>Wrong-clip control: which metrics tell the right motion from another clip's</h2>
<p>Each result is also scored against another clip's source (the next distinct clip; grey "wrong clip" columns). A
metric that follows the specific clip scores the right clip better on nearly every pair, by more than the wrong
clip's spread; one that scores both alike only measures that something moved.</p>
{control_table(batch.get('control'))}
{f'<p>Not evaluated:</p><ul class=notes>{skipped}</ul>' if skipped else ''}
<h2>Command and versions</h2><pre>{html.escape(doc['command'])}</pre><p>{html.escape(versions)}</p>
{sections}
<h2>Metric definitions</h2>{definitions_table()}
</body></html>
"""


def write_report(doc: dict, figures: list[dict], path: Path) -> Path:
    path = Path(path)
    path.write_text(render(doc, figures), encoding="utf-8")
    return path
