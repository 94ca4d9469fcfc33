"""Headline comparison: the pipeline's models against what a user would do without compress
(PyTorch eager fp32, ORT fp32, ORT quantize_static and quantize_dynamic with their defaults), on
the same teacher and test split, measured in one interleaved bench run.

    python benchmarks/peers.py [digits|mnist1d|PIPELINE.yaml ...] [--out exported] [--force]
                               [--no-run]

Runs each pipeline (stages already run and unchanged come from the cache; --force reruns them;
--no-run only reads the results a previous run left under --out), then writes
benchmarks/results/peers-<pipeline>.{md,json}: the summary table, how every figure was measured,
the CPU (model, ISA flags) and library versions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from compress.config import load_pipeline
from compress.report import write_report
from compress.report.markdown import summary_notes, summary_table
from compress.report.summary import summary_rows
from compress.runner import run_pipeline

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pipelines", nargs="*", default=["digits"])
    ap.add_argument("--out", default=str(REPO / "exported"), help="pipeline output root")
    ap.add_argument("--force", action="store_true", help="rerun every stage")
    ap.add_argument("--no-run", action="store_true", help="read the results already under --out")
    args = ap.parse_args()

    out = HERE / "results"
    out.mkdir(exist_ok=True)
    for spec in args.pipelines:
        path = Path(spec) if spec.endswith(".yaml") else REPO / "pipelines" / f"{spec}.yaml"
        cfg = load_pipeline(path)
        benches = [s for s in cfg.stages if s.stage == "bench" and s.peers is not None]
        if not benches:
            raise SystemExit(f"{path}: no bench stage with `peers:`; nothing to compare")
        if args.no_run:
            root = Path(args.out) / cfg.name
            manifest = json.loads((root / "manifest.json").read_text())
        else:
            summary = run_pipeline(cfg, args.out, force=args.force, progress=False,
                                   source=str(path), log=lambda m: print(m, flush=True))
            root, manifest = summary.root, summary.manifest
        write_report(root, manifest)
        bench_id = benches[-1].id
        bench = json.loads((root / bench_id / "bench.json").read_text())
        date = manifest.get("finished_at", dt.date.today().isoformat())[:10]
        md = "\n".join([
            f"# Peers: `{cfg.name}` ({date})", "",
            f"`python benchmarks/peers.py {spec}`; bench stage `{bench_id}` of {path.name}.", "",
            summary_table(bench), "", *[f"- {n}" for n in summary_notes(bench)], "",
        ])
        (out / f"peers-{cfg.name}.md").write_text(md)
        (out / f"peers-{cfg.name}.json").write_text(json.dumps({
            "pipeline": cfg.name, "date": date, "bench": bench_id,
            "summary": summary_rows(bench), "method": bench["method"], "cpu": bench["cpu"],
            "versions": bench["versions"],
            "stage_energy": {sid: st.get("energy") for sid, st in manifest["stages"].items()},
        }, indent=2) + "\n")
        print(md)
        print(f"wrote {out / f'peers-{cfg.name}.md'} and .json")


if __name__ == "__main__":
    main()
