"""A :class:`reports.report.Report` as one self-contained HTML page (inline CSS, no scripts, images as PNG files
beside it) and as Markdown with the same content."""
import html
import json

from reports import published

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5em auto; max-width: 1400px;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
.meta { color: #666; font-size: 0.9em; }
.notes { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5em 1em; margin: 1em 0; }
.protocol { background: #f4f7fb; border-left: 4px solid #4a7bbf; padding: 0.5em 1em; font-size: 0.92em; }
table { border-collapse: collapse; font-size: 0.82em; margin: 0.8em 0; }
th, td { border: 1px solid #d0d0d0; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
th { background: #eef1f5; } tbody tr:nth-child(even) { background: #fafafa; }
table.runs td { white-space: nowrap; } table.runs td:last-child { white-space: normal; min-width: 18em; }
.scroll { overflow-x: auto; }
.gallery { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; max-width: 520px; } figure img { max-width: 100%; border: 1px solid #eee; image-rendering: pixelated; }
figcaption { font-size: 0.85em; color: #444; }
.nomatch { color: #8a4b00; }
code, pre { background: #f5f5f5; } pre { padding: 0.5em; overflow-x: auto; font-size: 0.8em; }
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _published_rows(section):
    """(label, metric, value, K, source, provenance, notes) per matched row."""
    out = []
    for i, row in enumerate(section.match.rows):
        out.append((row.label, published.METRICS[row.metric], published.format_value(row),
                    "" if row.samples is None else str(row.samples), row.source, row.provenance,
                    "; ".join(section.match.notes.get(i, []))))
    return out


PUB_HEADER = ("paper's row", "metric", "figure", "K", "source", "provenance", "protocol differences")


def _citations(report):
    keys = []
    for s in report.runs:
        for row in s.match.rows:
            if row.cite not in keys:
                keys.append(row.cite)
    return [published.CITATIONS[k] for k in keys]


def _ours(section) -> str:
    s = section.summary
    proto = s.get("protocol") or {}
    if not isinstance(s.get("nll"), dict):  # an implicit generator: no likelihood to set beside the paper's
        return f"this run: no NLL ({s.get('nll_reason', 'not evaluated')})"
    return (f"this run: NLL {s['nll']['mean']:.2f} ± {s['nll']['se']:.2f} (K={proto.get('num_samples')}), "
            f"-ELBO {s['neg_elbo']['mean']:.2f} ± {s['neg_elbo']['se']:.2f}")


def to_html(report) -> str:
    p = []
    p.append(f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{_e(report.title)}</title>"
             f"\n<style>{CSS}</style>\n</head>\n<body>")
    p.append(f"<h1>{_e(report.title)}</h1>")
    p.append(f"<p class=\"meta\">{len(report.runs)} run(s); generated {_e(report.generated)} by <code>zoo report</code>. "
             "Lower is better for every loss; nats per data point.</p>")
    if report.warnings:
        p.append("<div class=\"notes\" id=\"warnings\"><strong>Read first:</strong><ul>"
                 + "".join(f"<li>{_e(w)}</li>" for w in report.warnings) + "</ul></div>")

    p.append("<h2>Results</h2>")
    p.append("<div class=\"protocol\" id=\"protocol\"><strong>Protocol.</strong> "
             + "<br>".join(_e(line) for line in report.protocol) + "</div>")
    p.append("<div class=\"scroll\">" + report.display.to_html(index=False, table_id="runs", classes="runs", border=0,
                                                                escape=True) + "</div>")
    quality = getattr(report, "quality", None)
    if quality is not None and len(quality):
        p.append("<h3 id=\"sample-quality\">Sample quality</h3>")
        if report.quality_caption:
            p.append("<div class=\"protocol\" id=\"quality-protocol\"><strong>Sample quality.</strong> "
                     + "<br>".join(_e(line) for line in report.quality_caption) + "</div>")
        p.append("<div class=\"scroll\">" + quality.to_html(index=False, table_id="quality", classes="runs quality",
                                                            border=0, escape=True) + "</div>")
    for t in getattr(report, "tables", None) or []:
        if t.table is None or not len(t.table):
            continue
        p.append(f"<h3 id=\"{_e(t.anchor)}\">{_e(t.title)}</h3>")
        if t.caption:
            p.append("<div class=\"protocol\">" + "<br>".join(_e(line) for line in t.caption) + "</div>")
        p.append("<div class=\"scroll\">" + t.table.to_html(index=False, table_id=t.anchor + "-table",
                                                             classes="runs", border=0, escape=True) + "</div>")
        if getattr(t, "notes", None):
            p.append(f"<ul id=\"{_e(t.anchor)}-notes\">" + "".join(f"<li>{_e(n)}</li>" for n in t.notes) + "</ul>")

    p.append("<h2>Published figures</h2>")
    p.append("<p>Papers' numbers from REFERENCES.md for the same experiment (model family, guide, prior, objective "
             "and data set). Provenance: <b>seed</b> = the project's seed slides (authoritative), <b>repo</b> = quoted "
             "in a public repository, <b>recalled</b> = from the paper, to be checked.</p>")
    for s in report.runs:
        p.append(f"<h3 id=\"published-{_e(s.name)}\">{_e(s.name)}</h3>")
        if s.match.rows:
            p.append(f"<p>{_e(_ours(s))}</p>")
            p.append("<table class=\"published\"><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in PUB_HEADER)
                     + "</tr></thead><tbody>")
            for row in _published_rows(s):
                p.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>")
            p.append("</tbody></table>")
            if s.match.reason:
                p.append(f"<p class=\"nomatch\">{_e(s.match.reason)}</p>")
        else:
            p.append(f"<p class=\"nomatch\">{_e(s.match.reason)}</p>")

    if report.curves:
        p.append("<h2>Training curves</h2>")
        p.append(f"<figure><img src=\"{_e(report.curves)}\" alt=\"training and validation curves\">"
                 "<figcaption>Loss per epoch of every run: training (solid), validation (dashed); for models that classify "
                 "(m2, m1+m2), the test error of each epoch (dotted, right axis), recorded to be seen, never used to "
                 "choose the checkpoint.</figcaption></figure>")
    if report.players:
        p.append("<h2>Adversarial training</h2>")
        p.append(f"<figure><img src=\"{_e(report.players)}\" alt=\"both players' losses\">"
                 "<figcaption>Two-player runs, per epoch. Left: the critic's loss (solid) and the generator's loss "
                 "(dashed), means over each player's steps. Right: the critic's estimate of the divergence between data "
                 "and samples (the objective's: 2 JSD for gan and gan-ns, the f-divergence bound for fgan, the W1 "
                 "estimate for wgan-gp) on the training batches (solid) and the validation split (dashed); the "
                 "checkpoint is the last epoch's (a critic that changes every epoch cannot rank the epochs). Not "
                 "comparable across objectives, nor with the "
                 "likelihood runs' nats.</figcaption></figure>")

    for s in report.runs:
        cfg = s.config
        p.append(f"<h2 id=\"run-{_e(s.name)}\">{_e(s.name)}</h2>")
        p.append(f"<p class=\"meta\">{_e(s.run_dir)}: {_e(cfg['model']['name'])} + {_e(cfg.get('guide'))} guide, "
                 f"{_e(cfg.get('objective'))}, data {_e(cfg['data']['name'])}"
                 + (" (evaluated for this report)" if s.evaluated_now else " (cached evaluation)") + "</p>")
        if s.notes:
            p.append("<ul class=\"notes\">" + "".join(f"<li>{_e(n)}</li>" for n in s.notes) + "</ul>")
        if s.figures:
            p.append("<div class=\"gallery\">")
            for src, caption in s.figures:
                p.append(f"<figure><img src=\"{_e(src)}\" alt=\"{_e(caption)}\"><figcaption>{_e(caption)}"
                         "</figcaption></figure>")
            p.append("</div>")
        if s.importance:
            p.append(f"<p>Importance log-weights and k-hat per test point (arviz InferenceData, netCDF): "
                     f"<a href=\"{_e(s.importance)}\">{_e(s.importance)}</a></p>")
        p.append("<details><summary>config.json</summary><pre>" + _e(json.dumps(cfg, indent=2, sort_keys=True))
                 + "</pre></details>")

    cites = _citations(report)
    if cites:
        p.append("<h2>References</h2><ol>" + "".join(f"<li>{_e(c)}</li>" for c in cites) + "</ol>")
    p.append("</body>\n</html>\n")
    return "\n".join(p)


def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(header, rows) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(report) -> str:
    m = [f"# {report.title}", "",
         f"{len(report.runs)} run(s); generated {report.generated} by `zoo report`. Lower is better for every loss; "
         "nats per data point.", ""]
    if report.warnings:
        m += ["**Read first:**", ""] + [f"- {w}" for w in report.warnings] + [""]
    m += ["## Results", "", "**Protocol.** " + "  \n".join(report.protocol), ""]
    d = report.display
    m += [md_table(list(d.columns), d.values.tolist()), ""]
    quality = getattr(report, "quality", None)
    if quality is not None and len(quality):
        m += ["### Sample quality", ""]
        if report.quality_caption:
            m += ["**Sample quality.** " + "  \n".join(report.quality_caption), ""]
        m += [md_table(list(quality.columns), quality.values.tolist()), ""]
    for t in getattr(report, "tables", None) or []:
        if t.table is None or not len(t.table):
            continue
        m += [f"### {t.title}", ""] + (["  \n".join(t.caption), ""] if t.caption else [])
        m += [md_table(list(t.table.columns), t.table.values.tolist()), ""]
        if getattr(t, "notes", None):
            m += [f"- {n}" for n in t.notes] + [""]
    m += ["## Published figures", "",
          "Papers' numbers from REFERENCES.md for the same experiment (model family, guide, prior, objective and data "
          "set). Provenance: **seed** = the project's seed slides (authoritative), **repo** = quoted in a public "
          "repository, **recalled** = from the paper, to be checked.", ""]
    for s in report.runs:
        m += [f"### {s.name}", ""]
        if s.match.rows:
            m += [_ours(s), "", md_table(PUB_HEADER, _published_rows(s)), ""]
            if s.match.reason:
                m += [s.match.reason, ""]
        else:
            m += [s.match.reason, ""]
    if report.curves:
        m += ["## Training curves", "", f"![training (solid) and validation (dashed) loss]({report.curves})", ""]
    if report.players:
        m += ["## Adversarial training", "", f"![critic and generator losses; each run's recorded estimate]"
              f"({report.players})", ""]
    for s in report.runs:
        cfg = s.config
        m += [f"## {s.name}", "",
              f"{s.run_dir}: {cfg['model']['name']} + {cfg.get('guide')} guide, {cfg.get('objective')}, data "
              f"{cfg['data']['name']}" + (" (evaluated for this report)" if s.evaluated_now else " (cached evaluation)"),
              ""]
        m += [f"- {n}" for n in s.notes] + ([""] if s.notes else [])
        for src, caption in s.figures:
            alt = caption.replace("[", "(").replace("]", ")")
            m += [f"![{alt}]({src})", f"*{_md_cell(caption)}*", ""]
        if s.importance:
            m += [f"Importance log-weights and k-hat per test point (arviz InferenceData, netCDF): "
                  f"[{s.importance}]({s.importance})", ""]
    cites = _citations(report)
    if cites:
        m += ["## References", ""] + [f"{i}. {c}" for i, c in enumerate(cites, 1)] + [""]
    return "\n".join(m)
