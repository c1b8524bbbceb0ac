"""Pages of when things happen: the calendar, cases, schedules and the scheduler's runs.
Services: campaign.services.schedules.
"""
