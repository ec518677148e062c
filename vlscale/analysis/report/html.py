"""Render the report document as one self-contained HTML page (figures inlined as base64 PNG,
no scripts, no external resources), so it opens the same from a laptop folder, an e-mail or the
MLflow artifact viewer."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from vlscale.analysis.limits import Limits
from vlscale.analysis.report.next_cells import __doc__ as NEXT_CELLS_METHOD
from vlscale.analysis.report.verdict import __doc__ as VERDICT_METHOD
from vlscale.analysis.summary import INF, NEG_INF, from_json_number

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1d1d1f;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem}h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
h3{margin-top:1.6rem}table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}th{background:#f2f2f2}
td.l,th.l{text-align:left}.verdict{padding:.7rem 1rem;border-left:5px solid #888;
background:#f7f7f7;margin:.6rem 0}.win{border-color:#2e7d32}.likely{border-color:#f9a825}
.none{border-color:#c62828}img{max-width:100%;border:1px solid #eee}.muted{color:#666;
font-size:.85rem}.s-finished,.s-measured{background:#c8e6c9}.s-failed{background:#ffcdd2}
.s-missing{background:#eeeeee}.s-running,.s-stale{background:#fff9c4}
pre{white-space:pre-wrap;font-size:.8rem;background:#fafafa;padding:.6rem}
details summary{cursor:pointer;color:#444;font-size:.9rem}
.scroll{overflow-x:auto}
"""


def _n(value, digits: int = 4) -> str:
    """A document number; "inf" / "-inf" (how `summary.clean` writes infinities) are
    unbounded, None is no value."""
    if value in (INF, NEG_INF):
        return "&infin; (unbounded)" if value == INF else "-&infin; (unbounded)"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "&infin;" if value > 0 else "-&infin;"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}g}"
    return html.escape(str(value))


def _ci(pair) -> str:
    """An interval; an infinite end reads "unbounded" (see `_n`)."""
    if not pair:
        return ""
    return f" <span class=muted>[{_n(pair[0])}, {_n(pair[1])}]</span>"


def _kind(verdict: dict) -> str:
    return "none" if not verdict["winner"] else ("win" if verdict["conclusive"] else "likely")


def _glance(verdict: dict) -> str:
    """The verdict at a glance (`Verdict.summary`), for the top of the page."""
    context = (f" <span class=muted>({html.escape(verdict['context'])})</span>"
               if verdict["context"] else "")
    return (f"<div class='verdict {_kind(verdict)}'><b>{html.escape(verdict['summary'])}</b>"
            f"{context}</div>")


def _verdict(verdict: dict) -> str:
    """The verdict in full (headline, multipliers, extrapolation, crossings, exponents,
    caveats), folded: the page opens with `_glance`."""
    rest = verdict["text"][len(verdict["headline"]):]
    return (f"<details><summary>The verdict in full</summary>"
            f"<div class='verdict {_kind(verdict)}'><b>{html.escape(verdict['headline'])}</b>"
            f"{html.escape(rest)}</div></details>")


