"""Cost of each video file output: frames per second written, bytes per frame and PSNR once decoded, on the real
surveillance clip.

The clip's frames (unmasked: a writer's cost barely depends on the masking) resized to each size, written
through ``VideoFileSink`` to .mp4 (H.264 through PyAV, in one-second fragments), .mkv (MPEG-4 Part 2 through
PyAV), .avi (Motion JPEG through PyAV) and .webm (VP9, also with an alpha channel: PSNR of the colour only), and,
for comparison, OpenCV's writers that .avi (MJPG), .mp4 (mp4v) and .mkv (XVID) used before, and H.264 with
FFmpeg's own colour conversion (swscale, inside PyAV) instead of OpenCV's.
PSNR: each written frame decoded by OpenCV against the frame given.

Usage:
    python benchmarks/video_writers.py [--frames 120] [--sizes 768x432,1920x1080] [--only .webm,H.264 (lib]
        [--out benchmarks/results/video-writers.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from realtime.bench.machine import machine_info
from realtime.capture.files import read_frames
from realtime.outputs.files import H264_OPTIONS, VideoFileSink


def _opencv(fourcc: str):
    def write(path: Path, frames: list, fps: float) -> None:
        size = (frames[0].shape[1], frames[0].shape[0])
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, size)
        for frame in frames:
            writer.write(frame)
        writer.release()
    return write


def _pyav_swscale(path: Path, frames: list, fps: float) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=int(fps), options=H264_OPTIONS)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for index, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(frame, format="bgr24")
            video_frame.pts = index
            for packet in stream.encode(video_frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _psnr(path: Path, frames: list) -> float:
    capture = cv2.VideoCapture(str(path))
    return float(np.mean([cv2.PSNR(frame, capture.read()[1]) for frame in frames]))


def _sink(path: Path, frames: list, fps: float) -> None:
    with VideoFileSink(path, fps) as sink:
        for frame in frames:
            sink.write(frame)


def _sink_bgra(path: Path, frames: list, fps: float) -> None:
    """BGRA frames (cutout's) into a video with an alpha channel: an ellipse opaque, the rest transparent."""
    height, width = frames[0].shape[:2]
    alpha = np.zeros((height, width), np.uint8)
    cv2.ellipse(alpha, (width // 2, height // 2), (width // 5, height // 3), 0, 0, 360, 255, -1)
    with VideoFileSink(path, fps) as sink:
        for frame in frames:
            sink.write(np.dstack([frame, alpha]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(__file__).resolve().parents[2] / "shared"
    parser.add_argument("--clip", default=str(shared / "media/one-by-one-person-detection.mp4"))
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--sizes", default="768x432,1920x1080")
    parser.add_argument("--out", default="benchmarks/results/video-writers.json")
    parser.add_argument("--only", help="comma-separated parts of writer names: run those only (e.g. .webm,H.264 (lib)")
    args = parser.parse_args()
    source = read_frames(args.clip, args.frames)
    writers = {".mp4 H.264 (libx264 veryfast, CRF 20)": (".mp4", _sink), ".mkv MPEG-4 Part 2 (PyAV)": (".mkv", _sink),
               ".avi Motion JPEG (PyAV)": (".avi", _sink), ".avi MJPG (OpenCV, before)": (".avi", _opencv("MJPG")),
               ".mp4 mp4v (OpenCV, before)": (".mp4", _opencv("mp4v")), ".mkv XVID (OpenCV, before)": (".mkv", _opencv("XVID")),
               ".mp4 H.264, swscale's 4:2:0": (".mp4", _pyav_swscale),
               ".webm VP9 (libvpx realtime, cpu-used 8, CRF 32)": (".webm", _sink),
               ".webm VP9 with alpha (cutout's BGRA)": (".webm", _sink_bgra)}
    if args.only:
        writers = {name: writer for name, writer in writers.items() if any(part in name for part in args.only.split(","))}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes.split(","):
            width, height = map(int, size.split("x"))
            frames = [cv2.resize(frame, (width, height)) for frame in source]
            for name, (suffix, write) in writers.items():
                path = Path(folder) / f"out{suffix}"
                start = time.perf_counter()
                write(path, frames, 25.0)
                seconds = time.perf_counter() - start
                rows.append({"size": size, "writer": name, "fps": round(len(frames) / seconds, 1),
                             "bytes_per_frame": path.stat().st_size // len(frames),
                             "psnr_db": round(_psnr(path, frames), 2)})
                print(f"{size:>10}  {name:<40} {rows[-1]['fps']:>7.1f} fps  {rows[-1]['bytes_per_frame']:>8} B/frame  "
                      f"{rows[-1]['psnr_db']:>6.2f} dB")
    result = {"command": " ".join(["python", *sys.argv]), "machine": machine_info(), "date": time.strftime("%Y-%m-%d"),
              "clip": Path(args.clip).name, "frames": len(source), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
