"""Self-contained HTML pages of the Markdown reports: what `snakemake --report` shows inline.

Snakemake's report (HTML and zip alike) shows an HTML result inside an iframe whose address is the page's own
`data:` URL (or a file deep in the zip), where no relative path resolves. So every image a page shows is embedded
as a `data:` URI and every local file it links (a figure's PDF) becomes a `data:` download: the page needs nothing
beside it. A page that refers to a local file that is not there is refused, naming the file, rather than written
with a broken image.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path

_STYLE = ("body{font-family:sans-serif;max-width:60em;margin:auto;padding:0 1em}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}")
_SRC = re.compile(r'(<img\b[^>]*?\bsrc=)"([^"]+)"')
_HREF = re.compile(r'(<a\b[^>]*?\bhref=)"([^"]+)"')
_EXTERNAL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|#|//)")  # a scheme (http:, data:, mailto:), an anchor


class HtmlPageError(ValueError):
    """A page refers to a local file that does not exist."""


def data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _local(base_dir: Path, ref: str, page: str) -> Path | None:
    """The file a relative reference names, or None for an external one; raises when the file is missing."""
    ref = html.unescape(ref)
    if _EXTERNAL.match(ref):
        return None
    path = base_dir / ref.split("#")[0]
    if not path.is_file():
        raise HtmlPageError(f"{page}: refers to {ref!r}, but {path} does not exist (are the figures built?)")
    return path


def embed_files(body: str, base_dir: Path, page: str = "page") -> str:
    """`body` with every local image as a data: URI and every local link as a data: download."""
    def image(match: re.Match) -> str:
        path = _local(base_dir, match.group(2), page)
        return match.group(0) if path is None else f'{match.group(1)}"{data_uri(path)}"'

    def link(match: re.Match) -> str:
        path = _local(base_dir, match.group(2), page)
        if path is None:
            return match.group(0)
        return f'{match.group(1)}"{data_uri(path)}" download="{html.escape(path.name)}"'

    return _HREF.sub(link, _SRC.sub(image, body))


def html_page(markdown_text: str, base_dir: str | Path, title: str) -> str:
    """The Markdown report as one self-contained HTML page; relative references resolve against `base_dir`."""
    import markdown

    body = embed_files(markdown.markdown(markdown_text, extensions=["tables"]), Path(base_dir), title)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n")
