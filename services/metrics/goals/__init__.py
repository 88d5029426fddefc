"""Program goals: a target on a metric over a period, its progress, forecast and status, and a
daily snapshot of its value."""
