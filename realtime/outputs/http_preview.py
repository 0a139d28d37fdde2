"""``http://HOST:PORT/[PATH/]`` — a browser preview: the masked stream as MJPEG and a small page showing it.

Endpoints, under the sink's path: ``/`` (the page, with live fps and latency), ``/stream.mjpg``
(multipart MJPEG, the newest frame to every client, no backlog), ``/frame.jpg`` (the newest frame),
``/stats.json``. Previews on one host and port share one server, each at its own path (several streams:
``http://127.0.0.1:8080/cam{stream}/``); the server's ``/`` then shows all of them side by side. It binds
to the host in the URL — 127.0.0.1 unless told otherwise (``http://0.0.0.0:8080/`` serves the network).
``http://viewer:secret@0.0.0.0:8080/`` serves that path only to a browser that gives those credentials (Basic
auth: the browser asks for them; they are ``***`` in every message).

Example:
    >>> with HttpPreviewSink("127.0.0.1", 0) as sink:  # doctest: +SKIP
    ...     sink.write(frame_bgr)
    ...     print(sink.url)
"""

from __future__ import annotations

import base64
import functools
import hmac
import http.server
import json
import threading
import time
from typing import Any

import cv2
import numpy as np

from engines.errors import OutputError
from realtime.outputs.base import Sink, square_pixels

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>realtime-mask preview</title>
<style>body{margin:0;background:#111;color:#ddd;font:14px system-ui,sans-serif}
#bar{padding:6px 10px}img{display:block;width:min(100vw,960px);max-height:calc(100vh - 32px);object-fit:contain}</style></head>
<body><div id="bar">realtime-mask &middot; <span id="fps">-</span> fps &middot; latency
<span id="latency">-</span> ms &middot; <span id="frames">0</span> frames</div>
<img id="stream" src="stream.mjpg" alt="masked stream">
<script>
async function tick() {
  try {
    const s = await (await fetch("stats.json", {cache: "no-store"})).json();
    document.getElementById("fps").textContent = s.fps.toFixed(1);
    document.getElementById("latency").textContent = s.latency_ms === null ? "-" : s.latency_ms.toFixed(0);
    document.getElementById("frames").textContent = s.frames;
  } catch (e) {}
}
setInterval(tick, 500); tick();
</script></body></html>
"""

GRID = """<!doctype html>
<html><head><meta charset="utf-8"><title>realtime-mask preview</title>
<style>body{{margin:0;background:#111;color:#ddd;font:14px system-ui,sans-serif;display:flex;flex-wrap:wrap}}
figure{{margin:4px}}img{{display:block;width:min(48vw,640px)}}a{{color:#ddd}}</style></head>
<body>{figures}</body></html>
"""


class _PreviewServer:
    """One HTTP server on a host and port; each preview sink is served under its own path."""

    def __init__(self, host: str, port: int) -> None:
        self.sinks: dict[str, HttpPreviewSink] = {}  # path ("/", "/cam0/") -> sink
        previews = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, body: bytes, content_type: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                for prefix, sink in sorted(previews.sinks.items(), key=lambda item: -len(item[0])):
                    if path + "/" == prefix:  # /cam0 -> /cam0/, where the page's relative links work
                        self.send_response(301)
                        self.send_header("Location", prefix)
                        self.end_headers()
                        return
                    if path.startswith(prefix):
                        if sink.admits(self.headers.get("Authorization")):
                            self._serve(sink, path[len(prefix):])
                        else:  # asks the browser for the viewer's user and password
                            self.send_response(401)
                            self.send_header("WWW-Authenticate", 'Basic realm="realtime-mask", charset="UTF-8"')
                            self.send_header("Content-Length", "0")
                            self.end_headers()
                        return
                if path in ("/", "/index.html"):  # no preview at the root: all of them side by side
                    figures = "".join(f'<figure><a href="{p}"><img src="{p}stream.mjpg" alt="{p}"></a>'
                                      f"<figcaption>{p}</figcaption></figure>" for p in sorted(previews.sinks))
                    self._send(GRID.format(figures=figures).encode(), "text/html; charset=utf-8")
                else:
                    self.send_error(404)

            def _serve(self, sink: HttpPreviewSink, rest: str) -> None:
                if rest in ("", "index.html"):
                    self._send(PAGE.encode(), "text/html; charset=utf-8")
                elif rest == "stats.json":
                    self._send(json.dumps(sink.stats()).encode(), "application/json")
                elif rest == "frame.jpg" and sink._jpeg is not None:
                    self._send(sink._jpeg, "image/jpeg")
                elif rest == "stream.mjpg":
                    self._stream(sink)
                else:
                    self.send_error(404)

            def _stream(self, sink: HttpPreviewSink) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                seen = -1
                try:
                    while not sink._closed:
                        with sink._condition:
                            sink._condition.wait_for(functools.partial(sink._changed, seen), timeout=1.0)
                            jpeg, seen = sink._jpeg, sink._sequence
                        if jpeg is None or sink._closed:
                            continue
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

        try:
            self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise OutputError(f"cannot serve the preview on {host}:{port}: {exc.strerror}; "
                              "choose another host or port") from exc
        self.server.daemon_threads = True
        self.host, self.port = str(self.server.server_address[0]), int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="http-preview", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


_SERVERS: dict[tuple[str, int], _PreviewServer] = {}  # the open ones, by the host and port asked for
_SERVERS_LOCK = threading.Lock()


class HttpPreviewSink(Sink):
    """Serves the newest frame as MJPEG to any number of browsers.

    Args:
        host: address to bind (default loopback).
        port: TCP port (0: any free port; see :attr:`url`).
        quality: JPEG quality 1-100.
        path: where on the server (``/``, or e.g. ``/cam0/`` beside other previews on the same port).
        viewer: ``(user, password)``: served only to a browser that gives them (Basic auth); None: to anyone.
    """

    accepts_alpha = False

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, quality: int = 80, path: str = "/",
                 viewer: tuple[str, str] | None = None) -> None:
        self.quality = quality
        self._authorization = None if viewer is None else "Basic " + base64.b64encode(":".join(viewer).encode()).decode()
        self.frames_written = 0
        self._jpeg: bytes | None = None
        self._sequence = 0
        self._condition = threading.Condition()
        self._times: list[float] = []
        self._latency_ms: float | None = None
        self._closed = False
        self.path = "/" + path.strip("/") + "/" if path.strip("/") else "/"
        with _SERVERS_LOCK:
            server = _SERVERS.get((host, port)) if port else None
            if server is None:
                server = _PreviewServer(host, port)
                _SERVERS[(host, port or server.port)] = server
            if self.path in server.sinks:
                raise OutputError(f"two previews at http://{server.host}:{server.port}{self.path}: give each stream "
                                  "its own path (e.g. http://127.0.0.1:8080/cam{stream}/)")
            server.sinks[self.path] = self
        self.server = server
        self.url = f"http://{server.host}:{server.port}{self.path}"
        self.uri = self.url if viewer is None else f"http://***@{server.host}:{server.port}{self.path}"

    def admits(self, authorization: str | None) -> bool:
        """Whether a request with this ``Authorization`` header may see this preview."""
        if self._authorization is None:
            return True
        return authorization is not None and hmac.compare_digest(authorization.encode(), self._authorization.encode())

    def _changed(self, seen: int) -> bool:
        return self._sequence != seen or self._closed

    def stats(self) -> dict[str, Any]:
        """Frames served, fps over the last second or so, and the newest frame's latency."""
        now = time.monotonic()
        recent = [t for t in self._times if now - t <= 2.0]
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        return {"frames": self.frames_written, "fps": fps, "latency_ms": self._latency_ms}

    def write(self, image: np.ndarray, capture_ts: float | None = None, present_ts: float | None = None) -> None:
        image = square_pixels(image, self.sample_aspect)  # a browser shows a JPEG's pixels square
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise OutputError("cannot JPEG-encode a frame for the preview")
        now = time.monotonic()
        with self._condition:
            self._jpeg = jpeg.tobytes()
            self._sequence += 1
            self._condition.notify_all()
        self._times = [t for t in self._times[-120:] if now - t <= 2.0] + [now]
        if capture_ts is not None:
            self._latency_ms = (now - capture_ts) * 1000.0
        self.frames_written += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._condition:
            self._condition.notify_all()
        with _SERVERS_LOCK:
            self.server.sinks.pop(self.path, None)
            if not self.server.sinks:  # the last preview on this port
                self.server.stop()
                for key in [key for key, server in _SERVERS.items() if server is self.server]:
                    del _SERVERS[key]
