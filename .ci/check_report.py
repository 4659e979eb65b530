"""Checks the report `deepgm demo` wrote: index.html exists, and every image and file it links to is
in the folder and not empty (PNG images must be PNG files).

    python .ci/check_report.py deepgm-report
"""

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.targets = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            value = attrs.get(name)
            if value and not urlparse(value).scheme and not value.startswith("#"):
                self.targets.append(value)


def main(folder: str) -> int:
    root = Path(folder)
    index = root / "index.html"
    if not index.is_file():
        print(f"check_report: {index} is missing", file=sys.stderr)
        return 1
    links = Links()
    links.feed(index.read_text(encoding="utf-8"))
    images = [t for t in links.targets if t.lower().endswith(".png")]
    problems = []
    for target in links.targets:
        path = root / target
        if not path.is_file() or path.stat().st_size == 0:
            problems.append(f"{target}: missing or empty")
        elif target.lower().endswith(".png") and path.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
            problems.append(f"{target}: not a PNG file")
    if not images:
        problems.append("index.html links no image")
    for problem in problems:
        print(f"check_report: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_report: {index} and the {len(links.targets)} files it links ({len(images)} images) are all there")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "deepgm-report"))
