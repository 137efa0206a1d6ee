"""Write-side benchmarks of the indexer (issue 21)."""
