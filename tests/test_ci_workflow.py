"""The GitHub workflow is valid YAML, runs what docs/ci.md documents step for step, installs
the Makefile's torch pin, and `.ci/run` exercises the same smoke run."""

from __future__ import annotations

import re

import yaml

from tests.conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "compress.yml"


def _readme_workflow() -> dict:
    """The first YAML block of docs/ci.md ("Running compress in CI")."""
    text = (REPO / "docs" / "ci.md").read_text()
    return yaml.safe_load(text.split("```yaml\n", 1)[1].split("```", 1)[0])


def _commands(doc: dict) -> list[str]:
    return [s["run"] for s in doc["jobs"]["compress"]["steps"] if "run" in s]


def test_workflow_steps_are_the_readme_snippet():
    # setup / execute
    workflow = yaml.safe_load(WORKFLOW.read_text())
    documented = _readme_workflow()
    # assert: valid YAML with triggers on push and pull_request (`on` parses as True)
    assert set(workflow[True]) == {"push", "pull_request"}
    assert workflow["jobs"]["compress"]["steps"] == documented["jobs"]["compress"]["steps"]
    assert workflow == documented


def test_workflow_installs_cpu_torch_tests_runs_gates_and_uploads():
    # setup
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = workflow["jobs"]["compress"]["steps"]
    commands = _commands(workflow)
    pin = re.search(r"^TORCH_PIN \?= (\S+)$", (REPO / "Makefile").read_text(), re.M)[1]
    # assert: the order install -> make test -> compress run, with the Makefile's pin
    install = next(i for i, c in enumerate(commands) if "download.pytorch.org/whl/cpu" in c)
    assert f'"{pin}"' in commands[install]
    test = commands.index("make test")
    run = next(i for i, c in enumerate(commands) if "compress run pipelines/smoke.yaml" in c)
    assert install < test < run
    junit = re.search(r"--junit (\S+)", commands[run])[1]
    assert '--summary-md "$GITHUB_STEP_SUMMARY"' in commands[run]
    uses = {s["uses"].split("@")[0]: s for s in steps if "uses" in s}
    assert uses["mikepenz/action-junit-report"]["with"]["report_paths"] == junit
    upload = uses["actions/upload-artifact"]
    assert upload["if"] == "${{ !cancelled() }}"
    paths = upload["with"]["path"].split()
    assert "exported/" in paths and any(junit.startswith(p) for p in paths)


def test_project_ci_runs_the_smoke_pipeline_with_reports():
    script = (REPO / ".ci" / "run").read_text()
    tests_at = script.index("make test")
    run_at = script.index("compress run pipelines/smoke.yaml")
    assert tests_at < run_at and "--junit" in script and "--summary-md" in script
