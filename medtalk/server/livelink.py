"""Live Link Face UDP output: ARKit-52 frames as the packets Epic's Live Link Face app sends to Unreal.

One packet per frame, every number big-endian (network order), as Unreal's Apple ARKit Face Support
plugin reads them (docs/server.md, "Live Link packets"):

====  ======================  ==============================================================
size  field                   value
====  ======================  ==============================================================
1     packet version          uint8, 6
4+N   device id               uint32 byte count N, then N bytes of UTF-8
4+M   subject name            uint32 byte count M, then M bytes of UTF-8 (the Live Link subject)
4     frame number            int32, frames since the start of the stream
4     sub-frame               float32, 0
4     frame rate numerator    int32 (60 for 60 fps)
4     frame rate denominator  int32 (1)
1     blend shape count       uint8, 61
244   values                  61 float32: the 52 ARKit shapes in Live Link order, then head yaw,
                              pitch, roll and the left and right eye yaw, pitch, roll (radians)
====  ======================  ==============================================================
"""

from __future__ import annotations

import socket
import struct
from fractions import Fraction
from typing import TYPE_CHECKING

from medtalk.core.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from medtalk.core.sequence import RigSequence

PACKET_VERSION = 6
BLENDSHAPE_COUNT = 61
DEFAULT_SUBJECT = "medtalk"
LOOPBACK_NAMES = ("localhost",)


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) -> (host, port), or a one-line InputError."""
    host, separator, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not separator or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InputError(f"livelink address '{text}' is not HOST:PORT: e.g. 127.0.0.1:11111")
    return host, int(port_text)


def frame_rate_fraction(fps: float) -> tuple[int, int]:
    """fps as numerator / denominator (29.97 -> 2997 / 100), as Unreal's FFrameRate holds it."""
    fraction = Fraction(fps).limit_denominator(1001)
    return fraction.numerator, fraction.denominator


def encode_packet(
    values: np.ndarray, frame_number: int, fps: float, subject: str = DEFAULT_SUBJECT, device_id: str = ""
) -> bytes:
    """One Live Link Face packet for one frame: ``values`` holds the 61 numbers (52 shapes + 9 angles)."""
    if len(values) != BLENDSHAPE_COUNT:
        raise InputError(f"a Live Link packet holds {BLENDSHAPE_COUNT} values, got {len(values)}")
    device = device_id.encode("utf-8")
    name = subject.encode("utf-8")
    numerator, denominator = frame_rate_fraction(fps)
    return b"".join(
        (
            struct.pack(">B", PACKET_VERSION),
            struct.pack(">I", len(device)),
            device,
            struct.pack(">I", len(name)),
            name,
            struct.pack(">ifiiB", frame_number, 0.0, numerator, denominator, BLENDSHAPE_COUNT),
            struct.pack(f">{BLENDSHAPE_COUNT}f", *(float(v) for v in values)),
        )
    )


def live_link_values(sequence: RigSequence) -> np.ndarray:
    """(T, 61) Live Link values of a sequence: retargeted to arkit-52, head still, eyes from eyeLook."""
    import numpy as np

    from medtalk.core.plugins import get_registry
    from medtalk.core.retarget import retarget
    from medtalk.plugins.dcc import _eye_rotations

    arkit = retarget(sequence, "arkit-52")
    rig = get_registry("rig").get("arkit-52")
    values = arkit.values.astype(np.float64)
    head = np.zeros((len(values), 3))
    eyes = np.column_stack(_eye_rotations(values, rig)) if len(values) else np.zeros((0, 6))
    return np.concatenate([values, head, eyes], axis=1).astype(np.float32)


class LiveLinkSender:
    """Sends a stream's frames to one Live Link host as UDP packets, numbering them from 0."""

    def __init__(self, address: str, subject: str = DEFAULT_SUBJECT, device_id: str = "medtalk") -> None:
        host, port = parse_address(address)
        try:
            info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        except OSError as error:
            raise InputError(
                f"livelink host '{host}' cannot be resolved ({error}): check the address"
            ) from None
        family, _, _, _, self.target = info
        self.socket = socket.socket(family, socket.SOCK_DGRAM)
        self.subject = subject
        self.device_id = device_id
        self.sent = 0

    def send(self, sequence: RigSequence, first_frame: int) -> None:
        for offset, row in enumerate(live_link_values(sequence)):
            packet = encode_packet(row, first_frame + offset, sequence.fps, self.subject, self.device_id)
            try:
                self.socket.sendto(packet, self.target)
            except OSError:
                # UDP to a listener that is not there is not the stream's failure: Unreal may start later.
                continue
            self.sent += 1

    def close(self) -> None:
        self.socket.close()
