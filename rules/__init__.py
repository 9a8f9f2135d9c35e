"""Pure decisions, no I/O, never reads the clock: matching, scoring, crisis detection, escalation."""
