"""Reports of a run: analysis (pandas), plots, self-contained HTML, JUnit XML and a CI summary."""
