"""What a letter says: statements and their translations and files, salutation rules,
country names and the organisation's letterhead (protocol data an admin corrects), one
complete letter for a contact, previews, and the pre-send check."""
