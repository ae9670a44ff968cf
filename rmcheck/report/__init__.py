"""Reports: terminal text, sensitivity, comparisons and the release gate, the HTML page, CI artefacts."""
