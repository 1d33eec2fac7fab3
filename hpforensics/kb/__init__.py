"""Reference data about updates: release calendar, KB manifests, page-hash store."""
