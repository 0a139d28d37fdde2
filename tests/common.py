"""Helpers shared by the tests: where ../shared is, small model files made on the spot."""

from __future__ import annotations

import contextlib
import http.server
import itertools
import math
import os
import threading
import time
import urllib.parse
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import flatbuffers
import numpy as np
import onnx
import pytest
import tflite
from onnx import TensorProto, helper, numpy_helper

from engines import Engine

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REALTIME_MASK_SHARED", REPO.parent / "shared"))
MEDIA = SHARED / "media"
REFERENCE = SHARED / "reference"
CLIPS = [
    "carphone_pristine.mp4",
    "head-pose-face-detection-female-and-male.gif",
    "one-by-one-person-detection.mp4",
    "car-detection.mp4",
]


def need_shared() -> Path:
    """Skip the calling test when ../shared (test media and reference masks) is absent."""
    if not MEDIA.is_dir() or not REFERENCE.is_dir():
        pytest.skip(f"needs the shared test data at {SHARED} (media/ and reference/); set REALTIME_MASK_SHARED")
    return SHARED


def assert_images_close(images: list[np.ndarray], expected: list[np.ndarray], share: float = 2e-3) -> None:
    """Equal images but for under ``share`` of pixels off by more than 1: those whose probability sits within float
    rounding of the threshold (another batch, another upsampling), which may flip a few pixels."""
    assert len(images) == len(expected)
    for image, reference in zip(images, expected, strict=True):
        assert image.shape == reference.shape
        differs = np.any(np.abs(image.astype(np.int32) - reference.astype(np.int32)) > 1, axis=2)
        assert np.mean(differs) < share, np.mean(differs)


