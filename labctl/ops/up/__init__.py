"""Bringing a lab up from its file or a built-in topology: source.py reads
what is asked, prepare.py makes the plan, folder.py writes the lab folder,
apply.py carries the plan out (`up`)."""
