"""What a chat request asks ``foveate serve``: the last user message's question and its one image, read
within the server's limits (question length, image pixels; a ``data:`` URI, or a ``file://`` URL inside the
folder the server takes local files from; never a download)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from PIL import Image

from foveate.errors import FoveateError, ImageTooLargeError
from foveate.imaging import load_image
from foveate.server.limits import ServerLimits
from foveate.server.protocol import ChatRequest, ImagePart, TextPart
from foveate.server.refusals import Refused

__all__ = ["question_and_image"]


def question_and_image(body: ChatRequest, limits: ServerLimits) -> tuple[str, Image.Image]:
    """The last user message's text and its one image."""
    user = next((m for m in reversed(body.messages) if m.role == "user"), None)
    if user is None or user.content is None:
        raise Refused(400, "no user message: put the question and the image in one", "no_question")
    parts = [TextPart(type="text", text=user.content)] if isinstance(user.content, str) else user.content
    text = " ".join(p.text for p in parts if isinstance(p, TextPart)).strip()
    images = [p.image_url.url for p in parts if isinstance(p, ImagePart)]
    if not text:
        raise Refused(400, "the user message has no question text", "no_question")
    if len(text) > limits.max_question_chars:
        raise Refused(
            400,
            f"the question is {len(text):,} characters, past this server's limit of "
            f"{limits.max_question_chars:,}",
            "question_too_long",
        )
    if len(images) != 1:
        raise Refused(400, f"give one image (an image_url part); this message has {len(images)}", "one_image")
    url: str | Path = images[0]
    if str(url).startswith("file:"):
        url = _local_file(str(url), limits)
    elif not str(url).startswith("data:"):
        raise Refused(400, "foveate does not download images: send the image as a data: URI", "remote_image")
    elif str(url).partition(",")[2].startswith("JVBER"):  # base64 of "%PDF": a page has no pixel bound
        raise Refused(400, "send a PDF page as an image (PNG, JPEG); this server does not render PDFs", "pdf")
    try:
        return text, load_image(url, max_pixels=limits.max_pixels)
    except ImageTooLargeError as exc:
        raise Refused(413, str(exc), "image_too_large") from None
    except FoveateError as exc:
        raise Refused(400, str(exc), "bad_image") from None


def _local_file(url: str, limits: ServerLimits) -> Path:
    """A ``file://`` URL's file, when the server takes local files and it lies in their folder (after
    resolving symbolic links and ``..``: a request never reads outside it)."""
    if limits.local_files is None:
        said = (
            "this server takes images as data: URIs only (foveate serve --local-files DIR takes file:// URLs)"
        )
        raise Refused(400, said, "local_files_off")
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise Refused(
            400, f"a file:// URL names a file on this machine, not on {parsed.netloc}", "bad_file_url"
        )
    root = limits.local_files.resolve()
    try:
        path = Path(unquote(parsed.path)).resolve()
    except (ValueError, OSError) as exc:  # a NUL byte, a loop of links
        raise Refused(400, f"{url!r:.200} names no file: {exc}", "bad_file_url") from None
    if not path.is_relative_to(root):  # the URL, not the resolved path: where links lead stays unsaid
        said = f"{url!r:.200} is outside the folder this server reads images from"
        raise Refused(403, said, "outside_local_files")
    if path.suffix.lower() == ".pdf":
        raise Refused(400, "send a PDF page as an image (PNG, JPEG); this server does not render PDFs", "pdf")
    return path
