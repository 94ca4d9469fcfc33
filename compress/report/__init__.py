"""Reports of a pipeline run: report.md (summary table first), report.json (every number) and
PNG plots, all from the manifest and the bench results; `write_report` makes all of them."""

from __future__ import annotations

from pathlib import Path


def write_report(root: str | Path, manifest: dict | None = None) -> dict[str, object]:
    """Write report.md, report.json and the plots into `root` (a pipeline's output folder).

    Returns:
        {"markdown": text of report.md, "files": names written, "summary": summary table}.
    """
    from compress import artifacts
    from compress.report.markdown import pipeline_report
    from compress.report.plots import write_plots
    from compress.report.summary import (
        bench_order,
        stage_energy_rows,
        stage_size_rows,
        summary_rows,
    )

    root = Path(root)
    if manifest is None:
        manifest = artifacts.read_json(root / "manifest.json")
    benches = {sid: artifacts.read_json(root / sid / "bench.json")
               for sid, st in manifest["stages"].items() if st["stage"] == "bench"}
    # The gates' bench is the headline (summary, plain-named plots); the others follow.
    order = bench_order(manifest, list(benches))
    benches = {sid: benches[sid] for sid in order}
    headline = order[0] if order else None
    # Drawing costs a second or two; a rerun whose stages were all cached redraws nothing.
    digest = artifacts.sha256_json({
        "stages": {sid: {k: st.get(k) for k in ("stage", "primary", "outputs", "energy")}
                   for sid, st in manifest["stages"].items()},
        "benches": benches,
        # which bench is drawn under the plain names; plots of a report from before every
        # bench had its own plots (headline: the last bench) are redrawn
        "headline": headline, "plots_per_bench": True,
    })
    plots = _previous_plots(root, digest)
    if plots is None:
        plots = write_plots(manifest, root, benches, headline)
    text = pipeline_report(manifest, root, plots)
    artifacts.write_text(root / "report.md", text)
    artifacts.write_json(root / "report.json", {
        "pipeline": manifest["pipeline"],
        "summary": {sid: summary_rows(b) for sid, b in benches.items()},
        "stage_energy": stage_energy_rows(manifest),
        "stage_sizes": stage_size_rows(manifest),
        "benches": benches,
        "explain": _explains(root, manifest),
        "stages": manifest["stages"],
        "gates": manifest.get("gates", []),
        "energy_config": manifest.get("energy"),
        "cpu": manifest.get("cpu"),
        "versions": manifest.get("versions"),
        "data": manifest.get("data"),
        "plots": plots,
        "plots_input_sha256": digest,
    })
    summary = "\n\n".join(_summary_section(sid, b, sid == headline, len(benches))
                          for sid, b in benches.items())
    from compress.report.consumer import write_consumer_files

    consumer = write_consumer_files(root, manifest)
    return {"markdown": text, "files": ["report.md", "report.json", *plots, *consumer],
            "summary": summary}


def _summary_section(bench_id: str, bench: dict, headline: bool, count: int) -> str:
    """One bench's summary table, titled when the run has several benches."""
    from compress.report.markdown import summary_table

    if count == 1:
        return summary_table(bench)
    why = " (the bench the gates read)" if headline else ""
    return f"bench `{bench_id}`{why}:\n\n{summary_table(bench)}"


def _previous_plots(root: Path, digest: str) -> list[str] | None:
    """The plots of the last report if they were drawn from the same numbers and still exist."""
    from compress import artifacts
    from compress.errors import CompressError

    try:
        old = artifacts.read_json(root / "report.json")
    except CompressError:
        return None
    plots = old.get("plots") if isinstance(old, dict) else None
    if old.get("plots_input_sha256") != digest or not isinstance(plots, list):
        return None
    return plots if all((root / p).is_file() for p in plots) else None


def _explains(root: Path, manifest: dict) -> dict:
    """Every explain stage's explain.json, by stage id (attribution fidelity per model)."""
    from compress import artifacts

    return {sid: artifacts.read_json(root / sid / "explain.json")
            for sid, st in manifest["stages"].items() if st["stage"] == "explain"}
