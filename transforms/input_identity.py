"""Whether the input changed, from object metadata: nothing of the input is read or hashed.

A list or CSV: its size and update time (Beam's file metadata: the file's mtime
locally, the object's update time on GCS, where any rewrite makes a new object generation).
A folder: its class folder names, and on a file system with directories each class folder's
mtime (which adding, removing or renaming an image in it changes). An object store has no
folder metadata: on gs:// an image added to an existing class is not seen here.

Recorded when a run starts (its run.json identity, so --resume refuses a changed input) and
compared again by Finalize (a list edited while it was converted fails the run).
"""

from __future__ import annotations

import hashlib
import os

from apache_beam.io.filesystems import FileSystems

from imgshard.transforms.class_folders import class_folders
from imgshard.transforms.list_splits import file_metadata

__all__ = ["describe_change", "input_identity"]


def input_identity(uri: str, kind: str) -> dict:
    if kind != "folder":
        found = file_metadata(uri)
        return {"size": found.size_in_bytes, "updated": found.last_updated_in_seconds}
    root = uri.rstrip("/")
    names = class_folders(root)
    local = FileSystems.get_scheme(root) is None
    digest = hashlib.sha256()
    for name in names:
        stamp = f"\t{os.stat(os.path.join(root, name)).st_mtime_ns}" if local else ""
        digest.update(f"{name}{stamp}\n".encode())
    return {"classes": len(names), "class_folders": digest.hexdigest()}


def describe_change(uri: str, recorded: dict, current: dict) -> str | None:
    """None if unchanged, else what changed, for an error message."""
    if recorded == current:
        return None
    changed = ", ".join(
        f"{key} {recorded.get(key)} -> {current.get(key)}"
        for key in sorted(set(recorded) | set(current))
        if recorded.get(key) != current.get(key)
    )
    return f"{uri} changed while it was converted ({changed}); convert it again"
