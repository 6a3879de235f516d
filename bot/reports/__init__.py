"""Summaries for supervisors and lead offices (SPEC §2 step 12), with a chart."""
