"""The organisation's directory: a SCIM 2.0 service provider (RFC 7643/7644) at /scim/v2.

Identity providers provision users (advocates) and groups (teams) here; the directory's
attributes win over what an advocate declares, and a deactivated user can no longer share.
"""
