"""How long an RTMP stream takes to open and to give its first frame through OpenCV/FFmpeg, with FFmpeg's default
probing and with the half second the ``rtmp://`` source asks for (``realtime/capture/live.py: open_stream``), and
how many frames were already waiting behind the first (read back to back, faster than the stream's rate).

The server is nginx's RTMP module on loopback with a camera publishing a shared clip to it, as the tests run it
(``tests/common.py: RtmpServer``; needs ``apt-get install nginx-light libnginx-mod-rtmp``).

Usage:
    python benchmarks/rtmp_open.py [--rounds 3] [--out benchmarks/results/rtmp-open.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from realtime.bench.machine import machine_info
from tests.common import MEDIA, RtmpServer

PROBES = {"ffmpeg default": None, "realtime-mask (0.5 s probe)": "analyzeduration;500000|probesize;200000"}


def open_once(url: str, options: str | None) -> dict[str, float]:
    """Seconds to open and to the first frame, and the frames read within 0.05 s of each other after it (a backlog)."""
    os.environ.pop("OPENCV_FFMPEG_CAPTURE_OPTIONS", None)
    if options:
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = options
    started = time.monotonic()
    capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 15000])
    opened = time.monotonic() - started
    ok, _ = capture.read()
    first = time.monotonic() - started
    waiting, last = 0, time.monotonic()
    while ok and waiting < 500:
        ok, _ = capture.read()
        now = time.monotonic()
        if now - last > 0.05:  # one at the stream's own pace: the backlog is read
            break
        waiting, last = waiting + 1, now
    capture.release()
    return {"open_s": round(opened, 3), "first_frame_s": round(first, 3), "frames_waiting": waiting}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clip", default=str(MEDIA / "one-by-one-person-detection.mp4"))
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    if (why := RtmpServer.available()) is not None:
        sys.exit(why)
    with tempfile.TemporaryDirectory() as folder:
        server = RtmpServer(Path(args.clip), Path(folder))
        try:
            time.sleep(2.0)  # the camera has published
            rows = {name: [open_once(server.url, options) for _ in range(args.rounds)] for name, options in PROBES.items()}
        finally:
            server.kill()
    for name, runs in rows.items():
        print(f"{name:<30} " + "  ".join(f"open {r['open_s']:.2f} s, first frame {r['first_frame_s']:.2f} s, "
                                          f"{r['frames_waiting']} waiting" for r in runs))
    if args.out:
        Path(args.out).write_text(json.dumps({
            "machine": machine_info(), "date": time.strftime("%Y-%m-%d"), "clip": Path(args.clip).name,
            "stream": "H.264 at the clip's rate, a key frame a second, published to nginx-rtmp on loopback",
            "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
