"""Serve examples/web for one pipeline's output folder on localhost:

    python examples/web/serve.py exported/digits [--port 8000]

/ is this folder (index.html, app.mjs), /ort/ is onnxruntime-web's dist/ from the npm cache
folder (`make ortweb` installs it; never a CDN), /run/ is the output folder (model.json and the
model files it names). Only the standard library: the page needs no build step."""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".mjs": "text/javascript", ".js": "text/javascript",
                      ".wasm": "application/wasm", ".json": "application/json",
                      ".onnx": "application/octet-stream"}

    def __init__(self, *args, roots: dict[str, Path], **kwargs):
        self.roots = roots
        super().__init__(*args, directory=str(HERE), **kwargs)

    def translate_path(self, path: str) -> str:
        clean = path.split("?", 1)[0].split("#", 1)[0]
        for prefix, root in self.roots.items():
            if clean.startswith(prefix):
                rel = Path(clean[len(prefix):])
                target = (root / rel).resolve()
                # nothing outside the served folders, whatever the URL says
                return str(target) if target.is_relative_to(root.resolve()) else str(root / "-")
        return super().translate_path(path)

    def log_message(self, *args) -> None:  # quiet: the test reads the page, not the log
        pass


def make_server(run_dir: Path, dist: Path, port: int = 0) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(Handler, roots={"/run/": Path(run_dir), "/ort/": Path(dist)})
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a pipeline's output folder, with model.json")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    if not (args.run_dir / "model.json").is_file():
        sys.exit(f"{args.run_dir}/model.json not found: run the pipeline first (compress run)")
    sys.path.insert(0, str(HERE.parents[1]))
    from compress.measure.runtimes.ortweb import ensure_installed

    dist = ensure_installed(quiet=False) / "node_modules" / "onnxruntime-web" / "dist"
    server = make_server(args.run_dir, dist, args.port)
    print(f"open http://127.0.0.1:{server.server_address[1]}/index.html")
    server.serve_forever()


if __name__ == "__main__":
    main()
