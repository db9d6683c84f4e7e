"""A local MJPEG-over-HTTP stream for the network-camera tests: what an IP camera's ``/video.mjpg`` serves.

    with MjpegServer(fps=20) as srv:          # http://127.0.0.1:PORT/stream.mjpg
        srv.drop()                            # every connection closed, nothing listening: the camera went away
        srv.restore()                         # listening again on the same port

Frames are JPEGs of ``frames`` (RGB arrays, cycled) or, by default, of a moving gradient with its frame number drawn
on it, sent as ``multipart/x-mixed-replace`` (FFmpeg's ``mpjpeg`` demuxer reads it).
"""

from __future__ import annotations

import http.server
import socketserver
import threading
import time

import numpy as np


def _frames(n: int = 30, size: tuple[int, int] = (160, 120)) -> list[np.ndarray]:
    import cv2

    w, h = size
    out = []
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[..., 0] = (np.arange(w) * 255 // w + i * 8) % 256
        img[..., 1] = 90
        cv2.putText(img, str(i), (8, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
        out.append(img)
    return out


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class MjpegServer:
    def __init__(self, *, fps: float = 20.0, frames: list[np.ndarray] | None = None, port: int = 0):
        import cv2

        self.fps, self.port = fps, port
        self.jpegs = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in (frames or _frames())]
        self.sent = 0
        self._alive = threading.Event()
        self._httpd: _Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def _handler(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                try:
                    while outer._alive.is_set():
                        b = outer.jpegs[i % len(outer.jpegs)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(b) + b + b"\r\n")
                        outer.sent += 1
                        i += 1
                        time.sleep(1.0 / outer.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler

    def restore(self) -> "MjpegServer":
        self._httpd = _Server(("127.0.0.1", self.port), self._handler())
        self.port = self._httpd.server_address[1]
        self._alive.set()
        threading.Thread(target=self._httpd.serve_forever, name="mjpeg-server", daemon=True).start()
        return self

    def drop(self) -> None:
        self._alive.clear()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        time.sleep(2.0 / self.fps)  # the handlers see the flag and close their connections

    def __enter__(self) -> "MjpegServer":
        return self.restore()

    def __exit__(self, *exc) -> None:
        self.drop()
