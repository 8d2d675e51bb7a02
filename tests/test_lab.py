"""`make lab` as a contributor uses it: the server it starts serves each notebooks/<name>.py as a
notebook (jupytext's contents manager, the outputs from the paired .ipynb), and the project's
settings (.jupyter/labconfig/default_setting_overrides.json) make Jupytext's notebook the default
viewer of a .py source and turn the news prompt off.

The server runs on a port the system picks, with its own runtime and config folders (nothing
of the user's home is read or written), and is stopped at the end, whatever happened.
"""
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(p.stem for p in (ROOT / "notebooks").glob("*.py"))
START_S = 120  # measured 6 s on the idle 2-core CPU; two trainings beside it slow it down


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(base url, token) of a running `make lab`."""
    tmp = tmp_path_factory.mktemp("lab")
    runtime = tmp / "runtime"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_RUNTIME_DIR": str(runtime)}
    log = (tmp / "lab.log").open("w")
    # -o setup: make test has set the venv up; port 0: the system picks a free one
    proc = subprocess.Popen(["make", "-s", "-o", "setup", "lab", "LAB_ARGS=--port=0 --no-browser"], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_S
        while not (info := list(runtime.glob("jpserver-*.json"))):
            said = (tmp / "lab.log").read_text()[-3000:]
            assert proc.poll() is None, f"make lab exited with {proc.returncode}:\n{said}"
            assert time.monotonic() < deadline, f"no server after {START_S} s:\n{said}"
            time.sleep(0.5)
        time.sleep(0.5)  # the file is written whole, but give it a moment
        server = json.loads(info[0].read_text())
        yield server["url"].rstrip("/"), server["token"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _get(lab, path: str) -> dict:
    url, token = lab
    req = urllib.request.Request(f"{url}{path}", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_lab_serves_the_source_as_a_notebook(lab, name):
    model = _get(lab, f"/api/contents/{name}.py?type=notebook&content=1")
    assert model["type"] == "notebook", model["type"]
    cells = model["content"]["cells"]
    source = jupytext.read(ROOT / "notebooks" / f"{name}.py")
    assert [(c["cell_type"], c["source"]) for c in cells] == [(c.cell_type, c.source) for c in source.cells]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", []), "the first code cell lost its parameters tag"
    assert any(c["outputs"] for c in code), "no outputs: the paired .ipynb was not read"


def _setting(lab, plugin: str) -> dict:
    """A plugin's settings as the page composes them: the schema's defaults (where the project's
    overrides land) under the user's own settings (none here)."""
    reply = _get(lab, f"/lab/api/settings/{plugin}")
    defaults = {k: v.get("default") for k, v in reply["schema"]["properties"].items()}
    return {**defaults, **reply["settings"]}


@pytest.mark.slow
def test_lab_settings_open_sources_as_notebooks_without_the_news_prompt(lab):
    viewers = _setting(lab, "@jupyterlab/docmanager-extension:plugin")["defaultViewers"]
    assert viewers.get("python") == "Jupytext Notebook", viewers
    notes = _setting(lab, "@jupyterlab/apputils-extension:notification")
    assert notes["fetchNews"] == "false" and notes["checkForUpdates"] is False, notes
