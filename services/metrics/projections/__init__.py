"""Projections of the events other services publish: share, click and conversion counters per
organisation and day (live, and rebuilt from offset 0), the click index for attribution, and the
advocates' enrolment, activity and training."""
