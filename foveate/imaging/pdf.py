"""PDF pages as images (pypdfium2, PDFium's Python binding): a document page is rendered at a resolution
that keeps its detail, and then read like any other image.

The page is rendered at 200 DPI (a 10 pt line of text becomes about 28 pixels tall: legible to a VLM once
zoom has cropped around it; a US Letter page is 1700 x 2200). A page that would pass the pixel limit at
that resolution is rendered at the highest resolution under it, with a warning naming the DPI used.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from PIL import Image

from foveate.errors import ImageLoadError

__all__ = ["PDF_DPI", "is_pdf", "render_pdf_page"]

log = logging.getLogger(__name__)

PDF_DPI = 200
_MAGIC = b"%PDF-"


def is_pdf(head: bytes) -> bool:
    """Whether a file's first bytes are a PDF's (``%PDF-``)."""
    return head.startswith(_MAGIC)


def render_pdf_page(
    document: bytes | Path, source: str, page: int | None, max_pixels: int, dpi: int = PDF_DPI
) -> Image.Image:
    """Page ``page`` (the first when None, with a warning if there are more) of a PDF, as an RGB image."""
    try:
        import pypdfium2 as pdfium
    except ImportError:  # pragma: no cover - a dependency; named in case it was removed
        raise ImageLoadError(f"{source} is a PDF, and reading PDF pages needs pypdfium2") from None
    try:
        doc = pdfium.PdfDocument(document if isinstance(document, bytes) else str(document))
    except pdfium.PdfiumError as exc:
        raise ImageLoadError(f"cannot read PDF {source}: {exc}") from None
    try:
        pages = len(doc)
        if page is None:
            if pages > 1:
                log.warning(
                    "PDF %s has %d pages; page 0 is used (page=K or foveate run --page K: another)",
                    source,
                    pages,
                )
            page = 0
        if not 0 <= page < pages:
            raise ImageLoadError(f"PDF {source} has {pages} page(s); there is no page {page}")
        sheet = doc[page]
        width, height = sheet.get_size()  # in points, 72 to the inch
        scale = dpi / 72
        if width * height * scale * scale > max_pixels:
            scale = math.sqrt(max_pixels / (width * height)) * 0.999
            log.warning(
                "page %d of %s rendered at %d DPI to stay under %d pixels",
                page,
                source,
                int(scale * 72),
                max_pixels,
            )
        picture = sheet.render(scale=scale).to_pil().convert("RGB")
        # which page, for the run's trace (foveate.imaging.images.PART)
        picture.info["foveate_part"] = f"page {page + 1} of {pages} (page={page}) of {source}"
        return picture
    finally:
        doc.close()
