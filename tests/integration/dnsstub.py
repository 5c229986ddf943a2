#!/usr/bin/env python3
"""A tiny UDP DNS server for the integration tests (stdlib only), standing in for an upstream.

    python3 dnsstub.py --listen 127.0.0.1 --port N --answer NAME=IP [--answer NAME=IP ...]

Answers A queries for the given names (case-insensitive, trailing dot optional) with their IPs;
NXDOMAIN for other names, an empty NOERROR for other types of known names. Prints "ready" once
bound, then each query's name (lower-cased, without the trailing dot), flushed.
"""
import argparse
import socket
import struct
import sys


def parse_question(msg):
    """(name, qtype, offset after the question) of the first question; raises ValueError."""
    if len(msg) < 12:
        raise ValueError("short")
    flags, qdcount = struct.unpack("!HH", msg[2:6])
    if flags & 0x8000 or qdcount < 1:
        raise ValueError("not a query")
    labels, pos = [], 12
    while True:
        if pos >= len(msg):
            raise ValueError("truncated name")
        n = msg[pos]
        if n == 0:
            pos += 1
            break
        if n > 63 or pos + 1 + n > len(msg):
            raise ValueError("bad label")  # also refuses compression: queries do not need it
        labels.append(msg[pos + 1:pos + 1 + n].decode("ascii", "replace").lower())
        pos += 1 + n
    if pos + 4 > len(msg):
        raise ValueError("truncated question")
    qtype, _ = struct.unpack("!HH", msg[pos:pos + 4])
    return ".".join(labels), qtype, pos + 4


def respond(msg, answers):
    name, qtype, end = parse_question(msg)
    print(name, flush=True)
    ips = answers.get(name)
    rcode = 0 if ips is not None else 3
    records = b""
    count = 0
    if ips and qtype == 1:
        for ip in ips:
            records += struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(ip)
            count += 1
    rd = struct.unpack("!H", msg[2:4])[0] & 0x0100
    header = msg[:2] + struct.pack("!HHHHH", 0x8480 | rd | rcode, 1, count, 0, 0)
    return header + msg[12:end] + records


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--answer", action="append", default=[], metavar="NAME=IP")
    args = ap.parse_args()
    answers = {}
    for spec in args.answer:
        name, _, ip = spec.partition("=")
        socket.inet_aton(ip)  # validates
        answers.setdefault(name.lower().rstrip("."), []).append(ip)
    family = socket.AF_INET6 if ":" in args.listen else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((args.listen, args.port))
    print("ready", flush=True)
    while True:
        msg, peer = sock.recvfrom(4096)
        try:
            sock.sendto(respond(msg, answers), peer)
        except (ValueError, OSError) as e:
            print(f"ignored: {e}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
