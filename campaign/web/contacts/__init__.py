"""Pages of contacts: the contacts list and form, trash, merge and bulk edits, imports, lists
and segments (audiences), suppressions. Services: campaign.services.contacts.
"""
