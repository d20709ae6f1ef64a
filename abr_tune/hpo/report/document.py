"""A small document model rendered both as Markdown (figures linked) and self-contained HTML (figures embedded)."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Doc:
    """Blocks rendered both as Markdown (figures linked) and as self-contained HTML (figures embedded)."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def add(self, kind: str, payload: Any) -> None:
        self.blocks.append((kind, payload))

    def markdown(self) -> str:
        out = [f"# {self.title}"]
        for kind, p in self.blocks:
            out.append({
                "h2": lambda p: f"## {p}", "h3": lambda p: f"### {p}", "p": lambda p: p,
                "list": lambda p: "\n".join(f"- {item}" for item in p),
                "table": lambda p: _md_table(*p), "code": lambda p: f"```\n{p}\n```",
                "figure": lambda p: f"![{p.title}]({p.file})\n\n*{p.caption}*",
                "skipped": lambda p: f"> **Skipped:** {p.caption}",
            }[kind](p))
        return "\n\n".join(out) + "\n"

    def html(self, root: Path) -> str:
        body = [f"<h1>{_inline(self.title)}</h1>"]
        for kind, p in self.blocks:
            body.append({
                "h2": lambda p: f"<h2>{_inline(p)}</h2>", "h3": lambda p: f"<h3>{_inline(p)}</h3>",
                "p": lambda p: f"<p>{_inline(p)}</p>",
                "list": lambda p: "<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in p) + "</ul>",
                "table": lambda p: _html_table(*p), "code": lambda p: f"<pre><code>{html.escape(p)}</code></pre>",
                "figure": lambda p: f'<figure><img src="{_data_uri(root / p.file)}" alt="{html.escape(p.title)}">'
                                    f"<figcaption>{_inline(p.caption)}</figcaption></figure>",
                "skipped": lambda p: f'<p class="skipped"><b>Skipped:</b> {_inline(p.caption)}</p>',
            }[kind](p))
        return HTML_PAGE.format(title=html.escape(self.title), body="\n".join(body))


HTML_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }}
th {{ background: #f3f3f3; }}
code, pre {{ background: #f6f6f6; font-size: 0.9em; }} pre {{ padding: 0.6em; overflow-x: auto; }}
img {{ max-width: 100%; border: 1px solid #ddd; }} figcaption {{ font-size: 0.9em; color: #444; }}
.skipped {{ background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.5em; }}
</style></head><body>
{body}
</body></html>
"""


def _inline(text: str) -> str:
    """Escaped HTML with Markdown's `code` and **bold** spans."""
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(text)))
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(head), "|" + "---|" * len(head), *(line(r) for r in rows)])


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{_inline(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def duration(seconds: float) -> str:
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else (f"{minutes} min {sec:02d} s" if minutes else f"{sec} s")