def write_tflite_single_op(path: Path, builtin_code: int, shape: tuple[int, ...] = (1, 8, 8, 3)) -> Path:
    """A one-operator TFLite model (float32 input -> op -> output), built with flatbuffers."""
    builder = flatbuffers.Builder(1024)

    def int_vector(start, values):
        start(builder, len(values))
        for v in reversed(values):
            builder.PrependInt32(v)
        return builder.EndVector()

    tensors = []
    for name in (b"input", b"output"):
        name_offset = builder.CreateString(name.decode())
        shape_offset = int_vector(tflite.TensorStartShapeVector, list(shape))
        tflite.TensorStart(builder)
        tflite.TensorAddShape(builder, shape_offset)
        tflite.TensorAddType(builder, tflite.TensorType.FLOAT32)
        tflite.TensorAddBuffer(builder, 0)
        tflite.TensorAddName(builder, name_offset)
        tensors.append(tflite.TensorEnd(builder))
    op_inputs = int_vector(tflite.OperatorStartInputsVector, [0])
    op_outputs = int_vector(tflite.OperatorStartOutputsVector, [1])
    tflite.OperatorStart(builder)
    tflite.OperatorAddOpcodeIndex(builder, 0)
    tflite.OperatorAddInputs(builder, op_inputs)
    tflite.OperatorAddOutputs(builder, op_outputs)
    operator = tflite.OperatorEnd(builder)

    tflite.SubGraphStartTensorsVector(builder, 2)
    for t in reversed(tensors):
        builder.PrependUOffsetTRelative(t)
    tensors_vec = builder.EndVector()
    tflite.SubGraphStartOperatorsVector(builder, 1)
    builder.PrependUOffsetTRelative(operator)
    operators_vec = builder.EndVector()
    sg_inputs = int_vector(tflite.SubGraphStartInputsVector, [0])
    sg_outputs = int_vector(tflite.SubGraphStartOutputsVector, [1])
    tflite.SubGraphStart(builder)
    tflite.SubGraphAddTensors(builder, tensors_vec)
    tflite.SubGraphAddInputs(builder, sg_inputs)
    tflite.SubGraphAddOutputs(builder, sg_outputs)
    tflite.SubGraphAddOperators(builder, operators_vec)
    subgraph = tflite.SubGraphEnd(builder)

    tflite.OperatorCodeStart(builder)
    tflite.OperatorCodeAddBuiltinCode(builder, builtin_code)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(builder, min(builtin_code, 127))
    tflite.OperatorCodeAddVersion(builder, 1)
    opcode = tflite.OperatorCodeEnd(builder)
    tflite.BufferStart(builder)
    buffer = tflite.BufferEnd(builder)

    tflite.ModelStartOperatorCodesVector(builder, 1)
    builder.PrependUOffsetTRelative(opcode)
    opcodes_vec = builder.EndVector()
    tflite.ModelStartSubgraphsVector(builder, 1)
    builder.PrependUOffsetTRelative(subgraph)
    subgraphs_vec = builder.EndVector()
    tflite.ModelStartBuffersVector(builder, 1)
    builder.PrependUOffsetTRelative(buffer)
    buffers_vec = builder.EndVector()
    tflite.ModelStart(builder)
    tflite.ModelAddVersion(builder, 3)
    tflite.ModelAddOperatorCodes(builder, opcodes_vec)
    tflite.ModelAddSubgraphs(builder, subgraphs_vec)
    tflite.ModelAddBuffers(builder, buffers_vec)
    builder.Finish(tflite.ModelEnd(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


def write_onnx_conv(path: Path, out_channels: int = 1, in_channels: int = 3, output_rank: int = 4,
                    input_type: int = TensorProto.FLOAT, seed: int = 0) -> Path:
    """A small real ONNX segmentation-shaped model: one 3x3 conv on [N, C, 32, 32] (+ a reduce to rank 3)."""
    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array(rng.normal(size=(out_channels, in_channels, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["image", "w"], ["conv"], pads=[1, 1, 1, 1])]
    inits = [weight]
    out_name = "conv"
    out_shape: list[str | int] = ["N", out_channels, 32, 32]
    if input_type != TensorProto.FLOAT:
        nodes.insert(0, helper.make_node("Cast", ["image_in"], ["image"], to=TensorProto.FLOAT))
    if output_rank == 3:
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "axes"))
        nodes.append(helper.make_node("ReduceMean", ["conv", "axes"], ["flat"], keepdims=0))
        out_name, out_shape = "flat", ["N", 32, 32]
    input_name = "image" if input_type == TensorProto.FLOAT else "image_in"
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info(input_name, input_type, ["N", in_channels, 32, 32])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that keeps the test output clean (no line per request)."""

    def log_message(self, *args):
        pass


class _LoopbackHttp:
    """A threaded HTTP server on 127.0.0.1, started by :meth:`_serve`; :meth:`stop` ends it."""

    def _serve(self, handler: type[http.server.BaseHTTPRequestHandler], port: int = 0) -> int:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.server.server_address[1]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class FolderServer(_LoopbackHttp):
    """A web server on loopback serving the files of a folder as they are now (an HLS output's playlist and
    segments, as nginx would); ``url`` is its root, ending in ``/``."""

    def __init__(self, folder: Path):
        import functools

        class Handler(http.server.SimpleHTTPRequestHandler):
            def guess_type(self, path):
                types = {".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t"}
                return types.get(Path(str(path)).suffix, "text/html")

            def log_message(self, *args):
                pass

        self.url = f"http://127.0.0.1:{self._serve(functools.partial(Handler, directory=str(folder)))}/"  # type: ignore[arg-type]


class MjpegServer(_LoopbackHttp):
    """A real HTTP camera on loopback: the clip's frames as a multipart MJPEG stream, looping, paced at ``fps``.
    While ``paused`` is set it sends nothing (a stalled camera, its connection kept)."""

    def __init__(self, clip, fps=60.0, port=0):
        capture = cv2.VideoCapture(str(clip))
        self.jpegs = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            self.jpegs.append(cv2.imencode(".jpg", frame)[1].tobytes())
        outer = self

        class Handler(_QuietHandler):
            def do_GET(self):
                if self.path != "/cam":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                k = 0
                try:
                    while not outer.stopped.is_set():
                        if outer.paused.is_set():
                            outer.stopped.wait(0.05)
                            continue
                        data = outer.jpegs[k % len(outer.jpegs)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(data)).encode() + b"\r\n\r\n" + data + b"\r\n")
                        k += 1
                        outer.stopped.wait(1.0 / fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.stopped, self.paused = threading.Event(), threading.Event()
        self.port = self._serve(Handler, port)
        self.url = f"http://127.0.0.1:{self.port}/cam"

    def stop(self):
        self.stopped.set()
        super().stop()


class WebFileServer(_LoopbackHttp):
    """A real web server on loopback serving one file at ``/clip``, with range requests as nginx answers them.

    ``cut``: the numbers of the responses (1, 2, ...) that are cut off half way, the connection closed (a network
    drop); ``gone_after``: from that response on, every request gets 503 (a server that does not come back).
    ``ranges`` lists each request's Range header.
    """

    def __init__(self, path, cut=(), gone_after=None):
        import re

        data, outer = Path(path).read_bytes(), self
        self.ranges: list[str] = []

        class Handler(_QuietHandler):
            def do_GET(self):
                outer.ranges.append(self.headers.get("Range", ""))
                number = len(outer.ranges)
                if self.path != "/clip" or (gone_after is not None and number >= gone_after):
                    self.send_error(404 if self.path != "/clip" else 503)
                    return
                asked = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                start = int(asked.group(1)) if asked else 0
                end = int(asked.group(2)) if asked and asked.group(2) else len(data) - 1
                self.send_response(206 if asked else 200)
                if asked:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.send_header("Content-Length", str(end - start + 1))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "video/mp4")
                self.end_headers()
                body = data[start:end + 1]
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the reader went away
                    self.wfile.write(body[:len(body) // 2] if number in cut else body)
                if number in cut:
                    self.close_connection = True

        self.url = f"http://127.0.0.1:{self._serve(Handler)}/clip"


def hls_segments(clip: Path, folder: Path, frames: int, segment_frames: int, name: str = "all",
                 start_s: float = 0.0) -> list[str]:
    """The first ``frames`` frames of ``clip`` as HLS segments of ``segment_frames`` frames each (H.264 in MPEG-TS,
    FFmpeg's own HLS muxer, through PyAV), written to ``folder`` as ``{name}0.ts``, ...; returns their names in order.
    ``start_s``: the stream's clock at the first frame (another encoder's, or one restarted)."""
    from fractions import Fraction

    import av

    with av.open(str(clip)) as source:
        stream = source.streams.video[0]
        rate = Fraction(stream.average_rate or 25).limit_denominator(1000)
        with av.open(str(folder / f"{name}.m3u8"), "w", format="hls",
                     options={"hls_time": f"{float(segment_frames / rate):.3f}", "hls_list_size": "0"}) as out:
            video = out.add_stream("libx264", rate=rate, options={"g": str(segment_frames), "sc_threshold": "0"})
            video.width, video.height, video.pix_fmt = stream.width, stream.height, "yuv420p"
            for index, decoded in enumerate(source.decode(stream)):
                if index == frames:
                    break
                frame = av.VideoFrame.from_ndarray(decoded.to_ndarray(format="bgr24"), format="bgr24")
                frame.pts, frame.time_base = index + round(start_s * rate), 1 / rate
                out.mux(video.encode(frame))
            out.mux(video.encode())
    return [line for line in (folder / f"{name}.m3u8").read_text().splitlines() if line.endswith(".ts")]


class HlsServer(_LoopbackHttp):
    """A live HLS server on loopback, as a camera's or an event's: segment ``k`` (see :func:`hls_segments`) is
    published ``k * segment_s`` seconds after the first request of ``/live.m3u8`` (the event starts as its first
    viewer joins), which lists the newest ``window`` of them, and gets ``#EXT-X-ENDLIST`` once the last is out when
    ``ends`` (the event is over). ``/vod.m3u8`` lists them all, ended. ``down``: from when to when (seconds after the
    start) every request is answered 503, a server that is away for a while. ``discontinuity``: the segment from
    which the stream is on another clock (a restarted encoder), marked ``#EXT-X-DISCONTINUITY``. The playlists are
    also served without their suffix (``/live``), and with ``playlist_type`` (a server that does not know HLS's type
    says ``application/octet-stream``). ``master``: the text of a master playlist served at ``/master.m3u8`` (and
    ``/master``), listing renditions. ``asked`` lists the paths requested.
    """

    def __init__(self, folder: Path, segments: list[str], segment_s: float, window: int = 1000, ends: bool = True,
                 down: tuple[float, float] | None = None, discontinuity: int | None = None,
                 playlist_type: str = "application/vnd.apple.mpegurl", port: int = 0, master: str | None = None):
        outer = self
        self.started: float | None = None
        self.asked: list[str] = []

        def playlist(live: bool) -> str:
            if live and outer.started is None:
                outer.started = time.monotonic()
            published = len(segments) if outer.started is None or not live else \
                min(len(segments), int((time.monotonic() - outer.started) / segment_s) + 1)
            first = max(0, published - window) if live else 0
            lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{math.ceil(segment_s)}",
                     f"#EXT-X-MEDIA-SEQUENCE:{first}"]
            for number, name in enumerate(segments[first:published], start=first):
                lines += ["#EXT-X-DISCONTINUITY"] * (number == discontinuity) + [f"#EXTINF:{segment_s:.3f},", name]
            if published == len(segments) and (ends or not live):
                lines.append("#EXT-X-ENDLIST")
            return "\n".join(lines) + "\n"

        class Handler(_QuietHandler):
            def do_GET(self):
                name = urllib.parse.urlsplit(self.path).path.lstrip("/")  # a query (a token) does not count
                name = {"live": "live.m3u8", "vod": "vod.m3u8", "master": "master.m3u8"}.get(name, name)  # no suffix too
                outer.asked.append(name)
                if down and outer.started and down[0] <= time.monotonic() - outer.started < down[1]:
                    self.send_error(503)
                    return
                if name in ("live.m3u8", "vod.m3u8"):
                    body, kind = playlist(name == "live.m3u8").encode(), playlist_type
                elif name == "master.m3u8" and master is not None:
                    body, kind = master.encode(), playlist_type
                elif name in segments:
                    body, kind = (folder / name).read_bytes(), "video/mp2t"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

        self.url = f"http://127.0.0.1:{self._serve(Handler, port)}"


_SEND_TS = """
import sys, time
import av
clip, target = sys.argv[1:]
with av.open(clip) as source, av.open(target, "w", format="mpegts") as stream:
    video = stream.add_stream_from_template(source.streams.video[0])
    started = time.monotonic()
    for packet in source.demux(source.streams.video[0]):
        if packet.dts is not None:
            time.sleep(max(0.0, started + float(packet.dts * packet.time_base) - time.monotonic()))
            packet.stream = video
            stream.mux(packet)
"""


class TsStreamSender:
    """A real MPEG-TS stream of a clip, as an encoder sends one: to ``udp://127.0.0.1:PORT`` (datagrams, whether or
    not anyone listens; ``host`` a multicast group too), or on ``tcp://127.0.0.1:PORT`` (listening for one viewer),
    paced at the clip's rate, from
    another process (PyAV holds the GIL while it waits for a TCP viewer); :meth:`stop` ends it."""

    def __init__(self, clip: Path, scheme: str = "udp", host: str = "127.0.0.1"):
        import subprocess
        import sys

        self.port = free_port()
        self.url = f"{scheme}://{host}:{self.port}"
        target = self.url + ("?pkt_size=1316&ttl=0" if scheme == "udp" else "?listen=1")  # ttl 0: multicast stays here
        self.process = subprocess.Popen([sys.executable, "-c", _SEND_TS, str(clip), target],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while scheme == "tcp" and not self._listening() and time.monotonic() < deadline:
            time.sleep(0.05)  # a probe connection would be the one viewer it takes

    def _listening(self) -> bool:
        return _listening(self.port)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def _listening(port: int) -> bool:
    """Something listens on this TCP port (Linux's table of TCP sockets)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(row.split()[1].endswith(f":{port:04X}") and row.split()[3] == "0A" for row in rows)


def numbered_video(path: Path, times_s: list[float], size_wh: tuple[int, int] = (64, 48)) -> Path:
    """A lossless video (FFV1 in Matroska) whose frame k, shown from ``times_s[k]``, is flat at level 8 k: what a
    background video shows at a moment reads back as its frame number (:func:`frame_number`)."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=30)
        stream.width, stream.height, stream.pix_fmt = *size_wh, "bgr0"
        stream.codec_context.time_base = Fraction(1, 1000)
        for k, at in enumerate(times_s):
            frame = av.VideoFrame.from_ndarray(np.full((size_wh[1], size_wh[0], 3), 8 * k, np.uint8), format="bgr24")
            frame.pts, frame.time_base = round(at * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame.reformat(format="bgr0")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def av1_copy(clip: Path, path: Path, frames: int) -> Path:
    """The first ``frames`` frames of ``clip`` in AV1 (SVT-AV1, near lossless) at their own times: a file OpenCV's
    wheel opens but cannot decode (it has no software AV1 decoder)."""
    from fractions import Fraction

    import av

    with av.open(str(clip)) as source, av.open(str(path), "w") as container:
        decoded = source.streams.video[0]
        stream = container.add_stream("libsvtav1", rate=30, options={"crf": "4", "preset": "10"})
        stream.width, stream.height, stream.pix_fmt = decoded.width, decoded.height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for frame in itertools.islice(source.decode(decoded), frames):
            copy = av.VideoFrame.from_ndarray(frame.to_ndarray(format="bgr24"), format="bgr24").reformat(
                format="yuv420p")
            copy.pts, copy.time_base = round(float(frame.time) * 1000), Fraction(1, 1000)
            for packet in stream.encode(copy):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def anamorphic_copy(clip: Path, path: Path, frames: int, size_wh: tuple[int, int], sample_aspect: Fraction) -> Path:
    """The first ``frames`` frames of ``clip`` squeezed to ``size_wh`` and stored (H.264 in MP4) with pixels of that
    shape, as an anamorphic recording is (DVB's 720x576 at 16:9: 64/45): players stretch them back."""
    import av

    capture = cv2.VideoCapture(str(clip))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = *size_wh, "yuv420p"
        stream.codec_context.sample_aspect_ratio = sample_aspect
        for _ in range(frames):
            bgr = np.asarray(cv2.resize(capture.read()[1], size_wh), np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(bgr, format="bgr24")))
        container.mux(stream.encode())
    capture.release()
    return path


CHART_BGR = [(40, 40, 200), (40, 200, 40), (200, 60, 30), (90, 140, 220), (200, 200, 40), (150, 40, 180)]


def color_tagged_copy(clip: Path, path: Path, frames: int, size_wh: tuple[int, int], tags: tuple[int, int, int],
                      matrix: str, codec: str = "libx264", pix_fmt: str = "yuv420p", chart: bool = False) -> Path:
    """The first ``frames`` frames of ``clip`` at ``size_wh``, converted to YUV by ``matrix`` (PyAV's name:
    ``"ITU709"``, ``"BT2020"``) and tagged ``tags`` (FFmpeg's matrix, primaries, transfer: 1, 1, 1 is BT.709, as an
    HD camera's; 9, 9, 16 BT.2020 with PQ, HDR10 as ``libx265`` at ``yuv420p10le``). ``chart``: a colour chart in
    the scene, the :data:`CHART_BGR` patches side by side across its top sixth."""
    import av

    capture = cv2.VideoCapture(str(clip))
    options = {"x265-params": "log-level=error"} if codec == "libx265" else {"crf": "12"}
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10, options=options)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = *size_wh, pix_fmt
        context = stream.codec_context
        context.colorspace, context.color_primaries, context.color_trc = tags
        context.color_range = 1
        for _ in range(frames):
            bgr = np.asarray(cv2.resize(capture.read()[1], size_wh, interpolation=cv2.INTER_AREA), np.uint8)
            for k, color in enumerate(CHART_BGR) if chart else ():
                bgr[:size_wh[1] // 6, k * size_wh[0] // 6:(k + 1) * size_wh[0] // 6] = color
            frame = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format=pix_fmt, dst_colorspace=matrix)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    capture.release()
    return path


