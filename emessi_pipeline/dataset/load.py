from .connection import (LoadedRecording, load_recording, start_run, finish_run, record_failure, unresolved_failure, resolve_failures, change_kind, is_current, set_counts)  # noqa: F401
