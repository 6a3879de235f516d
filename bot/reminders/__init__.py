"""Deadlines and the reminders that chase them (art. 20, 25; SPEC §2 steps 2 and 11)."""
