"""Broken and hostile inputs: fuzzed image bytes, bombs, paths out of the tree, odd files.

Every input still ends as a record or a rejected line with a reason; nothing hangs, nothing
outside --image-root is read unless the user opts in.
"""

import io
import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from helpers import IMGSHARD, IN_PROCESS, encode, jpeg, photo, write
from imgshard.pipeline import ConversionError, run
from imgshard.transforms import records
from imgshard.transforms.image import ImageRejected, ImageSpec, ResizeSpec, process_image
from imgshard.transforms.reading import MAX_FILE_BYTES, ReadFailed, read_bytes

# Real encoder output of each format the decode path meets, small enough to fuzz quickly.
SEEDS = {
    "jpeg": jpeg(64, 48),
    "jpeg-progressive": jpeg(64, 48, seed=1, progressive=True),
    "jpeg-cmyk": encode(photo(40, 30).convert("CMYK"), "JPEG"),
    "png-rgba": encode(photo(40, 30).convert("RGBA"), "PNG"),
    "png-palette": encode(photo(40, 30).convert("P"), "PNG"),
    "gif": encode(photo(40, 30).convert("P"), "GIF"),
    "webp": encode(photo(40, 30), "WEBP"),
}
# Keeps one fuzzed example's decode small, so the deadline measures hangs, not big images.
FUZZ_SPEC = ImageSpec(resize=ResizeSpec("shorter", 32, 32), max_pixels=4_000_000)

MUTATION = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "truncate", "repeat", "dimensions"]),
    st.floats(0, 1, allow_nan=False),
    st.integers(0, 255),
    st.integers(1, 64),
)


def mutate(data: bytes, mutations) -> bytes:
    out = bytearray(data)
    for kind, where, value, length in mutations:
        at = int(where * max(0, len(out) - 1))
        if kind == "flip":
            out[at] = value
        elif kind == "insert":
            out[at:at] = bytes([value]) * length
        elif kind == "delete":
            del out[at : at + length]
        elif kind == "truncate":
            del out[at:]
        elif kind == "repeat":
            out[at:at] = out[at : at + length]
        else:  # declared size: the SOF of a JPEG, the IHDR of a PNG
            big = (value << 8 | length).to_bytes(2, "big")
            for marker, offset in ((b"\xff\xc0", 5), (b"\xff\xc2", 5), (b"IHDR", 6)):
                found = out.find(marker)
                if found >= 0:
                    out[found + offset : found + offset + 2] = big
        if not out:
            break
    return bytes(out)


