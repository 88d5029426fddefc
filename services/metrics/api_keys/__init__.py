"""API keys of an organisation, for websites and CRMs that report conversions.

No domain.py: the key's format and its check are shared/auth.py's, and the store's entity is all
the state there is.
"""
