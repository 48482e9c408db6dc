"""The worker image (deploy/Dockerfile) cannot be built here (no Docker engine): its install
step is replayed instead, from exactly the files it copies."""

import os
import re
import shutil
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _copied_paths() -> list[str]:
    with open(os.path.join(ROOT, "deploy", "Dockerfile")) as f:
        copies = [line.split()[1:-1] for line in f if line.startswith("COPY ")]
    return [source.rstrip("/") for sources in copies for source in sources]


def test_the_image_copies_every_package_folder():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        package_dirs = tomllib.load(f)["tool"]["setuptools"]["package-dir"].values()
    assert set(package_dirs) <= set(_copied_paths())


def test_the_images_install_step_works_from_the_copied_files_alone(tmp_path):
    """pip install . from the copied files, then the import the Dockerfile checks (the
    dependencies come from this venv: the base image brings Beam's)."""
    context = tmp_path / "context"
    for path in _copied_paths():
        source = os.path.join(ROOT, path)
        if os.path.isdir(source):
            shutil.copytree(source, context / path, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            os.makedirs(context, exist_ok=True)
            shutil.copy(source, context / path)
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(context),
        ],
        check=True,
        capture_output=True,
    )
    with open(os.path.join(ROOT, "deploy", "Dockerfile")) as f:
        check = re.search(r'python -c "([^"]+)"', f.read()).group(1)
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {check}"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(("Pillow ", "pillow-simd "))
