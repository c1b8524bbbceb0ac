"""Commands about what a letter says: statements, and rendering one letter. Services:
campaign.services.statements.
"""
