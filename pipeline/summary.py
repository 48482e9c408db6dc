"""The end-of-run summary a person reads."""

from __future__ import annotations

from apache_beam.io.filesystems import FileSystems

__all__ = ["format_summary"]


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


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
    lines.append(f"  metadata   {FileSystems.join(output, 'dataset.json')}")
    return "\n".join(lines)
