"""The layout rule in README's layout table, checked on the code: which folder may import
which, and where Beam's pipeline classes live."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("pipeline", "transforms", "audit", "trainer")
# what each folder must not import (by its imgshard.* name)
FORBIDDEN = {
    "transforms": ("imgshard.pipeline", "imgshard.audit", "imgshard.trainer"),
    "trainer": ("imgshard.pipeline", "imgshard.audit", "imgshard.transforms", "apache_beam"),
    "audit": ("imgshard.trainer",),
    "pipeline": ("imgshard.trainer",),
}
# the one crossing on purpose: the tf.Transform graph is built from the trainer's own
# preprocessing, so training-time evaluation and serving run the same function
ALLOWED = {"pipeline/analysis.py": ("imgshard.trainer.preprocessing",)}
BEAM_CLASSES = ("DoFn", "CombineFn", "PTransform")


def _modules(package: str):
    return sorted((ROOT / package).glob("*.py"))


def _imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize("package", PACKAGES)
def test_no_folder_imports_what_the_rule_forbids(package):
    found = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(package)
        for name in _imports(ast.parse(path.read_text()))
        if name.startswith(FORBIDDEN[package])
        and name not in ALLOWED.get(str(path.relative_to(ROOT)), ())
    ]
    assert not found, found


def test_beam_pipeline_classes_live_in_pipeline_or_audit():
    found = []
    for package in ("transforms", "trainer"):
        for path in _modules(package):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    bases = {getattr(b, "attr", getattr(b, "id", "")) for b in node.bases}
                    if bases & set(BEAM_CLASSES):
                        found.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert not found, found


def test_the_rule_sees_a_violation():
    """The checks above parse real code: a forbidden import and a DoFn are found."""
    tree = ast.parse("import apache_beam as beam\nfrom imgshard.pipeline import graph\n")
    assert [n for n in _imports(tree) if n.startswith(FORBIDDEN["transforms"])] == [
        "imgshard.pipeline"
    ]
    node = ast.parse("class F(beam.DoFn):\n    pass\n").body[0]
    assert {b.attr for b in node.bases} & set(BEAM_CLASSES)
