"""`pip install ./python` works without the network (Debian's setuptools,
wheel, cffi and numpy; no build isolation, no index) into a virtual
environment that sees the system's packages, and the installed package is
the one imported. The source is copied first: pip builds in the tree. pip
reads no configuration file and nothing comes from the user's site
directory: the verdict does not depend on $HOME."""

import os
import shutil
import subprocess
import sys

import tessera


def test_pip_install(tmp_path):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = tmp_path / "src"
    shutil.copytree(here, src, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages",
                    str(venv)], check=True)
    py = str(venv / "bin" / "python")
    # Nothing of the user's: no pip configuration file (a pip.conf with `user = true` made
    # pip install into ~/.local and the import below find that copy) and no user site.
    env = dict(os.environ, PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_CONFIG_FILE=os.devnull, PYTHONNOUSERSITE="1")
    env.pop("PYTHONPATH", None)
    subprocess.run([sys.executable, "-m", "pip", "--python", py, "install", "--quiet",
                    "--no-build-isolation", "--no-index", str(src)],
                   check=True, env=env, cwd=tmp_path)
    show = "import tessera; print(tessera.__file__); print(tessera.version())"
    out = subprocess.run([py, "-c", show],
                         check=True, env=env, capture_output=True, text=True, cwd=tmp_path)
    path, version = out.stdout.splitlines()  # a line each: the path may hold spaces
    assert path.startswith(str(venv))
    assert version == tessera.version()
