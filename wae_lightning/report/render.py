"""Writing a :class:`Document`: ``report.md`` (beside its figure files), a self-contained
``report.html`` (the figures embedded) and ``metrics.csv``."""

import base64
import csv
import html
from pathlib import Path

from wae_lightning.report.document import Block, Document, Heading, Paragraph
from wae_lightning.report.tables import Table

HTML_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; }
td { text-align: right; font-variant-numeric: tabular-nums; }
thead th { background: #f0f0f0; }
tbody th { text-align: left; font-weight: normal; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; }
figcaption { color: #444; }
"""


def markdown_table(table: Table) -> str:
    def cell(text: str, bold: bool) -> str:
        return f"**{text}**" if bold else text

    lines = [
        "| " + " | ".join(table.header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(table.header) - 1)) + "|",
    ]
    for row, best in zip(table.rows, table.best, strict=True):
        lines.append("| " + " | ".join(cell(text, i in best) for i, text in enumerate(row)) + " |")
    return "\n".join(lines)


def html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(text)}</th>" for text in table.header)
    body = []
    for row, best in zip(table.rows, table.best, strict=True):
        cells = [f"<th>{html.escape(row[0])}</th>"] + [
            f"<td><b>{html.escape(text)}</b></td>" if i in best else f"<td>{html.escape(text)}</td>"
            for i, text in enumerate(row)
            if i > 0
        ]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + "\n</tbody>\n</table>"
    )


def markdown_block(block: Block, output_dir: Path) -> list[str]:
    if isinstance(block, Heading):
        return [f"{'#' * block.level} {block.text}", ""]
    if isinstance(block, Paragraph):
        return [block.text, ""]
    if isinstance(block, Table):
        return [markdown_table(block), ""]
    relative = block.path.relative_to(output_dir).as_posix()
    heading = [f"### {block.caption}", ""] if block.heading else []
    return [*heading, f"![{block.caption}]({relative})", ""]


def html_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, Table):
        return html_table(block)
    encoded = base64.b64encode(block.path.read_bytes()).decode("ascii")
    caption = html.escape(block.caption)
    return (
        f'<figure><img src="data:image/png;base64,{encoded}" alt="{caption}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def render(document: Document, output_dir: Path) -> Path:
    """Write the three files into ``output_dir`` (where the figures already are); returns the
    HTML file."""
    output_dir.mkdir(parents=True, exist_ok=True)
    markdown = [f"# {document.title}", ""]
    for block in document.blocks:
        markdown += markdown_block(block, output_dir)
    (output_dir / "report.md").write_text("\n".join(markdown).rstrip("\n") + "\n")
    title = html.escape(document.title)
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{HTML_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{title}</h1>\n"
        + "\n".join(html_block(block) for block in document.blocks)
        + "\n</body>\n</html>\n"
    )
    (output_dir / "report.html").write_text(page)
    with open(output_dir / "metrics.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, document.csv_columns)
        writer.writeheader()
        writer.writerows(document.csv_rows)
    return output_dir / "report.html"
