"""The chain's stages: pure functions from one artifact to the next.

extract (``audio``) → transcribe → diarize (with ``embedding``) → align → segment, and the typed
records they pass on (``records``). ``models`` says where the shipped models live and installs
them, since the stages are what load them.

Layer: above ``config``; it may import ``config`` and nothing else of the package (no run
orchestration, no database, no command line). Each stage takes what it needs as arguments and
returns a record; caching and ordering are the ``runs`` layer's business.
"""