@settings(
    max_examples=1000,
    deadline=3000,  # ms per example: a hang fails, slow CI machines do not
    derandomize=True,  # the same examples on every run: CI stays reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.sampled_from(sorted(SEEDS)), mutations=st.lists(MUTATION, min_size=1, max_size=6))
def test_mutated_images_become_a_record_or_a_rejection_with_a_reason(seed, mutations):
    data = mutate(SEEDS[seed], mutations)
    for spec in (FUZZ_SPEC, ImageSpec(resize=ResizeSpec("none"), max_pixels=4_000_000)):
        try:
            result = process_image(data, spec)
        except ImageRejected as rejected:
            assert rejected.reason in records.REASONS and rejected.detail
            continue
        image = Image.open(io.BytesIO(result.encoded))
        image.load()  # what we write always decodes
        assert image.size == (result.width, result.height)


def test_fuzzed_files_through_the_job_are_all_accounted_for(tmp_path):
    import random

    rng = random.Random(5)
    lines = []
    for i in range(60):
        seed = sorted(SEEDS)[i % len(SEEDS)]
        mutations = [
            (
                rng.choice(["flip", "insert", "delete", "truncate", "repeat", "dimensions"]),
                rng.random(),
                rng.randrange(256),
                rng.randrange(1, 64),
            )
            for _ in range(rng.randrange(1, 4))
        ]
        write(str(tmp_path / "fuzz" / f"{i}.img"), mutate(SEEDS[seed], mutations))
        lines.append(f"fuzz/{i}.img {i % 3}\n")
    (tmp_path / "train.txt").write_text("".join(lines))
    result = run(
        [
            "--input",
            str(tmp_path / "train.txt"),
            "--output",
            str(tmp_path / "out"),
            "--max-reject-fraction",
            "1",
            *IN_PROCESS,
        ]
    )
    meta = result.metadata
    assert meta["num_records"] + meta["num_rejected"] == 60
    assert meta["num_records"] > 0 and meta["num_rejected"] > 0  # the fuzz hit both sides
    report = (tmp_path / "out" / "train-rejected.jsonl").read_text().splitlines()
    assert len(report) == meta["num_rejected"]
    assert all(json.loads(line)["reason"] in records.REASONS for line in report)


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_decompression_bombs_are_refused_with_bounded_memory(kind):
    # A fresh process, so its peak resident memory is the bomb's doing alone (Pillow
    # allocates pixels in C, where tracemalloc cannot see them).
    code = f"""
import resource, sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
from helpers import jpeg, png_bomb
from imgshard.transforms.image import ImageRejected, ImageSpec, process_image
if {kind!r} == "png":
    data = png_bomb(60_000, 60_000)
else:
    data = bytearray(jpeg(16, 16))
    sof = data.index(b"\\xff\\xc0")
    data[sof + 5 : sof + 9] = (65_000).to_bytes(2, "big") * 2
    data = bytes(data)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    process_image(data, ImageSpec())
    print("accepted")
except ImageRejected as e:
    print(e.reason, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    reason, grown_kib = done.stdout.split()
    assert reason == records.TOO_MANY_PIXELS
    assert int(grown_kib) < 20_000  # 60000^2 RGB pixels would be 10 GB


@pytest.fixture
def tree(tmp_path):
    """An image root with paths that stay inside it and paths that lead out of it."""
    root = tmp_path / "root"
    outside = tmp_path / "elsewhere"
    write(str(outside / "secret.JPEG"), jpeg(40, 30, seed=3))
    write(str(outside / "other.JPEG"), jpeg(40, 30, seed=4))
    write(str(root / "a" / "in.JPEG"), jpeg(40, 30))
    os.symlink(root / "a" / "in.JPEG", root / "a" / "link-inside.JPEG")
    os.symlink(outside / "secret.JPEG", root / "a" / "link-out.JPEG")
    os.symlink(outside, root / "dir-out")
    lines = {
        "a/in.JPEG": None,
        "a/link-inside.JPEG": None,  # a symlink that stays in the tree is fine
        f"{root}/a/in.JPEG": None,  # an absolute path inside the root too
        "../elsewhere/secret.JPEG": records.OUTSIDE_ROOT,
        "a/../../elsewhere/other.JPEG": records.OUTSIDE_ROOT,
        f"{outside}/secret.JPEG": records.OUTSIDE_ROOT,
        "a/link-out.JPEG": records.OUTSIDE_ROOT,
        "dir-out/secret.JPEG": records.OUTSIDE_ROOT,
    }
    (tmp_path / "train.txt").write_text("".join(f"{path} 0\n" for path in lines))
    return tmp_path / "train.txt", root, lines


def _reasons(output) -> dict[str, str]:
    report = (output / "train-rejected.jsonl").read_text().splitlines()
    return {json.loads(x)["path"]: json.loads(x)["reason"] for x in report}


def test_paths_that_lead_out_of_the_image_root_are_rejected(tree, tmp_path):
    list_path, root, expected = tree
    flags = ["--image-root", str(root), "--max-reject-fraction", "1", *IN_PROCESS]
    result = run(["--input", str(list_path), "--output", str(tmp_path / "out"), *flags])
    # the two listings of a/in.JPEG are distinct paths with the same bytes: both written
    assert result.metadata["num_records"] == 3
    reasons = _reasons(tmp_path / "out")
    outside = {os.path.normpath(p) for p, r in expected.items() if r}
    assert {os.path.normpath(p) for p in reasons} == outside
    assert set(reasons.values()) == {records.OUTSIDE_ROOT}

    allowed = run(
        ["--input", str(list_path), "--output", str(tmp_path / "allowed"), *flags]
        + ["--allow-outside-root"]
    )
    assert allowed.metadata["num_records"] == len(expected)  # read when the user opts in


def test_special_files_are_rejected_without_blocking(tmp_path):
    root = tmp_path / "root"
    write(str(root / "ok.JPEG"), jpeg(40, 30))
    os.mkfifo(root / "pipe.JPEG")  # opening a FIFO for reading would block forever
    os.symlink("/dev/zero", root / "zero.JPEG")  # a file that never ends
    os.mkdir(root / "folder.JPEG")
    (tmp_path / "train.txt").write_text(
        "ok.JPEG 0\npipe.JPEG 0\nzero.JPEG 0\nfolder.JPEG 0\n/dev/zero 0\n"
    )
    out = tmp_path / "out"
    done = subprocess.run(
        [IMGSHARD, "convert", "--input", str(tmp_path / "train.txt"), "--output", str(out)]
        + ["--image-root", str(root), "--max-reject-fraction", "1", "--allow-outside-root"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    details = {
        json.loads(x)["path"]: json.loads(x)["detail"]
        for x in (out / "train-rejected.jsonl").read_text().splitlines()
    }
    assert set(details) == {"pipe.JPEG", "zero.JPEG", "folder.JPEG", "/dev/zero"}
    assert "not a regular file" in details["pipe.JPEG"]
    assert "not a regular file" in details["zero.JPEG"] and "directory" in details["folder.JPEG"]


def test_a_file_over_the_size_limit_is_refused_before_it_is_read_whole(tmp_path):
    big = tmp_path / "big.JPEG"
    big.write_bytes(jpeg(40, 30) + b"\0" * 2048)
    assert len(read_bytes(str(big))) == big.stat().st_size
    with pytest.raises(ReadFailed, match="over the 0 MiB limit"):
        read_bytes(str(big), limit=1024)
    assert MAX_FILE_BYTES >= 64 << 20  # no real photo comes near it


def test_very_long_lines_and_utf16_lists_are_explained(tmp_path):
    write(str(tmp_path / "ok.JPEG"), jpeg(40, 30))
    (tmp_path / "train.txt").write_text("ok.JPEG 0\n" + "x" * 100_000 + ".JPEG 0\n")
    run(
        ["--input", str(tmp_path / "train.txt"), "--output", str(tmp_path / "out")]
        + ["--max-reject-fraction", "1", *IN_PROCESS]
    )
    (rejected,) = (tmp_path / "out" / "train-rejected.jsonl").read_text().splitlines()
    assert json.loads(rejected)["reason"] == records.UNPARSEABLE_LINE
    assert "100,005 bytes long" in json.loads(rejected)["detail"]
    assert len(rejected) < 2000  # the report quotes the line, it does not copy it

    (tmp_path / "utf16.txt").write_bytes("ok.JPEG 0\n".encode("utf-16"))
    with pytest.raises(ConversionError, match="UTF-16 text; save it as UTF-8"):
        run(["--input", str(tmp_path / "utf16.txt"), "--output", str(tmp_path / "o2")])
