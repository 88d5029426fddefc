"""The organisation's metrics settings: the rates of earned media value (CPC, CPM, currency),
set by its admins, and the attribution window and the time zone, from the content service's
settings events."""
