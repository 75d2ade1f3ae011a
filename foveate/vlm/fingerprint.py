"""What identifies a model's weights: a calibration made for one model says nothing about another.

A local model is identified by the SHA-256 of the files in its folder (weights, config, tokenizer,
chat template: anything that changes what it answers); a served model by the server's URL and the name it
serves (the server's weights are out of reach, so a redeployed model under the same name is the same to
us: the README says so). Hashing reads every byte (a 15 GB model: about 15 s on a fast disk), so a
backend computes it once, when first asked, and keeps it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["folder_fingerprint", "source_fingerprint"]

# documentation, download bookkeeping and the gates calibrated for the model: not what the model answers
_SKIPPED = (".md", ".txt", ".lock", "foveate_gates.json")
_CHUNK = 1 << 22


def folder_fingerprint(folder: str | os.PathLike[str]) -> str:
    """``sha256:HEX`` over the names and contents of the folder's files (README-like files left out)."""
    path = Path(folder)
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.endswith(_SKIPPED))
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode("utf-8") + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def source_fingerprint(source: str) -> str:
    """A local model folder's fingerprint; a hub id's, from its snapshot in the local cache; else the id
    alone (``id:...``, when the snapshot cannot be found)."""
    folder = source
    if not os.path.isdir(folder):
        from huggingface_hub import snapshot_download

        try:
            folder = snapshot_download(source, local_files_only=True)
        except Exception:
            return f"id:{source}"
    return folder_fingerprint(folder)
