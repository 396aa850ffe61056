"""One self-contained HTML report: the Markdown report's tables and text, plus embedded PNG plots."""
from __future__ import annotations

import base64
import html
import re

from bench.records import Record
from bench.report import scaling, sweep_plots
from bench.report.markdown import markdown_report
from bench.report.plots import Plot, colour, render
from bench.spec import FRAMEWORKS

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.bad { color: #b00020; font-weight: 600; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; border: 1px solid #e3e3e3; padding: 0.5em; background: #fff; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { font-size: 0.82em; color: #555; max-width: 60em; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; margin: 0 0.25em 0 0.8em; vertical-align: -0.1em; }
code { background: #f5f5f5; padding: 0 0.2em; }
"""

_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def _inline(text: str) -> str:
    """Escape, then the Markdown the report uses: **bold**, *italic*, `code`."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])", r"<em>\1</em>", out)


def _cells(line: str) -> list[str]:
    parts = _CELL_SPLIT.split(line.strip())
    return [p.strip().replace("\\|", "|") for p in parts[1:-1]]


def _table(lines: list[str]) -> str:
    header = _cells(lines[0])
    aligns = ["num" if a.endswith(":") else "" for a in _cells(lines[1])] if len(lines) > 1 else []
    body = []
    for line in lines[2:]:
        tds = []
        for i, cell in enumerate(_cells(line)):
            cls = " ".join(c for c in (aligns[i] if i < len(aligns) else "",
                                       "bad" if cell.startswith(("failed", "skipped")) else "") if c)
            tds.append(f"<td{f' class={chr(34)}{cls}{chr(34)}' if cls else ''}>{_inline(cell)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    head = "<tr>" + "".join(f"<th>{_inline(h)}</th>" for h in header) + "</tr>"
    return f"<table>\n<thead>{head}</thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


def markdown_blocks(md: str) -> list[tuple[str, str]]:
    """(kind, html) per block of the report's Markdown subset: headings, lists, tables, paragraphs."""
    blocks: list[tuple[str, str]] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        m = re.match(r"(#{1,3}) (.*)", line)
        if m:
            level = len(m.group(1))
            blocks.append(("heading", f"<h{level}>{_inline(m.group(2))}</h{level}>"))
            i += 1
            continue
        for kind, starts in (("table", "|"), ("list", "- ")):
            if line.startswith(starts):
                j = i
                while j < len(lines) and lines[j].startswith(starts):
                    j += 1
                chunk = lines[i:j]
                blocks.append((kind, _table(chunk) if kind == "table" else
                               "<ul>\n" + "\n".join(f"<li>{_inline(x[2:])}</li>" for x in chunk) + "\n</ul>"))
                i = j
                break
        else:
            j = i
            while j < len(lines) and lines[j].strip() and not lines[j].startswith(("|", "- ", "#")):
                j += 1
            blocks.append(("paragraph", "<p>" + _inline(" ".join(lines[i:j])) + "</p>"))
            i = j
    return blocks


def figure(plot: Plot) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    return (f'<figure id="plot-{html.escape(plot.name)}"><img src="data:image/png;base64,{data}" '
            f'width="{plot.width}" height="{plot.height}" alt="{html.escape(plot.alt)}">'
            f"<figcaption>{html.escape(plot.title)}</figcaption></figure>")


def plots_section(plots: list[Plot], frameworks: list[str]) -> str:
    if not plots:
        return "<h2>Plots</h2>\n<p>No plots: no cell finished with a measurement to show.</p>"
    legend = "".join(f'<span class="swatch" style="background:{colour(f)}"></span>{html.escape(f)}'
                     for f in frameworks)
    return ("<h2>Plots</h2>\n<p>One colour per framework in every plot:" + legend + ". Bars are medians over "
            "repeats; a cell that did not run is written as its status in place of its bar.</p>\n"
            '<div class="plots">\n' + "\n".join(figure(p) for p in plots) + "\n</div>")


def html_report(records: list[Record], problems: list[str] | None = None, extra: list[Plot] | None = None) -> str:
    """The whole page: the Markdown report's blocks, the plots (then `extra` ones) after the comparison table."""
    blocks = markdown_blocks(markdown_report(records, problems))
    names = {r.framework for r in records}
    pictures = render(records) + sweep_plots.render(records) + [p for p in [scaling.plot(records)] if p]
    section = plots_section(pictures + list(extra or []),
                            [f for f in FRAMEWORKS if f in names] + sorted(names - set(FRAMEWORKS)))
    first_table = next((n for n, (kind, _) in enumerate(blocks) if kind == "table"), len(blocks) - 1)
    parts = [b for _, b in blocks[: first_table + 1]] + [section] + [b for _, b in blocks[first_table + 1:]]
    return html_page("bench report", parts)


def html_page(title: str, parts: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n" + "\n".join(parts)
            + "\n</body>\n</html>\n")
