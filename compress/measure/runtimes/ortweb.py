"""onnxruntime-web (WASM backend, 1 thread) in Node.js as a runtime of `bench`'s `runtimes:`.

The npm package is pinned by `ortweb/package.json` + `package-lock.json` beside this file and
installed with `npm ci` into a cache folder (`make ortweb`, or on first use; never at import):
`$COMPRESS_CACHE_DIR` or `~/.cache/compress`, then `ortweb-<version>/`. `ortweb/run.mjs` times
session.run inside JS with performance.now(), so Node's start and the file transfer are not in
the figures. `python -m compress.measure.runtimes.ortweb` installs it and prints the folder."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from compress.errors import StageError
from compress.measure.runtimes.base import LoadFailure, Runtime, first_unsupported_op

HERE = Path(__file__).parent / "ortweb"
VERSION = json.loads((HERE / "package.json").read_text())["dependencies"]["onnxruntime-web"]
INSTALL = "install Node.js >= 18 (apt-get install nodejs npm) and run `make ortweb`"


def cache_root() -> Path:
    return Path(os.environ.get("COMPRESS_CACHE_DIR") or Path.home() / ".cache" / "compress")


def install_dir() -> Path:
    """The cache folder of this pinned package.json (its hash in the name: a new pin, a new
    folder)."""
    digest = hashlib.sha256((HERE / "package-lock.json").read_bytes()).hexdigest()[:12]
    return cache_root() / f"ortweb-{VERSION}-{digest}"


def dist_dir() -> Path:
    """onnxruntime-web's dist/ (ort.*.mjs and the .wasm files), e.g. for examples/web."""
    return install_dir() / "node_modules" / "onnxruntime-web" / "dist"


def node_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not on PATH"
    if shutil.which("npm") is None and not (install_dir() / "node_modules").is_dir():
        return "npm is not on PATH and onnxruntime-web is not installed"
    return None


def ensure_installed(quiet: bool = True) -> Path:
    """`npm ci` of the pinned package into the cache folder unless it is there; the folder."""
    target = install_dir()
    for name in ("package.json", "package-lock.json", "run.mjs"):  # run.mjs is refreshed always
        src, dst = HERE / name, target / name
        if not dst.is_file() or dst.read_bytes() != src.read_bytes():
            target.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_suffix(dst.suffix + ".tmp")
            shutil.copyfile(src, tmp)
            tmp.replace(dst)
    if (target / "node_modules" / "onnxruntime-web" / "package.json").is_file():
        return target
    why = node_missing()
    if why:
        raise StageError(f"onnxruntime-web: {why}; {INSTALL}")
    if not quiet:
        print(f"installing onnxruntime-web {VERSION} into {target} (npm ci)", file=sys.stderr)
    # --ignore-scripts: the packages need no build step (protobufjs' postinstall is a notice)
    proc = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                          cwd=target, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(target / "node_modules", ignore_errors=True)
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise StageError(f"onnxruntime-web: npm ci in {target} failed ({last[:200]}); "
                         "check that the npm registry is reachable and rerun `make ortweb`")
    return target


class OrtWeb(Runtime):
    name = "onnxruntime-web"
    install = INSTALL
    in_process = False

    def missing(self) -> str | None:
        return node_missing()

    def version(self) -> str | None:
        return VERSION

    def measure_external(self, paths: dict[str, Path], x_test: np.ndarray,
                         batch_sizes: list[int], timing: dict) -> dict:
        folder = ensure_installed(quiet=False)
        with tempfile.TemporaryDirectory(prefix="compress-ortweb-") as tmp:
            tmp = Path(tmp)
            x = np.ascontiguousarray(x_test, dtype="<f4")
            (tmp / "x.bin").write_bytes(x.tobytes())
            request = {
                "models": {n: str(Path(p).resolve()) for n, p in paths.items()},
                "x_path": str(tmp / "x.bin"), "x_shape": list(x.shape), "predict_batch": 64,
                "batch_sizes": batch_sizes, "warmup_runs": timing["warmup_runs"],
                "min_runs": timing["min_runs"], "min_time_ms": timing["min_time_s"] * 1e3,
                "max_time_ms": timing["max_time_s"] * 1e3, "chunk": 10, "out": str(tmp)}
            (tmp / "request.json").write_text(json.dumps(request))
            proc = subprocess.run(["node", str(folder / "run.mjs"), str(tmp / "request.json")],
                                  capture_output=True, text=True)
            if proc.returncode != 0 or not (tmp / "result.json").is_file():
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                raise StageError(f"onnxruntime-web: the Node runner failed ({last[:240]})")
            result = json.loads((tmp / "result.json").read_text())
            out: dict = {}
            for name, rec in result["models"].items():
                if not rec["loaded"]:
                    out[name] = LoadFailure(rec["error"], first_unsupported_op(rec["error"]))
                    continue
                logits = np.fromfile(tmp / f"{name}.logits.bin", dtype="<f4")
                out[name] = {"logits": logits.reshape(rec["logits_shape"]),
                             "times_ms": {int(k[1:]): v for k, v in rec["latency"].items()},
                             "fixed_batch": rec.get("fixed_batch")}
        return out


if __name__ == "__main__":
    print(ensure_installed(quiet=False))
