"""The grid runner: `driver` (Ray Tune over the cells), `lock` (one live driver per sweep),
`ledger` (declared cells vs MLflow runs), `plan` (the dry-run plan), `progress` (sweep progress
lines), `jobs` (job files), `commands` (`vlscale sweep | status | demo`)."""
