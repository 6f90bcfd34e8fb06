"""The runs: discover and refresh end to end, the run ledger, the refresh lock, the schedule."""
