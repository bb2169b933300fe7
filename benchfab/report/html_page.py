"""report.html: summary.md's text as one self-contained page, its images embedded."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

HTML_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
th { background: #f0f0f0; }
td strong { color: #b00020; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
code { background: #f4f4f4; padding: 0 0.2em; }
summary { cursor: pointer; font-weight: bold; margin: 0.5em 0; }
"""
# Markup this report writes inline: `code` and **bold**; a backslash-escaped ` or * (markdown_cell) is text.
_INLINE = re.compile(r"(?<!\\)`([^`]*)`|(?<!\\)\*\*([^*]*)\*\*")
_ESCAPED = re.compile(r"\\([\\`*\[\]<>&|])")
_DETAILS = ("<details>", "<details open>", "</details>")  # exact lines; text from runs has its < escaped
_SUMMARY = re.compile(r"^<summary>(.*)</summary>$")
_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)]+)\)$")


def _inline(text: str) -> str:
    """Escaped text with the markdown this report writes inline: `code` and **bold**."""
    def plain(part: str) -> str:  # markdown_cell's escapes and entities read back, then HTML-escaped
        return html.escape(html.unescape(_ESCAPED.sub(r"\1", part)))

    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(plain(text[pos:m.start()]))
        out.append(f"<code>{html.escape(m.group(1))}</code>" if m.group(1) is not None
                   else f"<strong>{plain(m.group(2))}</strong>")
        pos = m.end()
    out.append(plain(text[pos:]))
    return "".join(out)


def _table_cells(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
    return [c.strip().replace("\\|", "|") for c in cells]


def markdown_to_html(md: str, image_dir: Path, title: str) -> str:
    """One self-contained HTML page of summary.md's text: headings, lists, tables, and
    each image embedded as a base64 data URI (the page opens anywhere, alone)."""
    body: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            head, rows = _table_cells(block[0]), [_table_cells(b) for b in block[2:]]
            body.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead><tbody>"
                        + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows)
                        + "</tbody></table>")
            continue
        if line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            body.append("<ul>" + "".join(items) + "</ul>")
            continue
        image = _IMAGE.match(line)
        summary = _SUMMARY.match(line)
        if line in _DETAILS:  # the verdicts' collapsible block (markdown_report writes these lines alone)
            body.append(line)
        elif summary:
            body.append(f"<summary>{_inline(summary.group(1))}</summary>")
        elif image:
            data = base64.b64encode((image_dir / image.group(2)).read_bytes()).decode("ascii")
            body.append(f'<img alt="{html.escape(image.group(1))}" src="data:image/png;base64,{data}">')
        elif line.startswith("## "):
            body.append(f"<h2>{_inline(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{_inline(line[2:])}</h1>")
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
        i += 1
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{HTML_STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
