"""Loading images from the many forms users hand us, safely.

Paths, PIL images, numpy arrays, raw bytes and ``data:`` URIs are accepted. URLs are
refused on purpose: foveate never downloads anything at run time. Sizes are checked from
the file header *before* pixels are decoded, so a decompression bomb is refused without
allocating memory for it.

Images are seen as their owner sees them: a phone photo's EXIF orientation is applied (crop boxes,
traces and answers are in the upright frame), pixels deeper than 8 bits are scaled by their range
(``foveate.imaging.depth``), a file of several frames (GIF, multi-page TIFF) gives the ``frame``
asked for, the first by default, with a warning that says so, and a PDF gives its ``page``, rendered at
200 DPI (``foveate.imaging.pdf``).
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from foveate.errors import ImageLoadError, ImageTooLargeError
from foveate.files import regular_file
from foveate.imaging.depth import to_uint8
from foveate.imaging.pdf import is_pdf, render_pdf_page

log = logging.getLogger(__name__)

# 100 megapixels: 10k x 10k. Larger than any V* / HR-Bench 8K image, small enough to be safe.
DEFAULT_MAX_PIXELS = 100_000_000
PART = "foveate_part"
"""The key of ``Image.info`` that says which frame or PDF page an image is ("page 2 of 3 (page=1) of
doc.pdf"): a run that starts from it says so in its trace."""

ImageInput = Any  # str | Path | PIL.Image.Image | np.ndarray | bytes (kept loose for pydantic)

_DATA_URI = re.compile(
    r"^data:(?P<mime>[\w/+.-]*)(?P<params>(;[\w=.-]+)*?)(?P<b64>;base64)?,(?P<data>.*)$", re.S
)


def _check_pixels(width: int, height: int, max_pixels: int, source: str) -> None:
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"image from {source} has an empty size {width}x{height}")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image from {source} is {width}x{height} = {width * height:,} pixels, above the limit of "
            f"{max_pixels:,} (a decompression-bomb guard); raise max_pixels if this image is genuine"
        )


def _open_bytes(
    data: bytes, source: str, max_pixels: int, frame: int | None = None, page: int | None = None
) -> Image.Image:
    if not data:
        raise ImageLoadError(f"image from {source} is empty (0 bytes)")
    _one_of(is_pdf(data[:8]), source, frame, page)
    if is_pdf(data[:8]):
        return render_pdf_page(data, source, page, max_pixels)
    return _decode(io.BytesIO(data), source, max_pixels, frame)


def _one_of(pdf: bool, source: str, frame: int | None, page: int | None) -> None:
    """A page is a PDF's, a frame an image file's: the other is refused, not silently ignored."""
    if pdf and frame is not None:
        raise ImageLoadError(f"{source} is a PDF: choose its page (page=K, --page K), not a frame")
    if not pdf and page is not None:
        raise ImageLoadError(f"{source} is not a PDF: page=K (--page K) is for PDFs; frame=K picks a frame")


