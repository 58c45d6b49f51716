"""Assets, datasets, items, labels, versions, formats, checks and diffs."""
