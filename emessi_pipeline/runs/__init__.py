"""Running the chain over recordings: orchestration, caching, locks, interrupts, budgets.

``ingest`` holds the Ingestor (one batch: models, the stage sequence, loading) and its
ModelCache; ``chain`` one recording's way through the stages (STAGES, cache keys, StageError);
``results`` the run's result records and progress hooks; ``budget`` the run's limits;
``status`` the per-recording status rows; ``workspace`` the content-hashed artifact cache;
``lock``, ``interrupts``, ``parallel``, ``shard``, ``clean``, ``runlog``, ``devices``, ``memory``,
``privacy``, ``manifest`` and ``model_status`` one concern each; ``demo`` builds and ingests the
bundled demo meeting. The names below are the layer's public API for the command line.

Layer: below the command line, beside ``evaluation``; it may import ``dataset``, ``stages`` and
``config``, never ``cli`` or ``evaluation``.
"""

from .budget import Limits
from .chain import INPUT_ERRORS, STAGE_VERSIONS, STAGES, RunStopped, StageError, describe_fault
from .ingest import MIN_FREE_BYTES, Ingestor, ModelCache
from .results import IngestSummary, RecordingResult, Reporter

__all__ = ["INPUT_ERRORS", "MIN_FREE_BYTES", "STAGES", "STAGE_VERSIONS", "IngestSummary", "Ingestor", "Limits",
           "ModelCache", "RecordingResult", "Reporter", "RunStopped", "StageError", "describe_fault"]  # fmt: skip
