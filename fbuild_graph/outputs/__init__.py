"""Outputs: the tally of a run, what it writes (logs, firmware, results.json, TSVs), progress, the --out lock."""
