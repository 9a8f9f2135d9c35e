"""Pure decisions, no I/O, no clock: matching, scoring, crisis detection, escalation."""
