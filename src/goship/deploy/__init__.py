"""Zero-downtime releases: plan from facts, then apply per host; blue-green and rolling,
health-gated, with fleet-wide restore on failure, a lock and a journal."""
