"""The RTSP output's server process: GStreamer's RTSP server encoding raw BGR frames from stdin to H.264.

Started and supervised by :class:`realtime.outputs.rtsp.RtspSink`; runs under a Python that has
GStreamer's introspection bindings (Debian: python3-gi, gir1.2-gst-rtsp-server-1.0, and x264enc from
gstreamer1.0-plugins-ugly or openh264enc from gstreamer1.0-plugins-bad):

    /usr/bin/python3 rtsp_serve.py --host 127.0.0.1 --port 8554 --path /masked --width W --height H --fps F

stdin carries W*H*3 bytes per frame. Every client gets the newest frames (one shared, live encode).
Prints ``ready`` once it listens; exits when stdin closes.
"""

import argparse
import sys
import threading

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/masked")
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--fps", type=int, default=25)
    args = parser.parse_args()
    Gst.init(None)
    frame_bytes = args.width * args.height * 3
    sources = []
    lock = threading.Lock()
    caps = f"video/x-raw,format=BGR,width={args.width},height={args.height},framerate={args.fps}/1"
    factory = GstRtspServer.RTSPMediaFactory.new()
    factory.set_launch(f"( appsrc name=src is-live=true format=time do-timestamp=true caps={caps} "
                       f"! videoconvert ! video/x-raw,format=I420 ! {encoder()} "
                       "! rtph264pay name=pay0 pt=96 config-interval=1 )")
    factory.set_shared(True)

    def configured(_factory, media):
        appsrc = media.get_element().get_by_name_recurse_up("src")
        with lock:
            sources.append(appsrc)
        media.connect("unprepared", lambda *_: sources.remove(appsrc) if appsrc in sources else None)

    factory.connect("media-configure", configured)
    server = GstRtspServer.RTSPServer.new()
    server.set_address(args.host)
    server.set_service(str(args.port))
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on {args.host}:{args.port}")
    loop = GLib.MainLoop()

    def pump():
        stdin = sys.stdin.buffer
        while True:
            data = stdin.read(frame_bytes)
            if len(data) < frame_bytes:
                break
            with lock:
                targets = list(sources)
            for appsrc in targets:
                appsrc.emit("push-buffer", Gst.Buffer.new_wrapped(data))
        GLib.idle_add(loop.quit)

    threading.Thread(target=pump, daemon=True).start()
    print("ready", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
