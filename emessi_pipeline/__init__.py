"""emessi-pipeline: recorded group meetings to a speaker-attributed, codable DuckDB dataset.

The Python API mirrors the CLI::

    from emessi_pipeline import Ingestor, load_profile
    summary = Ingestor(load_profile("default"), workspace=Path("emessi-work"),
                       database_path=Path("emessi.duckdb")).run(Path("recordings"))
"""

from .version import __version__

from .runs.privacy import lock_down as _lock_down

# Before anything imports pyannote or huggingface_hub: no telemetry, no hub look-ups.
_lock_down(allow_downloads=False)

from .config import Profile, load_profile  # noqa: E402
from .runs.ingest import Ingestor  # noqa: E402
from .runs.results import IngestSummary, RecordingResult  # noqa: E402

__all__ = ["Ingestor", "IngestSummary", "Profile", "RecordingResult", "load_profile", "__version__"]
