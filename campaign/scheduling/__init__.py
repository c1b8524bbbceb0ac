"""The scheduler: local times to UTC, next occurrences, and the tick that fires what is due."""
