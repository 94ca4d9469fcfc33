"""docs/reference.md is generated from the config classes and must be current."""

from __future__ import annotations

from compress.cli.reference import PAGE, render
from compress.stages import STAGES


def test_the_committed_reference_is_current():
    # setup / execute
    want = render()
    # assert: regenerate with `python -m compress.cli.reference` when this fails
    assert PAGE.read_text() == want, "docs/reference.md is stale: run " \
        "`python -m compress.cli.reference` and commit it"


def test_every_stage_and_field_with_a_description_is_on_the_page():
    # setup / execute
    page = render()
    # assert
    for name, st in STAGES.items():
        assert f"### `stage: {name}`" in page
        for field_name, field in st.config_cls.model_fields.items():
            if field_name != "stage":
                assert f"| `{field_name}` |" in page
            if field.description:
                assert " ".join(field.description.split())[:40] in page.replace("\\|", "|")
