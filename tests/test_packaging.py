"""The extproc wheel (what the Docker image installs) carries everything the service loads at run time."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_has_the_classifier_weights_and_the_status_api(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                             "--wheel-dir", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("extproc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"extproc/classifier_model.json", "extproc/api/status_pb2.py", "extproc/api/status_pb2_grpc.py",
            "extproc/providers/openai_anthropic.py", "extproc/simulators/gemini.py"} <= names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "extproc = extproc.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