@contextmanager
def _opened(
    stream: BinaryIO, source: str, max_pixels: int, frame: int | None
) -> Iterator[tuple[Image.Image, str | None]]:
    """The image in ``stream`` opened from its header (size checked, frame chosen; no pixel decoded yet), and
    which frame it is, with PIL's errors said as foveate's for the whole block."""
    try:
        with warnings.catch_warnings():
            # Our own limit (checked from the header, before decoding) is the one that counts.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(stream)
            _check_pixels(img.width, img.height, max_pixels, source)
            yield img, _seek(img, frame, source)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            f"image from {source} is too large to decode safely ({exc}); foveate's limit is "
            f"{max_pixels:,} pixels (a decompression-bomb guard)"
        ) from exc
    except UnidentifiedImageError:
        raise ImageLoadError(f"{source} is not an image foveate can read (unknown format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"cannot decode image from {source}: {exc}") from exc


def _decode(stream: BinaryIO, source: str, max_pixels: int, frame: int | None = None) -> Image.Image:
    """Decode from a stream: PIL reads the header first, so the size is checked before any pixel data is
    read, and a file is never read whole into memory (a 20 GB file with a small image's header costs no
    more than the image)."""
    with _opened(stream, source, max_pixels, frame) as (img, part):
        img.load()
        upright = _upright(img)
    rgb = to_rgb(upright, source)
    if part is not None:  # which frame, for the run's trace (PART)
        rgb = rgb if rgb is not img else rgb.copy()
        rgb.info[PART] = part
    return rgb


def _upright(img: Image.Image) -> Image.Image:
    """A phone photo as its owner sees it: the EXIF orientation applied (a copy only when there is one;
    images made in memory carry none, and copying each would cost every call)."""
    if img.getexif().get(0x0112, 1) in (None, 1):  # 0x0112: Orientation
        return img
    return ImageOps.exif_transpose(img)


def _seek(img: Image.Image, frame: int | None, source: str) -> str | None:
    """Go to ``frame`` of a file of several; without one, the first, said in a warning. Which frame of how
    many, for the trace (None: a file of one)."""
    frames = int(getattr(img, "n_frames", 1))
    if frame is None:
        if frames > 1:
            log.warning(
                "image from %s has %d frames; frame 0 is used (frame=K or foveate run --frame K: another)",
                source,
                frames,
            )
        frame = 0
    if not 0 <= frame < frames:
        raise ImageLoadError(f"image from {source} has {frames} frame(s); there is no frame {frame}")
    if frame:
        img.seek(frame)
    return f"frame {frame + 1} of {frames} (frame={frame}) of {source}" if frames > 1 else None


def to_rgb(img: Image.Image, source: str = "PIL image") -> Image.Image:
    """Return an RGB copy; transparent areas become white, as a viewer would show them; 16-bit and float
    pixels (modes ``I;16``, ``I``, ``F``) scaled to 8 bits by their range (``foveate.imaging.depth``)."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I") or img.mode == "F":
        return Image.fromarray(to_uint8(np.asarray(img), source)).convert("RGB")
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def _from_array(arr: np.ndarray, max_pixels: int) -> Image.Image:
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ImageLoadError(
            f"numpy image must be HxW, HxWx3 or HxWx4 (channels last); got shape {tuple(arr.shape)}"
        )
    _check_pixels(arr.shape[1], arr.shape[0], max_pixels, "numpy array")
    return to_rgb(Image.fromarray(np.ascontiguousarray(to_uint8(arr, "numpy array"))))


def _from_data_uri(uri: str, max_pixels: int, frame: int | None = None) -> Image.Image:
    match = _DATA_URI.match(uri.strip())
    if match is None:
        raise ImageLoadError("malformed data URI: expected 'data:image/<type>;base64,<data>'")
    payload = match.group("data")
    if match.group("b64"):
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageLoadError(f"data URI holds invalid base64: {exc}") from exc
    else:
        from urllib.parse import unquote_to_bytes

        data = unquote_to_bytes(payload)
    return _open_bytes(data, "data URI", max_pixels, frame)


def load_image(
    source: ImageInput,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    frame: int | None = None,
    page: int | None = None,
) -> Image.Image:
    """Turn any supported image input into an RGB ``PIL.Image``, upright (EXIF orientation applied) and
    8-bit (deeper pixels scaled by their range). ``frame``: which frame of a GIF or multi-page TIFF;
    ``page``: which page of a PDF (each the first by default, with a warning when there are more).

    Raises ``ImageLoadError`` (missing file, corrupt data, a URL, a wrong array shape, no such frame) or
    ``ImageTooLargeError`` (more than ``max_pixels``), each naming the source.
    """
    if isinstance(source, Image.Image):
        name = getattr(source, "filename", "") or "PIL image"
        _check_pixels(source.width, source.height, max_pixels, "PIL image")
        try:
            _seek(source, frame, name)
            source.load()  # a lazily opened file fails here, with its name, not deep inside a model call
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageLoadError(f"cannot decode image from {name}: {exc}") from exc
        rgb = to_rgb(_upright(source), name)
        return rgb.copy() if rgb is source else rgb
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _open_bytes(bytes(source), "bytes", max_pixels, frame, page)
    if isinstance(source, str) and source.startswith("data:"):
        return _from_data_uri(source, max_pixels, frame)
    if isinstance(source, (str, Path)):
        return _from_file(_local_path(source), max_pixels, frame, page)
    raise ImageLoadError(
        f"unsupported image input of type {type(source).__name__}; "
        "use a path, PIL image, numpy array, bytes or data: URI"
    )


def _local_path(source: str | Path) -> Path:
    if isinstance(source, str) and re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source):
        raise ImageLoadError(
            f"foveate does not download images ({source!r}); pass a local path, bytes, a PIL image, "
            "a numpy array or a data: URI"
        )
    if not str(source).strip():
        raise ImageLoadError("the image path is empty")
    return Path(source).expanduser()


def check_image(
    source: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS, frame: int | None = None
) -> None:
    """What ``load_image`` refuses about an image file, found from its header without decoding a pixel:
    for a command to name a bad image before it loads a model. Other inputs (bytes, arrays, ``data:``
    URIs) are in memory already and are checked when decoded; a PDF's page is checked when rendered."""
    if isinstance(source, (str, Path)) and not str(source).startswith("data:"):
        _read_file(_local_path(source), max_pixels, frame, None, decode=False)


def _from_file(path: Path, max_pixels: int, frame: int | None = None, page: int | None = None) -> Image.Image:
    image = _read_file(path, max_pixels, frame, page, decode=True)
    assert image is not None  # decode=True always gives one
    return image


def _read_file(
    path: Path, max_pixels: int, frame: int | None, page: int | None, *, decode: bool
) -> Image.Image | None:
    """A regular file's image (``decode=False``: only its header checked). Anything else is refused before
    it is opened: a FIFO or a device would block or never end (``/dev/zero``); a symlink loop is named as
    one, not as a missing file."""
    path = regular_file(path, "image file", ImageLoadError)
    if path.stat().st_size == 0:
        raise ImageLoadError(f"image from {path} is empty (0 bytes)")
    try:
        with path.open("rb") as stream:
            pdf = is_pdf(stream.read(8))
            _one_of(pdf, str(path), frame, page)
            if pdf:
                return render_pdf_page(path, str(path), page, max_pixels) if decode else None
            stream.seek(0)
            if decode:
                return _decode(stream, str(path), max_pixels, frame)
            # frame 0 is said (a warning) once, when the image is loaded, not here as well
            with _opened(stream, str(path), max_pixels, 0 if frame is None else frame):
                return None
    except ImageLoadError:
        raise
    except OSError as exc:  # unreadable: permissions, an I/O error
        raise ImageLoadError(f"cannot read image file {path}: {exc.strerror or exc}") from exc


def to_data_uri(img: Image.Image, fmt: str = "PNG") -> str:
    """Encode an image as a ``data:`` URI (what OpenAI-compatible servers take)."""
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    mime = "image/png" if fmt.upper() == "PNG" else f"image/{fmt.lower()}"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def resize_to(img: Image.Image, height: int, width: int) -> Image.Image:
    """Resize with a good downsampling filter; a no-op when the size already matches."""
    if (img.height, img.width) == (height, width):
        return img
    return img.resize((width, height), Image.Resampling.BICUBIC)
