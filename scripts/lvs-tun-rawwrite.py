#!/usr/bin/env python3
"""Writes random bytes into a tun/tap device through a packet socket (the kernel hands them to
the device's reader as if they were packets): lvs-tun must drop them and keep running."""
import os
import random
import socket
import sys

dev, count = sys.argv[1], int(sys.argv[2])
# "eth": the device is a tap; half the frames carry an IPv4 / IPv6 ethertype.
eth = len(sys.argv) > 4 and sys.argv[4] == "eth"
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
sent = 0
for i in range(count):
    n = rng.randint(1, 1500)
    b = bytearray(os.urandom(n))
    # Half of them look like IPv4 / IPv6 headers so they get past the first check.
    if i % 2 == 0 and n > 0:
        b[0] = rng.choice([0x45, 0x46, 0x4F, 0x60, 0x65])
    if eth and i % 2 == 0:
        b = bytearray(os.urandom(12)) + rng.choice([b"\x08\x00", b"\x86\xdd"]) + b
    try:
        s.send(bytes(b))
        sent += 1
    except OSError:
        pass
print(sent)
