"""When things happen: the advocacy calendar (built-in days, events, staff reminders, ICS),
what the calendar shows between two days, and cases with their anniversaries."""
