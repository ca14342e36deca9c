"""Reports as one self-contained HTML file: charts as inline SVG, tables that sort and filter.

A page makes no network request of any kind (no CDN, no font, no image): CSS, JavaScript and charts
are inline, and the page's Content-Security-Policy forbids fetches and any script but its own.
Every string that came from a file or a model is escaped: pages are rendered by Jinja2 with
``autoescape=True``, chart labels go through :func:`markupsafe.escape`, embedded JSON escapes
``<``, ``>`` and ``&``, and the browser-side code writes text with ``textContent`` only. Plain
``str`` arguments are therefore always shown as text; only :class:`markupsafe.Markup` returned by
these functions is inserted as markup.

Building blocks (shared by the run report and the literature-survey coverage report):

Page (:mod:`culture_probe.report.page`)
    ``Section(title, body, anchor="", collapsible=False, open=True)``; ``render_page(title,
    sections, *, lead, footer, data, scripts) -> str``; ``write_page(path, html)`` (atomic);
    fragments returning Markup: ``figure(svg, caption)``, ``paragraph(text, class_name)``
    (``"verdict"`` for a headline), ``note(text)``, ``heading(text, level)``,
    ``collapsible(summary, body)``,
    ``bullet_list(entries)``, ``key_values(pairs)``, ``join(*parts)``; ``json_for_script(data)``
    for JSON inside ``<script>``.
Charts (:mod:`culture_probe.report.svg`)
    ``bar_chart``, ``stacked_bar_chart``, ``heatmap``, ``forest_plot``, ``histogram`` (with a strip
    of the values), ``distribution_bars`` (side-by-side distributions), ``range_plot`` (min-max
    ranges); palettes ``sequential_colour(t, "viridis" | "cividis")`` and ``OKABE_ITO`` /
    ``series_colour(i)``.
Tables (:mod:`culture_probe.report.tables`)
    ``html_table(frame, *, table_id, caption, columns, labels, descriptions, formats, links,
    max_rows)``.
The run report (:mod:`culture_probe.report.run_report`)
    ``render_run_report(run_dir, out=None) -> Path`` writes ``report.html`` for a run directory.

Example: a page with a heading, a chart and a table.

    >>> import pandas as pd
    >>> from pathlib import Path
    >>> from culture_probe.report import (Section, bar_chart, figure, heading, html_table, join,
    ...                                   paragraph, render_page, write_page)
    >>> papers = pd.DataFrame({"proxy": ["Region", "Language"], "papers": [41, 17]})
    >>> body = join(
    ...     heading("Papers per proxy"),
    ...     paragraph("Region is the proxy most papers use.", "verdict"),
    ...     figure(bar_chart(papers["proxy"].tolist(), papers["papers"].tolist(),
    ...                      title="Papers per proxy", value_format="{:.0f}"),
    ...            caption="Survey coverage"),
    ...     html_table(papers, table_id="coverage", caption="Coverage per proxy"),
    ... )
    >>> html = render_page("Coverage", [Section("Proxies", body)], lead="From the annotations.")
    >>> html.startswith("<!DOCTYPE html>") and "<svg" in html and 'class="data"' in html
    True
    >>> # write_page(Path("coverage.html"), html)   # atomic write: temporary file, then rename
"""

from culture_probe.report.page import (
    Section,
    bullet_list,
    collapsible,
    figure,
    heading,
    join,
    json_for_script,
    key_values,
    note,
    paragraph,
    render_page,
    write_page,
)
from culture_probe.report.run_report import render_run_report
from culture_probe.report.svg import (
    OKABE_ITO,
    bar_chart,
    distribution_bars,
    forest_plot,
    heatmap,
    histogram,
    range_plot,
    sequential_colour,
    series_colour,
    stacked_bar_chart,
)
from culture_probe.report.tables import html_table

__all__ = [
    "OKABE_ITO",
    "Section",
    "bar_chart",
    "bullet_list",
    "collapsible",
    "distribution_bars",
    "figure",
    "forest_plot",
    "heading",
    "heatmap",
    "histogram",
    "html_table",
    "join",
    "json_for_script",
    "key_values",
    "note",
    "paragraph",
    "range_plot",
    "render_page",
    "render_run_report",
    "sequential_colour",
    "series_colour",
    "stacked_bar_chart",
    "write_page",
]
