"""Images as users have them (issue 26, item 1, part): a phone photo's EXIF orientation, 16-bit and float
pixels, files of several frames. Every file is made here."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from foveate import Agent, Answer
from foveate.errors import ImageLoadError
from foveate.imaging.images import load_image
from foveate.synthetic import generate_scene
from foveate.vlm.transformers_vlm import TransformersVLM

ORIENTATION = 0x0112


def _scene() -> tuple[Image.Image, str, list[str]]:
    image, item = generate_scene(3, 0, size_range=(256, 320), target_size_range=(30, 50))
    return image, item.question, list(item.options)


def test_a_phone_photo_is_seen_upright(tmp_path: Path, vlm: TransformersVLM) -> None:
    """The pixels stored sideways with EXIF orientation 6 (what a phone held upright writes) load as the
    upright picture, and the agent answers them as it answers the upright file."""
    upright, question, options = _scene()
    upright.save(tmp_path / "upright.jpg", quality=95)
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # "rotate 90 degrees clockwise to display"
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.jpg", quality=95, exif=exif)
    seen, reference = load_image(tmp_path / "phone.jpg"), load_image(tmp_path / "upright.jpg")
    assert seen.size == reference.size == upright.size
    difference = np.abs(np.asarray(seen, dtype=np.int16) - np.asarray(reference, dtype=np.int16))
    assert difference.mean() < 4  # JPEG noise, not a turned picture (turned: several tens)
    agent = Agent(vlm, workflow="direct", memory=None, checkpoints=None)
    assert (
        agent.ask(question, image=tmp_path / "phone.jpg", options=options).text
        == agent.ask(question, image=tmp_path / "upright.jpg", options=options).text
    )


def test_a_16_bit_scan_is_not_blank(tmp_path: Path) -> None:
    """A 16-bit greyscale PNG (microscopy, medical) with values 1,000..3,000: before, every pixel over 255
    was clipped and the image was all white."""
    ramp = np.tile(np.linspace(1000, 3000, 64), (48, 1)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "scan.png")
    assert Image.open(tmp_path / "scan.png").mode.startswith("I")
    seen = np.asarray(load_image(tmp_path / "scan.png"))[..., 0]
    assert seen.min() == 0 and seen.max() == 255  # the range stretched onto 8 bits
    assert (np.diff(seen.astype(int), axis=1) >= 0).all()  # brighter stays brighter
    crop = seen[10:30, 20:40]
    assert crop.std() > 5


def test_float_and_wide_integer_arrays_keep_their_contrast(caplog: pytest.LogCaptureFixture) -> None:
    unit = np.full((8, 8), 0.5)
    unit[0, 0] = 1.02  # one pixel a hair over 1: before, the 0.5s turned black
    assert np.asarray(load_image(unit))[4, 4, 0] > 100
    assert np.asarray(load_image(np.full((8, 8), 0.5)))[0, 0, 0] == 128
    counts = np.arange(64, dtype=np.int64).reshape(8, 8)  # numpy's default ints, values 0..63: kept
    assert np.asarray(load_image(counts))[7, 7, 0] == 63
    with caplog.at_level(logging.WARNING):
        flat = load_image(np.full((8, 8), 40000, dtype=np.uint16))
    assert np.asarray(flat)[0, 0, 0] == 128 and "single value" in caplog.text


def test_a_file_of_several_frames_says_which_it_uses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "blue", "green")]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    with caplog.at_level(logging.WARNING):
        first = load_image(tmp_path / "a.gif")
    assert "3 frames; frame 0 is used" in caplog.text
    assert first.getpixel((0, 0))[0] > 200  # red
    second = load_image(tmp_path / "a.gif", frame=1)
    assert second.getpixel((0, 0))[2] > 200  # blue
    with pytest.raises(ImageLoadError, match="no frame 5"):
        load_image(tmp_path / "a.gif", frame=5)


def _pdf(path: Path) -> None:
    """A two-page PDF (US Letter at 100 DPI): a red block on the first page, a blue one on the second."""
    pages = []
    for colour in ("red", "blue"):
        sheet = Image.new("RGB", (850, 1100), "white")
        sheet.paste(Image.new("RGB", (300, 200), colour), (100, 100))
        pages.append(sheet)
    pages[0].save(path, resolution=100, save_all=True, append_images=pages[1:])


def test_a_pdf_page_is_an_image_at_200_dpi(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _pdf(tmp_path / "doc.pdf")
    with caplog.at_level(logging.WARNING):
        first = load_image(tmp_path / "doc.pdf")
    assert "2 pages; page 0 is used" in caplog.text
    assert first.size == (1700, 2200)  # 8.5 x 11 inches at 200 DPI
    assert first.getpixel((400, 400))[0] > 200 > first.getpixel((400, 400))[2]  # the red block, scaled x2
    second = load_image((tmp_path / "doc.pdf").read_bytes(), page=1)
    assert second.getpixel((400, 400))[2] > 200 > second.getpixel((400, 400))[0]
    with pytest.raises(ImageLoadError, match="no page 2"):
        load_image(tmp_path / "doc.pdf", page=2)
    small = load_image(tmp_path / "doc.pdf", max_pixels=1_000_000)
    assert small.width * small.height <= 1_000_000  # a lower DPI rather than a refusal


def test_a_pdf_page_is_answered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from foveate.cli.main import app

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FOVEATE_CONFIG", str(tmp_path / "none.toml"))
    _pdf(tmp_path / "doc.pdf")
    args = ["run", str(tmp_path / "doc.pdf"), "What colour is the block?", "--options", "red,blue"]
    stores = ["--workflow", "direct", "--no-memory", "--checkpoints", str(tmp_path / "runs.db")]
    result = CliRunner().invoke(app, [*args, *stores])
    assert result.exit_code == 0, result.output
    assert "answer: " in result.output
    # --page picks another page, and the run's trace says which page it answered about
    second = CliRunner().invoke(app, [*args, *stores, "--page", "1", "--json"])
    assert second.exit_code == 0, second.output
    answer = Answer.model_validate_json(second.stdout)
    assert answer.trace[0] == f"input: the image is page 2 of 2 (page=1) of {tmp_path / 'doc.pdf'}"
    assert CliRunner().invoke(app, [*args, *stores, "--page", "2"]).exit_code == 2  # no third page
    shown = CliRunner().invoke(app, ["runs", answer.run_id, "--checkpoints", str(tmp_path / "runs.db")])
    assert "page 2 of 2" in shown.stdout


def test_the_trace_says_which_frame(tmp_path: Path, vlm: TransformersVLM) -> None:

    frames = [Image.new("RGB", (64, 64), colour) for colour in ("red", "blue", "green")]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    with Agent(vlm, workflow="direct", memory=None, checkpoints=None) as agent:
        first = agent.ask("What colour is it?", image=tmp_path / "a.gif", options=["red", "blue"])
        third = agent.ask(
            "What colour is it?", image=load_image(tmp_path / "a.gif", frame=2), options=["red", "blue"]
        )
    assert first.trace[0] == f"input: the image is frame 1 of 3 (frame=0) of {tmp_path / 'a.gif'}"
    assert third.trace[0] == f"input: the image is frame 3 of 3 (frame=2) of {tmp_path / 'a.gif'}"


def test_an_image_on_standard_input_and_a_url_on_the_command_line(tmp_path: Path) -> None:
    """`foveate run - "..."` reads the image from standard input; a URL is refused as a download (before,
    the path folded "http://" into "http:/" and said "not found")."""
    import subprocess
    import sys

    env = {**__import__("os").environ, "HOME": str(tmp_path), "FOVEATE_CONFIG": str(tmp_path / "none.toml")}
    picture = tmp_path / "p.png"
    Image.new("RGB", (64, 64), "red").save(picture)
    command = [sys.executable, "-m", "foveate.cli.main", "run"]
    flags = ["--workflow", "direct", "--no-memory", "--options", "red,blue"]
    piped = subprocess.run(
        [*command, "-", "What colour is it?", *flags],
        input=picture.read_bytes(),
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert piped.returncode == 0, piped.stderr.decode()
    assert b"answer: " in piped.stdout
    url = subprocess.run(
        [*command, "http://example.com/a.png", "What?", *flags], capture_output=True, env=env, timeout=300
    )
    assert url.returncode == 2 and b"does not download" in url.stderr, url.stderr.decode()


def test_an_interrupted_run_says_how_to_resume_it(tmp_path: Path) -> None:
    """The run id comes first, before the first node; Ctrl-C prints the exact command that goes on, and
    that command finishes the run (issue 26, item 4, part)."""
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "HOME": str(tmp_path), "FOVEATE_CONFIG": str(tmp_path / "none.toml")}
    image, item = generate_scene(4, 0, size_range=(1800, 2000))
    image.save(tmp_path / "scene.png")
    runs = ["--no-memory", "--checkpoints", str(tmp_path / "runs.db")]
    command = [sys.executable, "-m", "foveate.cli.main", "run", str(tmp_path / "scene.png"), item.question]
    command += ["--options", ",".join(item.options), "--workflow", "full", *runs]
    # Ctrl-C as a terminal gives it: the child starts with SIGINT's default action, whatever this process
    # inherited (an ignored SIGINT is inherited through exec, and Python then installs no KeyboardInterrupt:
    # in the full suite the child ran to the end and exited 0)
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("run "), first
    run_id = first.split()[1]
    node = proc.stdout.readline()  # the first node has finished and is checkpointed
    assert node.strip(), node
    assert proc.poll() is None, "the run ended before the test could interrupt it: give it a larger scene"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    hint = f"`foveate run --resume {run_id} --checkpoints {tmp_path / 'runs.db'}`"
    assert hint in err  # on one line, as it is copied
    resumed = subprocess.run(
        [sys.executable, "-m", "foveate.cli.main", "run", "--resume", run_id, *runs],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"run {run_id}" in resumed.stdout


def test_the_version_is_one_flag_away() -> None:
    from importlib.metadata import version

    from typer.testing import CliRunner

    from foveate.cli.main import app

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"foveate {version('foveate')}"


def test_a_16_bit_tiff_stack_is_read_frame_by_frame(tmp_path: Path) -> None:
    """A microscopy stack: two 16-bit planes in one TIFF (Pillow reads it; no tifffile needed). Each plane is
    scaled by its own range, so a dim plane (values up to 1500 of 65535) is not black."""
    ramp = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    bright, dim = Image.fromarray(ramp * 15), Image.fromarray(ramp // 3 + 100)
    bright.save(tmp_path / "stack.tif", save_all=True, append_images=[dim])
    planes = [np.asarray(load_image(tmp_path / "stack.tif", frame=k)) for k in (0, 1)]
    for plane in planes:
        assert plane.min() == 0 and plane.max() == 255  # stretched from its minimum to its maximum
    assert load_image(tmp_path / "stack.tif", frame=1).info["foveate_part"].startswith("frame 2 of 2")
    with pytest.raises(ImageLoadError, match="no frame 2"):
        load_image(tmp_path / "stack.tif", frame=2)


def test_a_page_is_a_pdfs_and_a_frame_an_images(tmp_path: Path) -> None:
    """--page on a PNG or --frame on a PDF was silently ignored; each is refused by name."""
    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    _pdf(tmp_path / "doc.pdf")
    with pytest.raises(ImageLoadError, match="is not a PDF: page=K"):
        load_image(tmp_path / "a.png", page=1)
    with pytest.raises(ImageLoadError, match="is a PDF: choose its page"):
        load_image((tmp_path / "doc.pdf").read_bytes(), frame=1)
