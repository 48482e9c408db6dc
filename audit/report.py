"""What `imgshard audit` shows a person: a summary in words and a picture."""

from __future__ import annotations

import numpy as np

__all__ = ["format_report", "plot_report"]


_TITLE = 18


def _line(ok: bool | None, title: str, text: str) -> str:
    mark = {True: "ok  ", False: "FAIL", None: "    "}[ok]
    return f"  {mark} {title:<{_TITLE}}{text}"


def _integrity_lines(report: dict) -> list[str]:
    integrity = report["integrity"]
    errors = integrity["errors"]
    if errors:
        shown = ", ".join(f"{n} {kind}" for kind, n in sorted(errors.items()))
        first = integrity["first_errors"][0]
        lines = [
            _line(
                False, "integrity", f"{shown} errors; first: {first['detail']} ({first['shard']})"
            )
        ]
    else:
        checked = "framing, CRC and Example parse checked"
        if report.get("format") == "array_record":
            checked = "ArrayRecord read and Example parse checked"
        elif report.get("format") == "webdataset":
            checked = "tar framing, samples (image, .cls, .json) and keys checked"
        if integrity.get("decoded"):
            checked += ", every image decoded to its recorded size"
        lines = [_line(True, "integrity", f"{report['records']:,} records: {checked}")]
    described = integrity.get("dataset_json")
    if described:
        problems = described["mismatches"]
        text = (
            f"{len(problems)} differences, e.g. {problems[0]}"
            if problems
            else "shard counts, checksums and label counts match"
        )
        lines.append(_line(not problems, "dataset.json", text))
    indexed = integrity.get("index_files")
    if indexed:
        problems = indexed["mismatches"]
        text = (
            f"{len(problems)} of {indexed['checked']:,} differ, e.g. {problems[0]}"
            if problems
            else f"{indexed['checked']:,} index files match their shards record for record"
        )
        lines.append(_line(not problems, "index files", text))
    lines += _webdataset_lines(integrity.get("webdataset"))
    boxed = integrity.get("boxes")
    if boxed:
        ok = not integrity["errors"].get("boxes")
        text = (
            f"{boxed['boxes']:,} boxes in {boxed['records']:,} of {report['records']:,} records"
            + (", all inside [0, 1] with min < max" if ok else "; some are malformed (see above)")
        )
        lines.append(_line(ok, "boxes", text))
    listed = integrity.get("list")
    if listed and listed["ok"]:
        lines.append(
            _line(
                True,
                "input list",
                f"all {listed['inputs']:,} inputs found exactly "
                f"once ({listed['records']:,} records + {listed['rejected']:,} "
                "rejected)",
            )
        )
    elif listed:
        lines.append(
            _line(
                False,
                "input list",
                f"{listed['num_missing']} missing, "
                f"{listed['num_duplicated']} duplicated, "
                f"{listed['num_unexpected']} not in the list",
            )
        )
        lines += [
            _line(None, "", f"missing: line {m['line']}: {m['path']}")
            for m in listed["missing"][:5]
        ]
        lines += [
            _line(
                None,
                "",
                f"duplicated: {d['path']} written {d['found']}x, expected {d['expected']}x",
            )
            for d in listed["duplicated"][:5]
        ]
        lines += [_line(None, "", f"not in the list: {p}") for p in listed["unexpected"][:5]]
    return lines


def _webdataset_lines(checks: dict | None) -> list[str]:
    if not checks:
        return []
    lines = []
    duplicates = checks["duplicate_keys"]
    keys = f"{duplicates} samples repeat another's key" if duplicates else "unique across shards"
    lines.append(_line(not duplicates, "keys", keys))
    if checks["label_range"]:
        lines.append(_line(False, ".cls", checks["label_range"][0]))
    files = checks["reader_files"]
    if files["checked"] or files["mismatches"]:
        problems = files["mismatches"]
        text = (
            f"{len(problems)} differences, e.g. {problems[0]}"
            if problems
            else f"{' and '.join(files['checked'])}: sample counts match the tars"
        )
        lines.append(_line(not problems, "reader files", text))
    return lines


