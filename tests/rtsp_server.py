"""A real RTSP server for the tests: GStreamer's gst-rtsp-server (Debian: gir1.2-gst-rtsp-server-1.0,
python3-gi, gstreamer1.0-plugins-good/bad), serving an H.264 clip on loopback, optionally behind
basic authentication. Run with the system Python that has ``gi``:

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --path /live --clip clip.mp4 [--user u --password p]

Prints ``ready`` once it listens; stops on SIGTERM/SIGKILL.
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/live")
    parser.add_argument("--clip", required=True)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--mpeg4", action="store_true", help="the clip is MPEG-4 Part 2 (mp4v), not H.264")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer.new()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory.new()
    payload = "mpeg4videoparse ! rtpmp4vpay name=pay0 pt=96 config-interval=1" if args.mpeg4 else \
        "h264parse ! rtph264pay name=pay0 pt=96 config-interval=1"
    factory.set_launch(f'( filesrc location="{args.clip}" ! qtdemux ! {payload} )')
    factory.set_shared(True)
    if args.user:
        auth = GstRtspServer.RTSPAuth.new()
        token = GstRtspServer.RTSPToken.new()
        token.set_string("media.factory.role", args.user)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        factory.add_role_from_structure(Gst.Structure.new_from_string(
            f"{args.user}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"))
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{args.port}")
    loop = GLib.MainLoop()
    signal.signal(signal.SIGTERM, lambda *_: loop.quit())
    print("ready", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
