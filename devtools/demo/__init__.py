"""`chorus demo`: a simulated advocacy program played against a running stack through its public
APIs (plan.py decides it from the seed, run.py plays it, report.py reads back and prints what the
APIs say)."""
