"""What a remote runner cannot do is refused before the job starts, not after every shard."""

import pytest
from apache_beam.io.filesystems import FileSystems

from helpers import sorted_dataset
from imgshard.pipeline import ConversionError, run


def test_analyze_on_a_portable_runner_is_refused_before_anything_is_written(tmp_path):
    list_path = sorted_dataset(str(tmp_path / "d"), classes=2, per_class=2)
    flags = ["--runner", "PortableRunner", "--job_endpoint", "localhost:1", "--analyze"]
    with pytest.raises(ConversionError, match="--analyze needs TensorFlow .* PortableRunner"):
        run(["--input", list_path, "--output", str(tmp_path / "out"), *flags])
    assert not (tmp_path / "out").exists()


@pytest.mark.gcs
def test_analyze_on_dataflow_is_refused_before_the_job_is_built(gcs_bucket):
    uri = f"gs://{gcs_bucket}/analyze/train.txt"
    with FileSystems.create(uri) as f:
        f.write(b"n1/a.JPEG n1\n")
    dataflow = ["--runner", "DataflowRunner", "--project", "p", "--region", "us-central1"]
    dataflow += ["--temp_location", "gs://my-bucket/tmp", "--dry_run=True"]
    with pytest.raises(ConversionError, match="the DataflowRunner workers do not have them"):
        run(["--input", uri, "--output", f"gs://{gcs_bucket}/analyze/out", "--analyze", *dataflow])
    assert not FileSystems.match([f"gs://{gcs_bucket}/analyze/out/**"])[0].metadata_list


def test_analyze_with_loopback_workers_is_not_refused_by_the_check():
    from apache_beam.options.pipeline_options import PipelineOptions

    from imgshard.pipeline.options import ConvertConfig
    from imgshard.pipeline.run_checks import check_analyze_runs_here

    config = ConvertConfig(input="/x/train.txt", output="/x/out", input_kind="list", analyze=True)
    loopback = ["--runner", "PortableRunner", "--environment_type", "LOOPBACK"]
    check_analyze_runs_here(config, PipelineOptions(loopback))  # its workers are this process


@pytest.mark.parametrize(
    ("records", "rejected", "inputs", "lost"),
    [(98_943, 0, 100_000, "1,057"), (99_000, 1_000, 98_888, "1,112")],
)
def test_a_run_whose_records_and_rejections_do_not_add_up_to_its_inputs_fails(
    records, rejected, inputs, lost
):
    """Every input ends as a record or a rejection: a runner that drops entries (Beam's
    multi_threading mode did, in blocks) or miscounts them must not leave a 'finished' run."""
    from imgshard.pipeline.options import ConvertConfig
    from imgshard.pipeline.run_checks import check_result

    meta = {
        "num_inputs": inputs,
        "num_records": records,
        "num_rejected": rejected,
        "rejected": {"file": "train-rejected.jsonl", "by_reason": {}},
    }
    config = ConvertConfig(input="train.txt", output="out", max_reject_fraction=0.5)
    with pytest.raises(ConversionError, match=f"{lost} unaccounted for"):
        check_result(meta, config)
    check_result({**meta, "num_inputs": records + rejected}, config)  # adds up: accepted
