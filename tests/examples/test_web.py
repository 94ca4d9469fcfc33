"""examples/web: the shipped model in real headless Chromium through onnxruntime-web (WASM, the
.wasm files from the npm cache folder served by a localhost http.server, never a CDN) predicts
the test images as Python onnxruntime does, with the preprocessing read from model.json."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from compress.measure.ort import make_session, predict
from tests.conftest import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y "
                       "chromium)"),
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (needed for "
                       "the onnxruntime-web npm package)"),
]
SAMPLES = 24


@pytest.fixture()
def server(tiny_run, tmp_path):
    """The page, onnxruntime-web's dist/ and a copy of the run's model.json, shipped model and
    test data (the shared run folder stays as it is), on a localhost port."""
    from compress.measure.runtimes.ortweb import dist_dir, ensure_installed

    run = tmp_path / "run"
    ship = json.loads((tiny_run[0] / "model.json").read_text())["ship"]
    for rel in ("model.json", ship, "test_data.npz"):
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tiny_run[0] / rel, run / rel)

    sys.path.insert(0, str(REPO / "examples" / "web"))
    try:
        from serve import make_server
    finally:
        sys.path.pop(0)
    ensure_installed()
    srv = make_server(run, dist_dir())
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv, run
    srv.shutdown()
    srv.server_close()


def test_the_page_predicts_the_test_images_as_python_onnxruntime(server, tmp_path):
    # setup: the raw test images (model layout, as test_data.npz holds them) for the page
    srv, root = server
    contract = json.loads((root / "model.json").read_text())
    with np.load(root / "test_data.npz") as d:
        raw = d["x"][:SAMPLES]
    (root / "web_test.json").write_text(json.dumps({"x": raw.ravel().astype(float).tolist()}))
    pre = contract["preprocessing"]
    x = ((raw.astype(np.float64) - pre["mean"][0]) / pre["std"][0]).astype(np.float32)
    expected = predict(make_session(root / contract["ship"], 1), x).argmax(1).tolist()
    url = f"http://127.0.0.1:{srv.server_address[1]}/index.html?test=web_test.json"
    # execute: virtual time lets --dump-dom wait for the page's async inference
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=30000", "--dump-dom",
         url], capture_output=True, text=True, timeout=120)
    # assert
    found = re.search(r'<pre id="result">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"the page wrote no result: {proc.stdout[-800:]} {proc.stderr[-800:]}"
    result = json.loads(found.group(1).replace("&quot;", '"'))
    assert result["file"] == contract["ship"]
    assert result["preds"] == expected and len(expected) == SAMPLES
