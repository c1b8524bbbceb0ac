"""Pages of what a letter says: statements and their editor, previews, the pre-send check,
salutation rules, country names and the organisation's letterhead. Services:
campaign.services.statements.
"""
