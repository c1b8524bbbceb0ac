"""Data the application ships with: the built-in calendar of advocacy days."""
