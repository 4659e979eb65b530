"""A self-contained HTML report: a summary table and captioned figures, readable in any browser
without scrolling sideways (images scale to the page width)."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Report"]

_STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; max-width: 62rem; margin: 0 auto;
       padding: 1rem 1.25rem 3rem; color: #1d2430; line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #d7dce3; padding-bottom: 0.25rem; }
p.meta { color: #5a6472; margin-top: 0; }
table { border-collapse: collapse; width: 100%; font-size: 0.92rem; display: block; overflow-x: auto; }
th, td { text-align: left; padding: 0.35rem 0.6rem; border-bottom: 1px solid #e3e7ec; vertical-align: top; }
th { background: #f3f5f8; }
figure { margin: 1.2rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e7ec; border-radius: 4px; display: block; }
figcaption { font-size: 0.9rem; color: #3d4652; margin-top: 0.35rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(18rem, 1fr)); gap: 1rem; }
figure.wide { grid-column: 1 / -1; }
code { background: #f3f5f8; padding: 0 0.2rem; border-radius: 3px; }
"""


@dataclass
class Report:
    """Collects sections of figures and writes ``index.html`` into ``folder``."""

    folder: Path
    title: str = "deepgm demo"
    subtitle: str = ""
    rows: list = field(default_factory=list)
    columns: list = field(default_factory=list)
    sections: list = field(default_factory=list)

    def __post_init__(self):
        self.folder = Path(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def figure(self, section: str, fig, name: str, caption: str, wide: bool = False):
        """Saves a matplotlib figure as ``name`` (PNG) in the folder and adds it under ``section``
        (across the whole page width when ``wide``)."""
        import matplotlib.pyplot as plt

        path = self.folder / name
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        self._section(section).append((name, caption, wide))
        return path

    def _section(self, title):
        for t, items in self.sections:
            if t == title:
                return items
        items = []
        self.sections.append((title, items))
        return items

    def table(self, columns, rows):
        self.columns = list(columns)
        self.rows = [list(r) for r in rows]

    def write(self) -> Path:
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
        ]
        if self.subtitle:
            parts.append(f'<p class="meta">{html.escape(self.subtitle)}</p>')
        if self.rows:
            parts.append("<h2>Summary</h2><table><thead><tr>")
            parts += [f"<th>{html.escape(str(c))}</th>" for c in self.columns]
            parts.append("</tr></thead><tbody>")
            for row in self.rows:
                parts.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>")
            parts.append("</tbody></table>")
        for title, items in self.sections:
            parts.append(f'<h2>{html.escape(title)}</h2><div class="grid">')
            for name, caption, wide in items:
                src = html.escape(os.path.basename(name))
                css = ' class="wide"' if wide else ""
                parts.append(
                    f'<figure{css}><img src="{src}" alt="{html.escape(caption)}" loading="lazy">'
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                )
            parts.append("</div>")
        parts.append("</body></html>")
        index = self.folder / "index.html"
        tmp = index.with_suffix(".html.tmp")
        tmp.write_text("\n".join(parts), encoding="utf-8")
        os.replace(tmp, index)
        return index