def _count(value) -> str:
    """1280000 -> 1.28M: samples-seen labels as the paper writes them."""
    for divisor, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value is not None and abs(value) >= divisor:
            return f"{value / divisor:.3g}{suffix}"
    return _n(value)


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    head = "".join(f"<th class=l>{h}</th>" if i < left else f"<th>{h}</th>"
                   for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td class=l>{c}</td>" if i < left else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<div class=scroll><table><tr>{head}</tr>{body}</table></div>"


def _figure(out_dir: Path, names: list[str], caption: str) -> str:
    if not names:
        return ""
    png = next((n for n in names if n.endswith(".png")), None)
    pdf = next((n for n in names if n.endswith(".pdf")), None)
    data = base64.b64encode((out_dir / png).read_bytes()).decode() if png else ""
    link = f' <a href="{html.escape(pdf)}">PDF</a>' if pdf else ""
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption class=muted>{html.escape(caption)}{link}</figcaption></figure>")


def _ln(value) -> float | None:
    value = from_json_number(value)
    if value is None:
        return None
    return math.log(value) if value > 0 else -math.inf


def _fits(section: dict) -> str:
    rows = []
    for fit in section["fits"]:
        if not fit["fitted"]:
            rows.append([html.escape(fit["group"]), str(fit["n_cells"]), "-", "not fitted: "
                         + html.escape(fit["reason"]), "", "", "", "", "", "", ""])
            continue
        p, ci = fit["params"], fit.get("params_ci") or {}
        b_ci = ci.get("b")
        ln_ci = None if not b_ci else [_ln(b_ci[0]), _ln(b_ci[1])]
        predictions = [f"{_n(x.get('value', x['y']))}{_ci(x.get('value_ci') or x['ci'])}"
                       for x in fit["predictions"]]
        rows.append([html.escape(fit["group"]), str(fit["n_cells"]), str(fit["n_points"]),
                     _n(p["a"]) + _ci(ci.get("a")), _n(p["b"]) + _ci(b_ci),
                     _n(_ln(p["b"])) + _ci(ln_ci), _n(p["c"]) + _ci(ci.get("c")),
                     _n(p["d"]) + _ci(ci.get("d")), _n(fit["rmse"]), *predictions])
    target = section.get("target_compute")
    metric = "value" if section.get("error_mode") == "1-value" else "error"
    return _table(["group", "cells", "frontier", "a", "b", "ln b", "c", "d", "rmse",
                   f"{metric} at {_n(section.get('largest_compute'))}",
                   f"{metric} at {_n(target)} (target)"], rows)


def _holdout(section: dict) -> str:
    rows = []
    noise = {fit["group"]: fit.get("noise") for fit in section["fits"]}
    for entry in section["holdout"]:
        points = "; ".join(f"C={_n(p['compute'])}: {_n(p['measured'])} vs {_n(p['predicted'])}"
                           for p in entry["points"]) or html.escape(entry.get("note", ""))
        measured = noise.get(entry["group"])
        rows.append([html.escape(entry["group"]), str(entry["held_out_cells"]),
                     _n(entry["threshold"]), _n(entry["rmse"]),
                     _n(measured["std"]) + f" <span class=muted>({measured['cells']} cells)</span>"
                     if measured else "<span class=muted>not measured</span>",
                     f"<span class=muted>{points}</span>"])
    return _table(["group", "held out", "fit on C &le;", "RMSE", "run-to-run noise (std)",
                   "measured vs predicted error"], rows) if rows else \
        "<p class=muted>Too few frontier points to hold any out.</p>"


def _comparisons(section: dict) -> str:
    rows, verdicts = [], []
    for item in section["comparisons"]:
        c, v = item["comparison"], item["verdict"]
        m_now, m_later = (c["multiplier_at"] + [{}, {}])[:2]
        rows.append([f"{html.escape(c['a'])} vs {html.escape(c['b'])}",
                     _n(c["crossover_x"]) + _ci(c["crossover_ci"]),
                     _n(c["crossover_probability"], 2),
                     f"{_n(m_now.get('multiplier'))}{_ci(m_now.get('ci'))} at "
                     f"C={_n(m_now.get('x'))}",
                     f"{_n(m_later.get('multiplier'))}{_ci(m_later.get('ci'))} at "
                     f"C={_n(m_later.get('x'))}",
                     _n(c["exponent_difference"]) + _ci(c["exponent_difference_ci"]),
                     _n(c["floor_difference"]) + _ci(c["floor_difference_ci"])])
        verdicts.append(_verdict(v))
    if not rows:
        return "<p class=muted>Fewer than two procedures could be fitted: nothing to compare.</p>"
    return _table(["A vs B (A behind at the largest common compute)", "crossover C",
                   "P(crossover)", "compute multiplier A/B at the largest common C",
                   "... further out",
                   "c<sub>A</sub> - c<sub>B</sub>", "d<sub>A</sub> - d<sub>B</sub>"],
                  rows) + "".join(verdicts)


def _allocation(section: dict) -> str:
    rows = [[html.escape(a["group"]), _n(a["coefficient"]), _n(a["exponent"]),
             str(len(a["points"]))] for a in section["allocation"]]
    return _table(["group", "k in samples* = k C<sup>e</sup>", "e", "frontier points"], rows)


def _next(section: dict) -> str:
    rows = [[html.escape(s["group"]), html.escape(s["arch"]), _count(s["samples_seen"]),
             _n(s["compute"]), html.escape(s["source"]), _n(s["width_before"]),
             _n(s["width_after"]), _n(s["reduction_per_exaflop"])] for s in section["next_cells"]]
    if not rows:
        return "<p class=muted>No candidate narrows the interval (or no bootstrap).</p>"
    return _table(["group", "arch", "samples seen", "compute", "why", "interval width now",
                   "width with the cell", "width removed per 10<sup>9</sup> GFLOPs"], rows, 2) + (
        "<p class=muted>Why: extend = the next samples-seen value of a measured architecture; "
        "fill = a hole below it; missing / failed / stale / running = a cell the grid declares "
        "without a finished run. Widths: central 68% bootstrap interval of the predicted error "
        "at the target compute (see Method).</p>")


def _grid(grid: dict) -> str:
    parts = [_table(["group", "cells", "finished", "measured", "running", "stale", "failed",
                     "missing", "compute spent", "compute missing", "accelerator h"],
                    [[html.escape(str(s["group"])), str(s["cells"]), str(s["finished"]),
                      str(s["measured"]), str(s["running"]), str(s["stale"]), str(s["failed"]),
                      str(s["missing"]), _n(s["compute_spent"]), _n(s["compute_missing"]),
                      _n(s["accelerator_hours"])] for s in grid["summary"]])]
    if not grid["declared"]:
        parts.append("<p class=muted>" + ("No grid.json on the sweep's parent run: cells that "
                     "never started cannot be listed as missing." if grid["has_runs"] else
                     "A table has no runs: every cell in it is measured, none is missing.")
                     + "</p>")
    by_group: dict[str, list[dict]] = {}
    for cell in grid["cells"]:
        by_group.setdefault(str(cell["group"]), []).append(cell)
    for label, cells in by_group.items():
        archs = sorted({str(c["arch"]) for c in cells},
                       key=lambda a: min((c["gflops_per_sample"] or 0) for c in cells
                                         if str(c["arch"]) == a))
        samples = sorted({c["samples_seen"] for c in cells if c["samples_seen"] is not None})
        status = {(str(c["arch"]), c["samples_seen"]): c["status"] for c in cells}
        rows = [[html.escape(a)] + [
            f"<span class='s-{status[(a, s)]}'>{status[(a, s)]}</span>"
            if (a, s) in status else "" for s in samples] for a in archs]
        parts.append(f"<h3>{html.escape(label)}</h3>"
                     + _table(["arch \\ samples seen"] + [_count(s) for s in samples], rows))
    return "".join(parts)


FIT_CAPTION = ("Points (faint), frontier (outlined) and fitted law per procedure: solid over the "
               "measured compute, dashed where it extrapolates; the band is the central 68% of "
               "the bootstrap predictions, drawn over the measured compute only (95% intervals: "
               "tables below)")


def render(document: dict, out_dir: Path) -> str:
    """The page: title, the verdicts at a glance, then per slice the fit plot followed by the
    tables (laws, comparison with the full verdict folded, held-out, allocation, next cells),
    the grid, and the method (inputs and options, how the verdict and next cells are made)."""
    source = document["source"]
    options = document["options"]
    where = "; ".join(options["where"]) or "none"
    limits = Limits(**options["limits"]).describe() if options.get("limits") else "none"
    glance = "".join(_glance(item["verdict"]) for section in document["slices"]
                     for item in section["comparisons"])
    glance = glance or "<p>No comparison could be made (fewer than two fitted procedures).</p>"
    warnings = "".join(f"<div class='verdict none'>{html.escape(line)}</div>"
                       for line in document.get("settings_warnings", []))
    body = [f"<h1>{html.escape(document['title'])}</h1>", warnings, "<h2>Verdict</h2>", glance]
    for section in document["slices"]:
        title = section["title"] or "all rows"
        figures = section["figures"]
        body += [f"<h2>{html.escape(title)}</h2>",
                 _figure(out_dir, figures.get("fits", []), FIT_CAPTION),
                 "<h3>Fitted laws E = a (C + b)<sup>c</sup> + d</h3>", _fits(section),
                 "<h3>Comparison</h3>", _comparisons(section),
                 "<h3>Held-out validation</h3>", _holdout(section),
                 _figure(out_dir, figures.get("holdout", []), "Held-out cells"),
                 "<h3>Compute-optimal samples seen</h3>", _allocation(section),
                 _figure(out_dir, figures.get("allocation", []), "Frontier samples seen vs "
                         "compute"),
                 "<h3>Next cells</h3>",
                 f"<p class=muted>Target compute {_n(section.get('target_compute'))} GFLOPs."
                 "</p>", _next(section)]
    body += ["<h2>Grid</h2>", _grid(document["grid"]), "<h2>Method</h2>",
             f"<p class=muted>{html.escape(source['kind'])}: {html.escape(str(source['name']))}"
             f"{' / sweep ' + html.escape(source['sweep_id']) if source['sweep_id'] else ''}; "
             f"compared by <b>{html.escape(document['group'])}</b>; where: {html.escape(where)}; "
             f"limits: {html.escape(limits)}; "
             f"law {options['law']}, frontier {options['frontier']}, {options['bootstrap']} "
             f"bootstrap resamples, {options['confidence']:.0%} intervals, seed "
             f"{options['seed']}. Errors: {html.escape(str(document['slices'][0]['error_mode']))}"
             "; compute C in GFLOPs (forward GFLOPs per sample x samples seen).</p>",
             "<details><summary>How the verdict is decided</summary>"
             f"<pre>{html.escape(VERDICT_METHOD or '')}</pre></details>",
             "<details><summary>How next cells are chosen</summary>"
             f"<pre>{html.escape(NEXT_CELLS_METHOD or '')}</pre></details>",
             "<p class=muted>Every number on this page is in report.json.</p>"]
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            f"<title>{html.escape(document['title'])}</title><style>{STYLE}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")
