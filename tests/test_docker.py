"""The GPU host's Dockerfile: linted (CI machines have no Docker engine to build it) and running what the README runs."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_dockerfile_passes_hadolint():
    hadolint = Path(sys.executable).parent / "hadolint"
    out = subprocess.run([str(hadolint), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_image_runs_the_readme_app_command_with_the_password_gate():
    text = (ROOT / "Dockerfile").read_text()
    cmd = next(line for line in text.splitlines() if line.startswith("CMD "))
    assert '"./dev.sh", "app"' in cmd and "0.0.0.0" in cmd  # the README's app command, served to the network
    assert "./dev.sh app" in (ROOT / "README.md").read_text()
    # on a network address the app refuses to start without a password (views/_serve.py); the image says so
    assert "VOXELSCOPE_PASSWORD" in text and "HF_HUB_OFFLINE=1" in text
