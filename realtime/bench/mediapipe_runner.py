"""Time MediaPipe's own runtime on given frames. Runs inside MediaPipe's virtual environment, not ours.

Usage (done by ``benchmarks/mediapipe_side.py``):
    MEDIAPIPE_PYTHON mediapipe_runner.py FRAMES.npy MODEL_SELECTION WARMUP [--blur STRENGTH]

FRAMES.npy holds uint8 RGB frames [N, H, W, 3]. Prints one JSON line: per-frame seconds of
``SelfieSegmentation.process`` (and of process + the same blur composite as ours when --blur is
given: two (2s+1) box passes, the blurred pixels where the mask is >= 0.5).
"""

import json
import sys
import time

import numpy as np


def main() -> None:
    import cv2
    import mediapipe as mp

    frames = np.load(sys.argv[1])
    selection, warmup = int(sys.argv[2]), int(sys.argv[3])
    blur = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--blur" else 0
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=selection) as segmenter:
        for frame in frames[:warmup]:
            segmenter.process(frame)
        mask_s, composite_s = [], []
        for frame in frames:
            start = time.perf_counter()
            mask = segmenter.process(frame).segmentation_mask
            mask_s.append(time.perf_counter() - start)
            if blur:
                size = (2 * blur + 1, 2 * blur + 1)
                blurred = cv2.blur(cv2.blur(frame, size), size)
                np.where((mask >= 0.5)[..., None], blurred, frame)
                composite_s.append(time.perf_counter() - start)
    print(json.dumps({"mask_s": mask_s, "mask_blur_s": composite_s, "mediapipe": mp.__version__}))


if __name__ == "__main__":
    main()
