"""Real-time masking pipeline: capture -> engine -> compositor -> sink."""

import os

# FFmpeg's own log lines (e.g. "moov atom not found") would break our one-line errors; our messages say it.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