def rotated_copy(clip: Path, path: Path) -> Path:
    """``clip`` (an MP4) with its first track's display matrix set to a quarter turn, as a phone held upright
    writes it: the pixels are stored sideways and players (and OpenCV) turn them."""
    import struct

    data = bytearray(clip.read_bytes())
    box = data.find(b"tkhd")
    version = data[box + 4]
    matrix = box + 8 + (32 if version == 1 else 20) + 16  # past the times, then layer, group, volume, reserved
    data[matrix:matrix + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    width, height = struct.unpack(">II", data[matrix + 36:matrix + 44])
    data[matrix + 36:matrix + 44] = struct.pack(">II", height, width)
    path.write_bytes(data)
    return path


def frame_number(pixels: np.ndarray) -> int:
    """Which frame of a :func:`numbered_video` these pixels (of one frame, all from the background) show."""
    levels = np.unique(pixels)
    assert levels.size == 1 and levels[0] % 8 == 0, f"not one frame of a numbered video: levels {levels[:8]}"
    return int(levels[0]) // 8


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_PUBLISH_RTMP = """
import sys, time
import av, cv2
clip, target = sys.argv[1:]
capture = cv2.VideoCapture(clip)
fps = round(capture.get(cv2.CAP_PROP_FPS) or 10)
ok, image = capture.read()
with av.open(target, "w", format="flv") as out:
    video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "tune": "zerolatency", "g": str(fps)})
    video.width, video.height, video.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
    started, count = time.monotonic(), 0
    while True:
        if not ok:  # the clip again, as a camera goes on
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = capture.read()
        for packet in video.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
            out.mux(packet)
        count += 1
        time.sleep(max(0.0, started + count / fps - time.monotonic()))
        ok, image = capture.read()
"""

_NGINX_RTMP = """load_module {module};
daemon off;
master_process off;
worker_processes 1;
error_log {folder}/error.log;
pid {folder}/nginx.pid;
events {{ worker_connections 64; }}
rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}
"""


class RtmpServer:
    """A real RTMP server on loopback (nginx with its RTMP module, as nginx-rtmp deployments run it) with a camera
    publishing a clip to it, looped, as H.264 with a key frame a second; :meth:`kill` takes both down,
    :meth:`start` brings them back on the same port."""

    NGINX, MODULE = Path("/usr/sbin/nginx"), Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")

    def __init__(self, clip: Path | None, folder: Path, path: str = "live/cam") -> None:
        self.clip, self.folder, self.port = clip, folder, free_port()  # clip None: nothing published
        self.url = f"rtmp://127.0.0.1:{self.port}/{path}"
        self.processes: list[Any] = []
        self.start()

    @classmethod
    def available(cls) -> str | None:
        """None when the server can run here, else why not."""
        if not cls.NGINX.exists() or not cls.MODULE.exists():
            return "needs nginx with its RTMP module: apt-get install nginx-light libnginx-mod-rtmp"
        return None

    def start(self) -> None:
        import subprocess
        import sys

        config = self.folder / "nginx.conf"
        config.write_text(_NGINX_RTMP.format(module=self.MODULE, folder=self.folder, port=self.port))
        self.processes = [subprocess.Popen([str(self.NGINX), "-e", str(self.folder / "error.log"), "-p", str(self.folder),
                                            "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        deadline = time.monotonic() + 10
        while not _listening(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.clip is not None:
            self.processes.append(subprocess.Popen([sys.executable, "-c", _PUBLISH_RTMP, str(self.clip), self.url],
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def kill(self) -> None:
        for process in reversed(self.processes):
            process.kill()
            process.wait()
        self.processes = []


class RtspServer:
    """GStreamer's RTSP server (tests/rtsp_server.py, system Python with gi) serving a clip on loopback."""

    SCRIPT = REPO / "tests" / "rtsp_server.py"

    def __init__(self, clip, port=None, path="/live", user=None, password=None, mpeg4=False):
        if port is None:
            port = free_port()
        self.clip, self.port, self.path, self.user, self.password = clip, port, path, user, password
        self.mpeg4 = mpeg4
        self.process = None
        self.start()

    @classmethod
    def available(cls) -> str | None:
        """None when the server can run here, else why not."""
        import subprocess

        probe = subprocess.run(["/usr/bin/python3", "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                                "from gi.repository import GstRtspServer"], capture_output=True, text=True)
        if probe.returncode != 0:
            return ("needs GStreamer's RTSP server: apt-get install gir1.2-gst-rtsp-server-1.0 python3-gi "
                    "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad")
        return None

    @property
    def url(self):
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    def start(self):
        import subprocess

        command = ["/usr/bin/python3", str(self.SCRIPT), "--port", str(self.port), "--path", self.path,
                   "--clip", str(self.clip)]
        if self.user:
            command += ["--user", self.user, "--password", self.password]
        if self.mpeg4:
            command.append("--mpeg4")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if "ready" not in line:
            raise RuntimeError(f"RTSP server did not start: {line} {self.process.stderr.read()[-500:]}")

    def kill(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


class SlowEngine(Engine):
    """The real engine, slowed down by a fixed delay per call: a consumer slower than the camera, on any machine."""

    def __init__(self, inner: Engine, delay_s: float) -> None:
        super().__init__(inner.model_name, inner.spec, inner.device, inner.precision)
        self.inner, self.delay_s = inner, delay_s

    def _run(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(self.delay_s)
        return self.inner._run(batch)
