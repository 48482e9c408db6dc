"""The end-of-run summary a person reads."""

from __future__ import annotations

from apache_beam.io.filesystems import FileSystems

__all__ = ["box_warnings", "format_summary"]


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def box_warnings(meta: dict, counters: dict[str, int]) -> list[str]:
    """What went wrong with --boxes, for the summary and stderr: a box source that matched no
    written image (file names that do not match, wrong folder), and annotation files skipped
    as malformed (their names are in the log). A warning, not an error: the shards are
    complete and correct, only without (some) boxes; the user decides whether to rerun."""
    boxes = meta.get("settings", {}).get("boxes")
    if not boxes:
        return []
    warnings = []
    if counters.get("records_written", 0) and not counters.get("records_with_boxes", 0):
        warnings.append(
            f"--boxes {boxes} matched none of the {counters['records_written']:,} images "
            "written: no record has a box. Boxes are matched by file name without extension "
            "(n01440764_10026.JPEG <- n01440764_10026.xml or the CSV row "
            "n01440764_10026.JPEG,...)"
        )
    skipped = counters.get("box_files_skipped", 0)
    if skipped:
        warnings.append(
            f"--boxes: {skipped:,} annotation files were malformed and skipped (named in the "
            "log above); their images were written without boxes"
        )
    return warnings


def format_summary(output: str, meta: dict, seconds: float, counters: dict[str, int]) -> str:
    records = meta["num_records"]
    shard_records = [s["records"] for s in meta["shards"]]
    lines = [
        f"imgshard: {records:,} records in {meta['num_shards']} shards -> {output}",
        f"  shards     {FileSystems.join(output, meta['shards'][0]['name'])} ... "
        f"({min(shard_records):,}-{max(shard_records):,} records, "
        f"{_size(meta['bytes'] / max(1, meta['num_shards']))} each on average)",
        f"  inputs     {meta['num_inputs']:,} listed, {records:,} written, "
        f"{meta['num_rejected']:,} rejected",
    ]
    for reason, count in meta["rejected"]["by_reason"].items():
        lines.append(f"    {reason:<18} {count:,}")
    if meta["num_rejected"]:
        lines.append(f"    report: {FileSystems.join(output, meta['rejected']['file'])}")
    labels = meta["labels"]
    counts = [c for c in labels["counts"] if c]
    lines.append(
        f"  labels     {labels['num_classes']} classes ({labels['kind']}), "
        f"{min(counts, default=0):,}-{max(counts, default=0):,} records each; "
        f"{FileSystems.join(output, labels['file'])}"
    )
    settings = meta["settings"]
    lines.append(
        f"  shuffle    {settings['shuffle']}, seed {settings['seed']}; resize "
        f"{settings['image']['resize']}, JPEG quality {settings['image']['quality']}"
    )
    lines.append(f"  bytes      {_size(meta['bytes_in'])} read, {_size(meta['bytes'])} written")
    rate = records / seconds if seconds > 0 else 0.0
    lines.append(f"  time       {seconds:.1f} s ({rate:,.0f} images/s)")
    if counters:
        shown = ", ".join(f"{k}={v:,}" for k, v in sorted(counters.items()))
        lines.append(f"  counters   {shown}")
    readers = meta.get("readers")
    if readers:
        lines.append(
            f"  readers    {readers['timm_info']} (timm), {readers['wids_index']} (wids); "
            f"timm split from the parent folder: '{FileSystems.split(output)[1]}/"
            f"{readers['timm_split']}'"
        )
    lines += [f"  WARNING    {warning}" for warning in box_warnings(meta, counters)]
    lines.append(f"  metadata   {FileSystems.join(output, 'dataset.json')}")
    return "\n".join(lines)