def _view_lines(title: str, view: dict, thresholds: dict, check_max: bool) -> list[str]:
    ok = view["distinct_ratio"] >= thresholds["min_distinct_ratio"]
    lines = [
        _line(
            ok,
            title,
            f"{view['mean_distinct']:.1f} distinct labels per "
            f"{view['window']}-record window vs {view['expected_distinct']:.1f} "
            f"i.i.d. (ratio {view['distinct_ratio']:.2f}, needs >= "
            f"{thresholds['min_distinct_ratio']})",
        )
    ]
    if check_max:
        ok = view["max_label_count_ratio"] <= thresholds["max_label_count_ratio"]
        lines.append(
            _line(
                ok,
                "",
                f"top label fills {view['mean_max_label_count']:.1f} records "
                f"per window vs {view['expected_max_label_count']:.1f} i.i.d. "
                f"(ratio {view['max_label_count_ratio']:.2f}, needs <= "
                f"{thresholds['max_label_count_ratio']})",
            )
        )
    return lines


def _skew_lines(report: dict, thresholds: dict) -> list[str]:
    skew = report.get("shard_skew")
    if not skew:
        return []
    ok = report["shards"] < 2 or skew["ratio"] <= thresholds["max_skew_ratio"]
    lines = [
        _line(
            ok,
            "shard skew",
            f"shard label mixes are {skew['mean_distance']:.3f} from "
            f"the global mix vs {skew['mean_random_distance']:.3f} for random shards "
            f"(ratio {skew['ratio']:.2f}, needs <= {thresholds['max_skew_ratio']})",
        )
    ]
    worst = ", ".join(
        f"{w['shard']} ({w['top_labels'][0]['share']:.0%} label {w['top_labels'][0]['label']})"
        for w in skew["worst"][:3]
        if w["top_labels"]
    )
    if worst:
        lines.append(_line(None, "", f"most skewed: {worst}"))
    return lines


def format_report(report: dict) -> str:
    thresholds = report["thresholds"]
    lines = [
        f"imgshard audit: {report['verdict']} — {report['target']}: {report['shards']} "
        f"shards, {report['records']:,} records, {report['labels']} labels"
    ]
    lines += _integrity_lines(report)
    if report.get("raw_order"):
        lines += _view_lines("raw order", report["raw_order"], thresholds, check_max=True)
    for name, view in report.get("reader_order", {}).items():
        lines += _view_lines(f"{name} reader", view, thresholds, check_max=False)
        lines.append(_line(None, "", f"{view['description']}; {view['records']:,} records"))
    if report.get("note"):
        lines.append(_line(None, "note", report["note"]))
    lines += _skew_lines(report, thresholds)
    lines += [f"  -> {failure}" for failure in report["failures"]]
    return "\n".join(lines)


def plot_report(result, path: str) -> None:
    """Left: each shard's label mix (rows: shards by name; columns: labels). Right: distinct
    labels per window along the stream, for each view, against the i.i.d. expectation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = result.report
    histograms = result.histograms.astype(float)
    order = np.argsort([str(v) for v in result.label_values]) if len(result.label_values) else []
    shares = histograms[:, order] / np.maximum(1, histograms.sum(axis=1, keepdims=True))

    fig, (heat, curve) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1, 1.4]})
    image = heat.imshow(shares, aspect="auto", interpolation="nearest", cmap="viridis")
    heat.set_xlabel("label")
    heat.set_ylabel("shard (by name)")
    heat.set_title("label share in each shard")
    fig.colorbar(image, ax=heat, fraction=0.046)

    views = {"raw order (shard by shard)": report.get("raw_order")}
    views.update({f"{name} reader": v for name, v in report.get("reader_order", {}).items()})
    expected = None
    for label, view in views.items():
        if view:
            curve.plot(
                view["distinct_per_window"],
                label=f"{label}: ratio {view['distinct_ratio']:.2f}",
                linewidth=1,
            )
            expected = view["expected_distinct"]
    if expected is not None:
        curve.axhline(
            expected, color="black", linestyle="--", label=f"i.i.d. expectation {expected:.1f}"
        )
        window = report["raw_order"]["window"]
        curve.set_title(f"distinct labels per {window}-record window")
        curve.set_xlabel("window along the stream")
        curve.set_ylim(0, expected * 1.15)
        curve.legend(loc="center right", fontsize=8, framealpha=0.9)
    fig.suptitle(f"imgshard audit: {report['verdict']} — {report['target']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
