"""What the inference server decodes: JPEG or PNG only, with the width and height read from the file's header
before any pixel is decoded. A 1.2 MB PNG can declare 20000x20000 pixels (1.2 GB decoded, 3 GB in OpenCV's
hands); the header says so in its first 24 bytes. Decoded pixels in flight across all requests are bounded too
(`PixelBudget`), so many honest large images at once cannot add up to what one bomb would."""

from __future__ import annotations

import struct
import threading
import time

import cv2
import numpy as np

from cloud.exceptions import RequestError

MAX_IMAGE_PIXELS = 4096 * 4096  # a 4K frame (3840x2160) fits; 48 MB as BGR
PIXEL_BUDGET = 4 * MAX_IMAGE_PIXELS  # decoded pixels held by all requests at once: ~200 MB as BGR
_PNG = b"\x89PNG\r\n\x1a\n"
_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT, JPG, DAC)


def image_size(data: bytes, what: str) -> tuple[str, int, int]:
    """(format, width, height) from the header; 415 for anything not JPEG or PNG, 400 for a broken header."""
    if data.startswith(_PNG):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise RequestError(400, f"{what} is not a decodable image: a PNG without its IHDR header")
        width, height = struct.unpack(">II", data[16:24])
        return "png", width, height
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 4 <= len(data):
            if data[i] != 0xFF:
                raise RequestError(400, f"{what} is not a decodable image: a JPEG with a broken marker at byte {i}")
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
                i += 2
                continue
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            if marker in _SOF:
                if i + 9 > len(data):
                    break
                height, width = struct.unpack(">HH", data[i + 5:i + 9])
                return "jpeg", width, height
            if marker in (0xD9, 0xDA) or length < 2:  # end of image, or scan data before any frame header
                break
            i += 2 + length
        raise RequestError(400, f"{what} is not a decodable image: a JPEG without a frame header (SOF) before "
                                "its image data")
    raise RequestError(415, f"{what} is neither JPEG nor PNG (it starts {data[:8]!r}); only those are decoded")


def check_size(data: bytes, what: str, max_pixels: int = MAX_IMAGE_PIXELS) -> int:
    """The image's pixel count, refused (413) above `max_pixels` or under 8x8 before it is decoded."""
    kind, width, height = image_size(data, what)
    if width * height > max_pixels:
        raise RequestError(413, f"{what} is a {width}x{height} {kind.upper()} ({width * height} pixels), over the "
                                f"limit of {max_pixels} pixels; send it smaller", "ValidationError")
    if min(width, height) < 8:
        raise RequestError(400, f"{what} is {width}x{height} px; at least 8x8 is needed")
    return width * height


def decode_image(data: bytes, what: str) -> np.ndarray:
    """Decode an image whose size `check_size` accepted."""
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if frame is None:
        raise RequestError(400, f"{what} ({len(data)} bytes) is not a decodable image; send JPEG or PNG bytes")
    if min(frame.shape[:2]) < 8:
        raise RequestError(400, f"{what} is {frame.shape[1]}x{frame.shape[0]} px; at least 8x8 is needed")
    return frame


class PixelBudget:
    """Decoded pixels in flight across requests: a request waits for its share, or is answered 503."""

    def __init__(self, total: int = PIXEL_BUDGET):
        self.total, self._used = total, 0
        self._cond = threading.Condition()

    def acquire(self, pixels: int, timeout_s: float) -> None:
        if pixels > self.total:
            raise RequestError(413, f"the request holds {pixels} pixels, over the server's budget of {self.total}; "
                                    "split it into smaller requests", "ValidationError")
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._used + pixels > self.total:
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    raise RequestError(503, "the server is decoding as many pixels as it may; retry shortly")
            self._used += pixels

    def release(self, pixels: int) -> None:
        with self._cond:
            self._used -= pixels
            self._cond.notify_all()
