"""milterpeer.py - a small MTA-side milter client for tests of Porter's milter listener: it
negotiates, sends commands and reads replies over a real socket, and can misbehave on purpose
(garbage, huge lengths, stalls). The wire format is the Sendmail milter protocol version 6:
a 4-byte network-order length covering the command byte and the data, then the command byte.
"""
import socket
import struct
import time

SMFIF_ALL = 0x1FF
SMFIP_ALL = 0x001FFFFF  # every protocol bit of version 6 (Postfix offers these)


def frame(command, data=b""):
    return struct.pack("!I", len(data) + 1) + command + data


def strings(*values):
    return b"".join(v.encode() + b"\0" for v in values)


class ListenerPeer:
    """One raw connection to a Porter listener at ("127.0.0.1", port) or a unix socket path
    (the milter listener here, the policy listener in policy_listener.test)."""

    def __init__(self, address, timeout=10):
        if isinstance(address, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = ("127.0.0.1", address)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self.buffer = b""

    def closed(self, timeout=10):
        """True when the listener closed the connection within timeout."""
        deadline = time.time() + timeout
        self.sock.settimeout(0.5)
        while time.time() < deadline:
            try:
                if self.sock.recv(65536) == b"":
                    return True
            except socket.timeout:
                continue
            except ConnectionResetError:
                return True
        return False

    def close(self):
        self.sock.close()


class MilterPeer(ListenerPeer):
    """One connection to a milter listener."""

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """(command byte, data) of the next reply frame, or (None, b"") at the end."""
        while len(self.buffer) < 4 or len(self.buffer) < 4 + struct.unpack("!I", self.buffer[:4])[0]:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                chunk = b""
            if not chunk:
                return (None, b"")
            self.buffer += chunk
        length = struct.unpack("!I", self.buffer[:4])[0]
        body, self.buffer = self.buffer[4:4 + length], self.buffer[4 + length:]
        return (body[:1], body[1:])

    def final(self):
        """Replies up to the first one that is not a modification or progress: (final, edits)."""
        edits = []
        while True:
            command, data = self.reply()
            if command in (b"+", b"-", b"2", b"e", b"h", b"i", b"m", b"b", b"q", b"p"):
                edits.append((command, data))
                continue
            return (command, data), edits

    def negotiate(self, actions=SMFIF_ALL, protocol=SMFIP_ALL):
        self.send(frame(b"O", struct.pack("!III", 6, actions, protocol)))
        command, data = self.reply()
        if command != b"O":
            return None
        return struct.unpack("!III", data[:12])
