"""The RTSP output's server process: GStreamer's RTSP server encoding raw BGR frames from stdin to H.264.

Started and supervised by :class:`realtime.outputs.rtsp.RtspSink` (one process per port; the outputs of a
run on that port are its mounts); runs under a Python that has GStreamer's introspection bindings
(Debian: python3-gi, gir1.2-gst-rtsp-server-1.0, and x264enc from gstreamer1.0-plugins-ugly or
openh264enc from gstreamer1.0-plugins-bad):

    /usr/bin/python3 rtsp_serve.py --host 127.0.0.1 --port 8554

stdin carries messages, each a text line and for frames a payload:

    mount /masked W H FPS [VIEWER]\\n
                                    serve a stream of WxH BGR frames at rtsp://HOST:PORT/masked; VIEWER,
                                    base64 of ``user:password``: only to clients that give them (Basic auth)
    frame /masked\\n + W*H*3 bytes  the next frame of that stream

Every client of a mount gets its newest frames (one shared, live encode). Prints ``ready`` once it
listens; exits when stdin closes.
"""

import argparse
import base64
import sys
import threading
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def encoder() -> str:
    if Gst.ElementFactory.find("x264enc"):
        return "x264enc tune=zerolatency speed-preset=ultrafast bitrate=4000 key-int-max=30"
    if Gst.ElementFactory.find("openh264enc"):
        return "openh264enc complexity=low rate-control=bitrate bitrate=4000000 gop-size=30"
    sys.exit("no H.264 encoder in GStreamer: install gstreamer1.0-plugins-ugly (x264enc) or -bad (openh264enc)")


class Access:
    """Who may watch each mount. Once a mount has a viewer's credentials, the server asks every client for a user
    and password (Basic auth): that mount's viewer gets it; mounts without credentials stay open to anyone."""

    ANYONE = "anyone"

    def __init__(self, server) -> None:
        self.server, self.viewers = server, 0
        self.auth: Any = None  # a GstRtspServer.RTSPAuth once a mount has a viewer

    def allow(self, factory, viewer: str | None) -> None:
        role = self.ANYONE
        allow = "media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        if viewer:
            user, _, password = base64.b64decode(viewer).decode().partition(":")
            if self.auth is None:
                self.auth = GstRtspServer.RTSPAuth()
                anyone = GstRtspServer.RTSPToken()
                anyone.set_string("media.factory.role", self.ANYONE)
                self.auth.set_default_token(anyone)  # a client that gives no credentials
                self.server.set_auth(self.auth)
            self.viewers += 1
            role = f"viewer{self.viewers}"
            token = GstRtspServer.RTSPToken()
            token.set_string("media.factory.role", role)
            self.auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
            # anyone may find it but not play it: the server answers 401, which asks the client for credentials
            # (without access at all it answers 404, and clients never send them)
            factory.add_role_from_structure(Gst.Structure.from_string(
                f"{self.ANYONE}, media.factory.access=(boolean)true, media.factory.construct=(boolean)false")[0])
        factory.add_role_from_structure(Gst.Structure.from_string(f"{role}, {allow}")[0])


class Mount:
    """One served stream: its frame size and the app sources of the clients' shared media."""

    def __init__(self, server, access: Access, path: str, width: int, height: int, fps: int,
                 viewer: str | None) -> None:
        self.frame_bytes = width * height * 3
        self.sources: list = []
        self.lock = threading.Lock()
        caps = f"video/x-raw,format=BGR,width={width},height={height},framerate={fps}/1"
        factory = GstRtspServer.RTSPMediaFactory.new()
        factory.set_launch(f"( appsrc name=src is-live=true format=time do-timestamp=true caps={caps} "
                           f"! videoconvert ! video/x-raw,format=I420 ! {encoder()} "
                           "! rtph264pay name=pay0 pt=96 config-interval=1 )")
        factory.set_shared(True)
        access.allow(factory, viewer)
        factory.connect("media-configure", self.configured)
        server.get_mount_points().add_factory(path, factory)

    def configured(self, _factory, media) -> None:
        appsrc = media.get_element().get_by_name_recurse_up("src")
        with self.lock:
            self.sources.append(appsrc)
        media.connect("unprepared", lambda *_: self.forget(appsrc))

    def forget(self, appsrc) -> None:
        with self.lock:
            if appsrc in self.sources:
                self.sources.remove(appsrc)

    def push(self, data: bytes) -> None:
        with self.lock:
            targets = list(self.sources)
        for appsrc in targets:
            appsrc.emit("push-buffer", Gst.Buffer.new_wrapped(data))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer.new()
    server.set_address(args.host)
    server.set_service(str(args.port))
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on {args.host}:{args.port} (port in use, or no such address here); "
                 "choose another host or port")
    loop = GLib.MainLoop()
    mounts: dict = {}
    access = Access(server)

    def pump():
        stdin = sys.stdin.buffer
        while True:
            words = stdin.readline().decode(errors="replace").split()
            if words[:1] == ["mount"] and len(words) in (5, 6):
                width, height, fps = (int(w) for w in words[2:5])
                mounts[words[1]] = Mount(server, access, words[1], width, height, fps, (words[5:] or [None])[0])
            elif words[:1] == ["frame"] and len(words) == 2 and words[1] in mounts:
                mount = mounts[words[1]]
                data = stdin.read(mount.frame_bytes)
                if len(data) < mount.frame_bytes:
                    break
                mount.push(data)
            else:
                break  # stdin closed (or a message this script does not know)
        GLib.idle_add(loop.quit)

    threading.Thread(target=pump, daemon=True).start()
    print("ready", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
