"""Device control (2016 9.3, A.2.3, A.3): PTZ moves and stops, presets and the home position as DeviceControl
MESSAGEs.

PTZ commands use the standard's 8-byte encoding (A.3), written as 16 hex digits in ``<PTZCmd>``:

====  ============================================================================================
byte  meaning
====  ============================================================================================
1     0xA5
2     version (high nibble, 0) and check of bytes 1-2: ``(0xA + 0x5 + version) % 16`` → ``0x0F``
3     address, low 8 bits
4     instruction: bit 5 zoom out, bit 4 zoom in, bit 3 up, bit 2 down, bit 1 left, bit 0 right (0 = stop);
      0x81 set preset, 0x82 call preset, 0x83 delete preset
5     data 1: pan speed (moves) / 0 (presets)
6     data 2: tilt speed (moves) / preset number (presets)
7     zoom speed (high nibble) and address, high 4 bits (low nibble)
8     checksum: sum of bytes 1-7, modulo 256
====  ============================================================================================

``A50F0100000000B5`` is "stop" (the example wvp-GB28181-pro and most devices use). The home position is its
own element (``<HomePosition><Enabled/><ResetTime/><PresetIndex/></HomePosition>``). A device answers a
DeviceControl with 200 only; there is no response document for PTZ.
"""

from __future__ import annotations

from workers.ingest.gb28181 import manscdp

PRESET_SET, PRESET_CALL, PRESET_DELETE = 0x81, 0x82, 0x83


def ptz_bytes(instruction: int, data1: int = 0, data2: int = 0, zoom_speed: int = 0, address: int = 1) -> bytes:
    """The 8-byte PTZ command."""
    for name, value, top in (("instruction", instruction, 0xFF), ("data1", data1, 0xFF), ("data2", data2, 0xFF),
                             ("zoom_speed", zoom_speed, 0x0F), ("address", address, 0xFFF)):
        if not 0 <= value <= top:
            msg = f"PTZ {name} {value} out of range 0..{top}"
            raise ValueError(msg)
    head = [0xA5, 0x0F, address & 0xFF, instruction, data1, data2, (zoom_speed << 4) | (address >> 8)]
    return bytes([*head, sum(head) % 256])


def move(pan: int, tilt: int, zoom: int, speed: int) -> bytes:
    """Pan (-1 left, 1 right), tilt (-1 down, 1 up), zoom (-1 out, 1 in) at ``speed`` (1-255); all 0 = stop."""
    instruction = ((0x01 if pan > 0 else 0x02 if pan < 0 else 0) | (0x08 if tilt > 0 else 0x04 if tilt < 0 else 0)
                   | (0x10 if zoom > 0 else 0x20 if zoom < 0 else 0))
    return ptz_bytes(instruction, speed if pan else 0, speed if tilt else 0, (speed >> 4) if zoom else 0)


def stop() -> bytes:
    return ptz_bytes(0)


def preset(op: int, number: int) -> bytes:
    if not 1 <= number <= 255:
        msg = f"preset {number} out of range 1..255"
        raise ValueError(msg)
    return ptz_bytes(op, 0, number)


def ptz_control(sn: int, channel_id: str, command: bytes) -> bytes:
    return manscdp.document("Control", "DeviceControl", sn, channel_id,
                            [("PTZCmd", command.hex().upper())],
                            xml_fragments="<Info>\r\n<ControlPriority>5</ControlPriority>\r\n</Info>\r\n")


def home_position(sn: int, channel_id: str, *, enabled: bool, reset_s: int, preset_index: int) -> bytes:
    inner = (f"<HomePosition>\r\n<Enabled>{1 if enabled else 0}</Enabled>\r\n<ResetTime>{reset_s}</ResetTime>\r\n"
             f"<PresetIndex>{preset_index}</PresetIndex>\r\n</HomePosition>\r\n")
    return manscdp.document("Control", "DeviceControl", sn, channel_id, xml_fragments=inner)
