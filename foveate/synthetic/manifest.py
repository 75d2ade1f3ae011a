"""A benchmark on disk: PNG scenes beside a JSON Lines manifest, written and read back with checks."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydantic import ValidationError

from foveate.errors import ManifestError, validation_problems
from foveate.files import regular_file
from foveate.synthetic.items import SceneItem
from foveate.synthetic.scenes import generate_scene

__all__ = ["MANIFEST_NAME", "image_path", "load_manifest", "make_benchmark"]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"


def make_benchmark(out_dir: Path, n: int, seed: int, **kwargs: object) -> list[SceneItem]:
    """Write ``n`` scenes to ``out_dir/images/{id}.png`` and ``out_dir/manifest.jsonl`` (one item per line).

    ``kwargs`` go to :func:`generate_scene`. Categories alternate by index (even: attribute, odd: relation)
    unless ``category`` is given. The manifest is written last, atomically.
    """
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    items = []
    for index in range(n):
        img, item = generate_scene(seed, index, **kwargs)  # type: ignore[arg-type]
        img.save(out_dir / item.image, format="PNG", compress_level=1)
        items.append(item)
        logger.debug("wrote %s (%dx%d, %s)", item.image, item.width, item.height, item.category)
    manifest = out_dir / MANIFEST_NAME
    tmp = manifest.with_name(manifest.name + ".tmp")
    tmp.write_text("".join(item.model_dump_json() + "\n" for item in items), encoding="utf-8")
    os.replace(tmp, manifest)
    logger.info("wrote %d scenes (seed %d) to %s", n, seed, out_dir)
    return items


def load_manifest(path_or_dir: str | Path) -> list[SceneItem]:
    """Read and validate a manifest (the ``.jsonl`` file, or the folder holding ``manifest.jsonl``).

    Blank lines are skipped. A bad line raises :class:`ManifestError` naming the file and the line number.
    """
    path = Path(path_or_dir)
    if str(path_or_dir).strip() and path.is_dir():
        path = path / MANIFEST_NAME
    path = regular_file(path, "scene manifest", ManifestError)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read scene manifest {path}: {exc}") from exc
    items = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(SceneItem.model_validate_json(line))
        except ValidationError as exc:
            raise ManifestError(
                f"{path}, line {lineno}: not a valid scene item: {validation_problems(exc, '<item>')}"
            ) from None
    return items


def image_path(item: SceneItem, root: str | Path) -> Path:
    """Where ``item``'s image lies, given the benchmark folder (or its manifest file)."""
    root = Path(root)
    if root.suffix == ".jsonl":
        root = root.parent
    return root / item.image
