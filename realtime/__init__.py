"""Real-time masking pipeline: capture -> engine -> compositor -> sink."""

import engines  # noqa: F401  (sets the OpenCV/FFmpeg log levels before cv2 loads)
