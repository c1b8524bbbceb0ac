"""Contacts and who a letter goes to: contact records, search, import and export of files,
lists, segments and audiences, the suppression list, the trash, merges and bulk edits."""
