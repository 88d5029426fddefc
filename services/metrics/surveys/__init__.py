"""Surveys: eNPS and pulse surveys employees answer once each, anonymously, and customer surveys
recorded with an API key; their results (NPS, averages, comments)."""
