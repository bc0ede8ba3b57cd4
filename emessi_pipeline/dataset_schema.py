"""Tables and views of the coded dataset (participants, codebooks, codings), on top of the
ingest tables in database.py. Applied by database.connect on every writable connection."""

SCHEMA = ""
