"""index.html for a job or a comparison: one self-contained page (relative links to the PNGs, inline style and
script, nothing fetched) with the grid pictures and a table of every image, sortable by any column."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Optional

from pipeline.tools.run_folder import write_file

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dt { font-weight: 600; } .grids img { max-width: 100%; border: 1px solid #ccc; margin: .3em 0; }
table { border-collapse: collapse; margin-top: 1em; } th, td { border: 1px solid #ccc; padding: .25em .5em; }
th { background: #eee; cursor: pointer; user-select: none; position: sticky; top: 0; }
th.up::after { content: " \\25B2"; } th.down::after { content: " \\25BC"; }
td.img img { width: 64px; height: 64px; image-rendering: pixelated; } td.ok { color: #070; } td.no { color: #a00; }
td { white-space: pre-line; vertical-align: top; }
"""

SCRIPT = """
function sortBy(th) {
  const table = th.closest('table'), body = table.tBodies[0], index = [...th.parentNode.children].indexOf(th);
  const down = th.classList.contains('up');
  table.querySelectorAll('th').forEach(h => h.classList.remove('up', 'down'));
  th.classList.add(down ? 'down' : 'up');
  const key = row => row.children[index].dataset.sort ?? row.children[index].textContent;
  const rows = [...body.rows].sort((a, b) => {
    const x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
    const order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
    return down ? -order : order;
  });
  rows.forEach(row => body.appendChild(row));
}
document.querySelectorAll('th').forEach(th => th.addEventListener('click', () => sortBy(th)));
window.addEventListener('load', () => {
  const images = [...document.images];
  const loaded = images.filter(img => img.complete && img.naturalWidth > 0).length;
  document.body.dataset.images = images.length;
  document.body.dataset.loaded = loaded;
  document.body.dataset.rows = document.querySelector('#cells tbody').rows.length;
});
"""


def _cell(value: Any) -> str:
    """A table cell: booleans as a check or a cross, numbers sortable by value, None empty."""
    if isinstance(value, bool):
        return f'<td class="{"ok" if value else "no"}" data-sort="{int(value)}">{"&#10003;" if value else "&#10007;"}</td>'
    if value is None:
        return '<td data-sort=""></td>'
    if isinstance(value, (dict, list)):
        value = json.dumps(value)
    return f"<td>{html.escape(str(value))}</td>"


def page(title: str, header: dict[str, Any], grids: list[str], columns: list[str], rows: list[dict[str, Any]],
         image_column: Optional[str] = "image") -> str:
    """The page's HTML: `rows` in `columns` order; `image_column` holds each row's PNG path relative to the page."""
    facts = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in header.items())
    pictures = "".join(f'<img src="{html.escape(g)}" alt="{html.escape(g)}">' for g in grids)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["picture", *columns])
    body = []
    for row in rows:
        link = row.get(image_column) if image_column else None
        thumb = (f'<td class="img" data-sort="{html.escape(link)}"><a href="{html.escape(link)}">'
                 f'<img src="{html.escape(link)}" alt="{html.escape(link)}" loading="eager"></a></td>') if link else "<td></td>"
        body.append("<tr>" + thumb + "".join(_cell(row.get(c)) for c in columns) + "</tr>")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><dl>{facts}</dl>"
            f'<div class="grids">{pictures}</div><table id="cells"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table><script>{SCRIPT}</script></body></html>\n")


def write_report(folder: Path, text: str, replace: bool = False) -> Path:
    """index.html in the folder; a job's report is rewritten after every run (replace), a comparison's never."""
    target = folder / "index.html"
    if replace:
        temp = folder / ".index.html.tmp"
        temp.write_text(text, encoding="utf-8")
        temp.replace(target)
        return target
    return write_file(folder, "index.html", lambda tmp: tmp.write_text(text, encoding="utf-8"))
