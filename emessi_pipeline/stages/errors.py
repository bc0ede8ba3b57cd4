"""What a stage raises when the recording itself is the problem.

A stage raises :class:`RecordingError` only for a fault of its input: a file ffmpeg cannot
read, no audio stream, content that does not decode, audio too short to use. The batch marks
that recording failed and skips it until the file changes. Anything else a stage raises (a full
disk, no memory, a bad setting, a bug) is not the recording's fault, so the batch stops instead
and the next run tries the recording again.
"""

from __future__ import annotations


class RecordingError(RuntimeError):
    """A recording that cannot be used; the message names the file and the cause."""
