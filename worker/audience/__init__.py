"""Who receives a campaign: contact CSV import and segment expressions."""
