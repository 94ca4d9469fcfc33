"""Reports: Markdown tables from bench results and the pipeline manifest."""
