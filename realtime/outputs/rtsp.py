"""``rtsp://HOST:PORT/PATH`` — publish the masked stream as H.264 over RTSP.

The sink starts and supervises a GStreamer RTSP server process (``rtsp_serve.py``) that encodes the
frames it writes to H.264 and serves them at that address (``rtsp://@:8554/masked`` serves every
interface; a plain host binds that address, 127.0.0.1 by default). ``rtsp://viewer:secret@HOST:PORT/PATH``
serves that path only to a client that gives those credentials (Basic auth; they are ``***`` in every message).
Outputs on one host and port share one process, each at its own path (several streams:
``-o 'rtsp://127.0.0.1:8554/cam{stream}'``). If the process dies it is restarted on the next frame (counted in
:attr:`RtspSink.restarts`). Needs a Python with GStreamer's bindings (``/usr/bin/python3`` with python3-gi,
gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-ugly).

Example:
    >>> with RtspSink("127.0.0.1:8554/masked", fps=25) as sink:  # doctest: +SKIP
    ...     sink.write(frame_bgr)
"""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from engines.errors import InputShapeError, OutputError
from realtime.outputs.base import Sink, split_viewer, square_pixels, to_even_sides

SERVER_SCRIPT = Path(__file__).with_name("rtsp_serve.py")
GST_PYTHON = os.environ.get("REALTIME_MASK_GST_PYTHON", "/usr/bin/python3")


class _ServerProcess:
    """One RTSP server process on a host and port, serving a mount per sink; restarted when it dies."""

    def __init__(self, host: str, port: int, shown: str) -> None:
        self.host, self.port, self.shown = host, port, shown
        self.mounts: dict[str, tuple[int, int, int] | None] = {}  # path -> (width, height, fps) once known
        self.viewers: dict[str, str | None] = {}  # path -> base64 of the "user:password" it asks clients for
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def _start(self) -> None:
        command = [GST_PYTHON, str(SERVER_SCRIPT), "--host", self.host, "--port", str(self.port)]
        log = tempfile.TemporaryFile()  # noqa: SIM115 - GStreamer's messages; a pipe could fill up and block it
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        assert process.stdout is not None and process.stdin is not None
        line = process.stdout.readline().decode(errors="replace")
        if "ready" not in line:
            process.wait()
            log.seek(0)
            error = log.read().decode(errors="replace").strip()
            raise OutputError(f"cannot serve {self.shown}: {(error.splitlines() or [line.strip() or 'no output'])[-1]}")
        for path, shape in self.mounts.items():  # a restarted server serves what it served before
            if shape is not None:
                process.stdin.write(self._mount(path, shape))
        self.process = process  # only once it listens

    def _mount(self, path: str, shape: tuple[int, int, int]) -> bytes:
        viewer = self.viewers.get(path)
        return f"mount {path} {shape[0]} {shape[1]} {shape[2]}{' ' + viewer if viewer else ''}\n".encode()

    def send(self, path: str, shape: tuple[int, int, int], data: bytes) -> bool:
        """One frame to a mount (mounted on its first frame); False if it was lost (the server died: restarted on
        the next frame)."""
        if self.process is not None and self.process.poll() is not None:
            self.process, self.restarts = None, self.restarts + 1
        if self.process is None:
            self._start()
        assert self.process is not None and self.process.stdin is not None
        try:
            if self.mounts.get(path) != shape:
                self.mounts[path] = shape
                self.process.stdin.write(self._mount(path, shape))
            self.process.stdin.write(f"frame {path}\n".encode() + data)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self.process.kill()
            self.process.wait()
            self.process, self.restarts = None, self.restarts + 1
            return False
        return True

    def stop(self) -> None:
        if self.process is not None:
            try:
                if self.process.stdin:
                    self.process.stdin.close()
                self.process.wait(timeout=5)
            except (subprocess.TimeoutExpired, OSError):
                self.process.kill()
                self.process.wait()
            self.process = None


_SERVERS: dict[tuple[str, int], _ServerProcess] = {}  # the open ones, by host and port
_SERVERS_LOCK = threading.Lock()


class RtspSink(Sink):
    """Serves the written frames as an H.264 RTSP stream; restarts its server process if it dies."""

    def __init__(self, location: str, fps: float = 25.0) -> None:
        address, _, path = location.partition("/")
        credentials, address = split_viewer(address)
        host, _, port = address.rpartition(":")
        if not port.isdigit() or not 0 < int(port) <= 65535:
            raise OutputError(f"RTSP output needs rtsp://HOST:PORT/PATH with a port 1..65535, got "
                              f"rtsp://{'***@' if credentials else ''}{address}/{path}")
        viewer = base64.b64encode(":".join(credentials).encode()).decode() if credentials else None
        bind = "0.0.0.0" if host == "@" else (host or "127.0.0.1")  # "@" serves every interface
        self.port, self.path = int(port), "/" + (path or "masked")
        if any(c.isspace() for c in self.path):
            raise OutputError(f"RTSP output path must not contain spaces, got {self.path!r}")
        self.fps = max(1, round(fps)) if fps and fps > 0 else 25
        self.uri = f"rtsp://{'***@' if credentials else ''}{host or '127.0.0.1'}:{self.port}{self.path}"
        self.frames_written = 0
        probe = subprocess.run([GST_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
                               capture_output=True)
        if probe.returncode != 0:
            raise OutputError(f"RTSP output needs GStreamer's Python bindings for {GST_PYTHON}: apt-get install "
                              "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-ugly")
        with _SERVERS_LOCK:
            server = _SERVERS.setdefault((bind, self.port), _ServerProcess(bind, self.port, self.uri))
            if self.path in server.mounts:
                raise OutputError(f"two outputs at {self.uri}: give each stream its own path "
                                  f"(e.g. rtsp://{host or '127.0.0.1'}:{self.port}/cam{{stream}})")
            server.mounts[self.path], server.viewers[self.path] = None, viewer
        self.server = server

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The server process (shared by the outputs on this host and port), once it listens."""
        return self.server.process

    @property
    def restarts(self) -> int:
        """How often the server process died and was started again."""
        return self.server.restarts

    def write(self, image: np.ndarray, capture_ts: float | None = None, present_ts: float | None = None) -> None:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputShapeError(f"RTSP output takes uint8 HxWx3 BGR frames, got {image.shape} {image.dtype}")
        # x264 would drop an odd last column or row; the pixels' shape is not stated by every GStreamer encoder
        # (openh264enc: not at all): made square
        image = to_even_sides(self.fit_to_first_size(square_pixels(image, self.sample_aspect)))
        width, height = image.shape[1], image.shape[0]
        if self.server.send(self.path, (width, height, self.fps), np.ascontiguousarray(image).tobytes()):
            self.frames_written += 1

    def close(self) -> None:
        with _SERVERS_LOCK:
            if self.server.mounts.pop(self.path, "closed") == "closed":
                return
            self.server.viewers.pop(self.path, None)
            if not self.server.mounts:  # the last output on this port
                self.server.stop()
                _SERVERS.pop((self.server.host, self.server.port), None)
