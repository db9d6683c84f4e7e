"""A live UDP camera for tests: synthetic frames encoded as MPEG-TS (H.264 through PyAV's libx264) and sent to
``udp://127.0.0.1:PORT`` at a fixed rate, the way an IP camera or ``ffmpeg -f mpegts udp://...`` streams (no ffmpeg
binary is needed: PyAV carries FFmpeg's UDP muxer).  Each frame shows its number as a band of grey levels.

    with UdpSender(fps=25) as cam:
        LiveStream(cam.url).open()       # a frame within about a second (the sender repeats a key frame every 10)
"""

from __future__ import annotations

import socket
import threading
import time
from fractions import Fraction

import numpy as np


def _free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class UdpSender:
    def __init__(self, fps: float = 25.0, size: tuple[int, int] = (160, 120)):
        self.fps, self.size = float(fps), size
        self.port = _free_udp_port()
        self.url = f"udp://127.0.0.1:{self.port}"
        self.sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def __enter__(self) -> "UdpSender":
        self._thread = threading.Thread(target=self._run, name="udp-sender", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _frame(self, i: int) -> np.ndarray:
        w, h = self.size
        img = np.zeros((h, w, 3), np.uint8)
        img[:, :, 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
        img[: h // 4, :, 1] = (i * 7) % 256
        return img

    def _run(self) -> None:
        import av

        try:
            out = av.open(f"{self.url}?pkt_size=1316", "w", format="mpegts")
            st = out.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
            st.width, st.height, st.pix_fmt = self.size[0], self.size[1], "yuv420p"
            st.options = {"preset": "ultrafast", "tune": "zerolatency", "g": "10", "keyint_min": "10"}
            t0 = time.monotonic()
            i = 0
            while not self._stop.is_set():
                frame = av.VideoFrame.from_ndarray(self._frame(i), format="rgb24")
                frame.pts = i
                for packet in st.encode(frame):
                    out.mux(packet)
                i += 1
                self.sent = i
                delay = t0 + i / self.fps - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
            out.close()
        except BaseException as e:  # noqa: BLE001 - the test reads it
            self.error = e
