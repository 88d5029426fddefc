"""Analytics: the funnel from shares to revenue, time series, an advocate's own figures, the
program's enrolment, activity and training, and the dictionary of every metric."""
