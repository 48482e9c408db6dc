"""The local running mode, chosen from the expected work: input count x probed image cost."""

import io
import os

import pytest
from PIL import Image

from imgshard.pipeline.input_sample import list_sample
from imgshard.pipeline.local_mode import (
    COUNT_LIMIT,
    DEFAULT_IMAGE_SECONDS,
    ImageProbe,
    LocalWork,
    estimate_work,
    image_seconds,
    local_running_mode,
    probe_image,
)
from imgshard.pipeline.options import ConvertConfig
from imgshard.transforms.image import ImageSpec, ResizeSpec

SHORTER_256 = ImageSpec(resize=ResizeSpec("shorter", 256))


def _estimate(config, **limit):
    """The estimate as convert makes it: from the list sample it reads once."""
    return estimate_work(config, list_sample(config), **limit)


def _image_bytes(width: int, height: int, fmt: str = "JPEG") -> bytes:
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    out = io.BytesIO()
    gradient.save(out, format=fmt, quality=90)
    return out.getvalue()


def _list_of(tmp_path, width: int, height: int, lines: int, files: int = 4) -> ConvertConfig:
    """A list of `lines` entries over `files` generated images of one size."""
    data = _image_bytes(width, height)
    for i in range(files):
        (tmp_path / f"img{i}.jpg").write_bytes(data)
    listing = tmp_path / "train.txt"
    listing.write_text("".join(f"img{i % files}.jpg {i % 3}\n" for i in range(lines)))
    return ConvertConfig(input=str(listing), output=str(tmp_path / "out"))


def test_probe_reads_the_header_and_refuses_what_is_not_an_image(tmp_path):
    (tmp_path / "a.png").write_bytes(_image_bytes(300, 200, "PNG"))
    (tmp_path / "b.jpg").write_bytes(b"not an image at all")
    probe = probe_image(str(tmp_path / "a.png"))
    assert probe == ImageProbe((tmp_path / "a.png").stat().st_size, 300, 200, "PNG")
    assert probe_image(str(tmp_path / "b.jpg")) is None
    assert probe_image(str(tmp_path / "missing.jpg")) is None


def test_image_cost_grows_with_pixels_and_jpeg_draft_decoding_saves_it():
    small = image_seconds(ImageProbe(3_000, 64, 48, "JPEG"), SHORTER_256)
    photo = image_seconds(ImageProbe(110_000, 500, 375, "JPEG"), SHORTER_256)
    assert 0.0001 < small < photo / 5 < 0.01 / 5  # an ILSVRC-like photo costs a few ms
    big = ImageProbe(1_500_000, 4000, 3000, "JPEG")
    as_png = big._replace(format="PNG")  # no draft decoding: every pixel decoded and resized
    assert image_seconds(big, SHORTER_256) < image_seconds(as_png, SHORTER_256) / 4
    kept = ImageSpec(resize=ResizeSpec("none", 0))  # bytes kept: only a 1/8 verify decode
    assert image_seconds(big, kept) < image_seconds(big, SHORTER_256)


@pytest.mark.parametrize(
    ("width", "height", "lines", "expected"),
    [
        (64, 48, 300, (1, "in_memory")),  # ~0.2 s of work: no start-up is repaid
        (640, 480, 1_000, (1, "in_memory")),  # ~8 s: processes' start-up not yet repaid
        (640, 480, 30_000, (0, "multi_processing")),  # minutes: processes' start-up repaid
        (64, 48, 8_000, (1, "in_memory")),
        (64, 48, 40_000, (0, "multi_processing")),
    ],
)
def test_generated_inputs_get_the_mode_their_work_calls_for(
    tmp_path, width, height, lines, expected
):
    work = _estimate(_list_of(tmp_path, width, height, lines))
    assert work.inputs == lines
    assert local_running_mode(work, cores=2) == expected


def test_the_same_count_of_larger_images_moves_to_processes_sooner(tmp_path):
    (tmp_path / "small").mkdir()
    (tmp_path / "large").mkdir()
    small = _estimate(_list_of(tmp_path / "small", 64, 48, 12_000))
    large = _estimate(_list_of(tmp_path / "large", 2048, 1536, 12_000))
    assert large.seconds_per_input > 5 * small.seconds_per_input
    assert local_running_mode(small, cores=2)[1] == "in_memory"
    assert local_running_mode(large, cores=2)[1] == "multi_processing"


