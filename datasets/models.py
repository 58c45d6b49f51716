"""Dataset tables: assets, datasets, items, labels and versions (built by the ingest issue)."""
