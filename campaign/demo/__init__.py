"""The demo installation (`campaign load-demo`, `campaign dev`): sample contacts,
statements, campaigns, answers, sign-on and schedules, loaded through the public services
as a user's data would be. Nothing else in the application imports this package."""