def test_threads_are_never_chosen_without_the_flag():
    """Beam's multi_threading mode lost index entries in a user trial: never the default."""
    for seconds in (0.5, 2, 5, 10, 15, 20, 30, 100, 1000):
        assert local_running_mode(LocalWork(1000, seconds / 1000), cores=8)[1] != "multi_threading"


def test_one_core_always_runs_in_one_process():
    assert local_running_mode(LocalWork(1_000_000, 0.01), cores=1) == (1, "in_memory")


def test_counting_stops_at_the_limit_and_a_folder_and_a_csv_are_probed(tmp_path):
    config = _list_of(tmp_path, 64, 48, 50)
    assert _estimate(config, limit=10).inputs == 10
    folder = tmp_path / "tree"
    for label in ("cat", "dog"):
        (folder / label).mkdir(parents=True)
        for i in range(3):
            (folder / label / f"{i}.jpg").write_bytes(_image_bytes(1024, 768))
    work = _estimate(ConvertConfig(input=str(folder), output=str(tmp_path / "o")))
    assert work.inputs == 6 and work.seconds_per_input > 0.004  # probed, not the default
    csv = tmp_path / "train.csv"
    csv.write_text("label,filename\n" + "".join(f"0,img{i % 4}.jpg\n" for i in range(7)))
    work = _estimate(ConvertConfig(input=str(csv), output=str(tmp_path / "o2")))
    assert work.inputs == 7 and work.seconds_per_input < 0.002  # the 64x48 images


def test_unprobeable_inputs_fall_back_to_the_default_cost(tmp_path):
    listing = tmp_path / "train.txt"
    listing.write_text("missing.jpg 0\n" * 5)
    config = ConvertConfig(input=str(listing), output=str(tmp_path / "out"))
    assert _estimate(config) == LocalWork(5, DEFAULT_IMAGE_SECONDS)
    gone = ConvertConfig(input=str(tmp_path / "nope.txt"), output=str(tmp_path / "out"))
    assert _estimate(gone) == LocalWork(COUNT_LIMIT, DEFAULT_IMAGE_SECONDS)


def test_a_fifo_or_a_device_in_the_list_is_not_probed(tmp_path):
    """The probe reads as the job does: opening a FIFO would block the driver forever."""
    os.mkfifo(tmp_path / "pipe.JPEG")
    os.symlink("/dev/zero", tmp_path / "zero.JPEG")
    assert probe_image(str(tmp_path / "pipe.JPEG")) is None
    assert probe_image(str(tmp_path / "zero.JPEG")) is None


def test_a_faster_image_library_halves_the_expected_work(tmp_path, monkeypatch):
    from imgshard.pipeline import local_mode

    config = _list_of(tmp_path, 640, 480, 3_000)
    with_pillow = _estimate(config)
    monkeypatch.setattr(local_mode, "image_library", lambda: "pillow-simd 12.1.1.post0, x")
    with_simd = _estimate(config)
    assert with_simd.inputs == with_pillow.inputs
    ratio = with_simd.seconds_per_input / with_pillow.seconds_per_input
    assert local_mode.DECODE_SHARE["pillow-simd"] < ratio < 0.6  # per-record work stays


def test_warm_worker_processes_are_chosen_for_far_less_work():
    """Warm workers start for ~0.45 s more than one process, spawned ones for ~6 s more."""
    few_photos = LocalWork(500, 0.005)  # ~2.5 core-seconds
    assert local_running_mode(few_photos, cores=2) == (1, "in_memory")
    assert local_running_mode(few_photos, cores=2, warm=True) == (0, "multi_processing")
    tiny = LocalWork(10, 0.005)
    assert local_running_mode(tiny, cores=2, warm=True) == (1, "in_memory")
    assert local_running_mode(LocalWork(10**6, 0.01), cores=1, warm=True) == (1, "in_memory")
