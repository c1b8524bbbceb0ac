"""Staff accounts: users and roles, sign-in sessions and their limits, two-factor codes,
password resets, and the audit log every service writes to."""
