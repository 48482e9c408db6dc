"""Every test file that the code and the docs point a reader to exists."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_cited_test_file_exists():
    cited = {}
    sources = [ROOT / "README.md", *ROOT.glob("*/*.py"), *ROOT.glob("*/*.md")]
    for path in sources:
        for name in re.findall(r"tests/(test_\w+\.py)", path.read_text(errors="replace")):
            cited.setdefault(name, path.relative_to(ROOT))
    assert cited, "no citations found: the pattern is wrong"
    missing = {
        name: str(where) for name, where in cited.items() if not (ROOT / "tests" / name).exists()
    }
    assert missing == {}
