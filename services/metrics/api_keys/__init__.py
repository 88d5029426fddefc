"""API keys of an organisation, for websites, CRMs, fulfilment systems and identity providers.

Issued here, in one place; every service that accepts keys learns of them from the events this
module emits (shared/api_keys.py). The key's format and check are shared/auth.py's.
"""
