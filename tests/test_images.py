"""Image inputs: every accepted form decodes the same, and bad input gets a clear error."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from foveate.errors import ImageLoadError, ImageTooLargeError
from foveate.imaging.images import load_image, to_data_uri
from foveate.vlm.types import Message, VLMRequest


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def picture() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (17, 23, 3), dtype=np.uint8))


def test_every_input_form_gives_the_same_pixels(picture: Image.Image, tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    picture.save(path)
    data = _png_bytes(picture)
    forms = [picture, np.asarray(picture), data, str(path), path, to_data_uri(picture)]
    expected = np.asarray(picture)
    for form in forms:
        got = load_image(form)
        assert got.mode == "RGB"
        assert np.array_equal(np.asarray(got), expected), type(form)


def test_float_grey_and_alpha_arrays() -> None:
    grey = load_image(np.full((4, 5), 0.5))
    assert grey.size == (5, 4) and np.asarray(grey)[0, 0, 0] == 128
    rgba = np.zeros((3, 3, 4), dtype=np.uint8)  # fully transparent black -> white
    assert np.asarray(load_image(rgba))[0, 0].tolist() == [255, 255, 255]


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(ImageLoadError, match="not found.*nope.png"):
        load_image(missing)


def test_corrupt_file_names_the_path(tmp_path: Path, picture: Image.Image) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(_png_bytes(picture)[:60])  # truncated PNG
    with pytest.raises(ImageLoadError, match=r"cannot decode image from .*bad\.png"):
        load_image(bad)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"this is not an image at all")
    with pytest.raises(ImageLoadError, match="junk.jpg"):
        load_image(junk)


def _bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming a huge size; the pixels are never decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_refused_before_decoding(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_bomb_png(60000, 60000))
    with pytest.raises(ImageTooLargeError, match=r"bomb\.png is too large.*3600000000"):
        load_image(bomb)
    modest = tmp_path / "modest.png"
    modest.write_bytes(_bomb_png(12000, 9000))  # under PIL's own limit, over ours
    with pytest.raises(ImageTooLargeError, match=r"12000x9000 = 108,000,000 pixels, above the limit"):
        load_image(modest)
    with pytest.raises(ImageTooLargeError):
        load_image(np.zeros((200, 200, 3), dtype=np.uint8), max_pixels=100)


def test_urls_are_refused_not_downloaded() -> None:
    with pytest.raises(ImageLoadError, match="does not download"):
        load_image("https://example.com/cat.png")


def test_bad_data_uri_and_shapes() -> None:
    with pytest.raises(ImageLoadError, match="base64"):
        load_image("data:image/png;base64,@@@@")
    with pytest.raises(ImageLoadError, match="shape"):
        load_image(np.zeros((2, 3, 5), dtype=np.uint8))
    with pytest.raises(ImageLoadError, match="unsupported image input"):
        load_image(3.14)


def test_messages_interleave_text_and_images(picture: Image.Image) -> None:
    data = base64.b64encode(_png_bytes(picture)).decode()
    msg = Message.user("compare", picture, "with", f"data:image/png;base64,{data}", np.asarray(picture))
    assert [p.type for p in msg.content] == ["text", "image", "text", "image", "image"]
    request = VLMRequest(messages=[msg])
    assert len(request.images) == 3
    with pytest.raises(ImageLoadError):
        Message.user("x", Path("/definitely/not/here.png"))
