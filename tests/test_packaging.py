"""The wheel and sdist build offline, pass ``twine check`` and carry what users need."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_and_sdist_build_and_pass_twine_check(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = tmp_path.glob("revoker-*.whl")
    (sdist,) = tmp_path.glob("revoker-*.tar.gz")
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "revoker/py.typed",
        "revoker/engine/input/scanners.py",
        "revoker/render/junit.py",
        "revoker/schemas/output.schema.json",
    } <= names
    assert "revoker/render/templates/report.html" in names  # report --format html needs it
    (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "revoker = revoker.cli:run" in zipfile.ZipFile(wheel).read(entry_points).decode()
    with tarfile.open(sdist) as tar:
        members = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert {"action.yml", "action/run.py", "revoker/py.typed", "pyproject.toml"} <= members
    # The README links docs/ and names the Dockerfile and examples: the sdist has them.
    assert {
        "docs/architecture.md",
        "docs/guarantees.md",
        "docs/json-output.md",
        "Dockerfile",
        "examples/leaked.csv",
    } <= members
