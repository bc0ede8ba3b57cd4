"""What each model a profile names resolves to, and whether it is on this machine."""

from __future__ import annotations

from ..stages import models
from ..config import Profile


def _row(role: str, name: str, resolve) -> dict:
    try:
        return {"role": role, "model": name, "present": True, "detail": str(resolve())}
    except models.MissingModelError as error:
        return {"role": role, "model": name, "present": False, "detail": " ".join(str(error).split())}


def profile_models(profile: Profile) -> list[dict]:
    from ..stages.transcribe import resolve_model

    rows = [_row("asr", profile.asr.model, lambda: resolve_model(profile.asr, False).source)]
    cfg = profile.diarization
    if cfg.pipeline:
        rows.append(_row("diarization", cfg.pipeline, lambda: _pyannote_pipeline_location(cfg.pipeline)))
    else:
        for role, name in (("segmentation", cfg.segmentation), ("embedding", cfg.embedding)):
            rows.append(_row(role, name, lambda name=name: models.resolve_shipped(name)))
    return rows


def _pyannote_pipeline_location(name: str) -> str:
    from pathlib import Path

    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(name, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means "not in the local cache"
        raise models.MissingModelError(
            f"pyannote pipeline '{name}' is not in the local Hugging Face cache: on a connected "
            f"machine accept its conditions on the hub, run with --allow-downloads and HF_TOKEN set, "
            f"or copy the pipeline folder here and name its path in diarization.pipeline"
        ) from None
