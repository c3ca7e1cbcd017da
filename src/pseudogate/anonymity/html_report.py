"""A self-contained HTML view of the report: inline SVG charts, no scripts, no downloads."""

from __future__ import annotations

from html import escape

from pseudogate.anonymity.report import AnonymisationReport

__all__ = ["render_html"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;
text-align:left}th{background:#f3f3f3}.bar{fill:#3a6ea5}.warn{color:#a33}
svg text{font-size:12px;fill:#222}
"""


def _bars(items: list[tuple[str, float]], *, title: str, percent: bool) -> str:
    """A horizontal bar chart: one labelled bar per item, values in [0, 1]."""
    row_h, label_w, bar_w = 24, 170, 380
    height = row_h * len(items) + 10
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 80}" '
             f'height="{height}" role="img" aria-label="{escape(title)}">')]
    for i, (label, value) in enumerate(items):
        y = i * row_h + 5
        width = max(0.0, min(1.0, value)) * bar_w
        shown = f"{value * 100:.1f}%" if percent else f"{value:.3f}"
        parts.append(f'<text x="0" y="{y + 15}">{escape(label)}</text>'
                     f'<rect class="bar" x="{label_w}" y="{y}" width="{width:.1f}" '
                     f'height="{row_h - 6}"/>'
                     f'<text x="{label_w + width + 5:.1f}" y="{y + 15}">{shown}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: AnonymisationReport) -> str:
    """The report for people who would rather look than read."""
    privacy = report.privacy
    k = privacy.k
    sizes = [(f"class size {s}", share) for s, share in report.records_by_class_size.items()]
    sizes.append((f"class size > {k + 4}", report.records_in_larger_classes))
    kept = [(name, 1.0 - loss) for name, loss in report.loss_per_column.items()]
    search = report.search
    method = ("exact optimum" if search.exact
              else '<span class="warn">heuristic (lattice too large for an exact search: the '
                   "result is acceptable but may not be optimal)</span>")
    risk = report.prosecutor_risk
    summary = [
        ("Policy", escape(report.policy)),
        ("Policy fingerprint", f"<code>{escape(report.policy_fingerprint)}</code>"),
        ("Privacy model", escape(f"k={k}, l={privacy.l}, suppression limit "
                                 f"{privacy.suppression_limit} (at most "
                                 f"{privacy.max_suppressed} rows), metric "
                                 f"{privacy.metric.value}")),
        ("Rows in / out / suppressed",
         f"{report.rows_in:,} / {report.rows_out:,} / {report.suppressed:,}"),
        ("Classes", f"{report.classes:,}"),
        ("k achieved / l achieved", escape(f"{report.k_achieved} / {report.l_achieved}")),
        ("Loss / discernibility", f"{report.loss:.6f} / {report.discernibility:,}"),
        ("Prosecutor risk (highest / average)", f"{risk.highest:.4f} / {risk.average:.4f}"),
        ("Search", (f"{method}; {search.evaluated:,} of {search.transformations:,} "
                   f"transformations evaluated in {search.seconds:.3f} s")),
    ]
    levels = "".join(f"<tr><td>{escape(name)}</td><td>{level}</td></tr>"
                     for name, level in report.levels.items())
    rows = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in summary)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Anonymisation report: {escape(report.policy)}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>Anonymisation report</h1><table>{rows}</table>"
        "<h2>Records by size of their class</h2>"
        "<p>Share of released records whose class (rows with the same generalised "
        "quasi-identifiers) has each size. Larger classes mean lower re-identification risk.</p>"
        + _bars(sizes, title="records by class size", percent=True)
        + "<h2>Information kept per quasi-identifier</h2>"
        "<p>1 − Loss of each column: 100% is the original detail, 0% is fully generalised or "
        "suppressed.</p>"
        + _bars(kept, title="information kept per column", percent=True)
        + f"<h2>Generalisation levels</h2><table><tr><th>Column</th><th>Level</th></tr>{levels}"
        "</table></body></html>\n"
    )
