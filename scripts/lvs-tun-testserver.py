#!/usr/bin/env python3
"""Tiny HTTP server for the lvs-tun namespace tests: answers GET / with its own name,
GET /big with 20 MB (for the quiesce test), on [::]:80 (IPv4 and IPv6)."""
import http.server
import socket
import sys

NAME = sys.argv[1]
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 80
BIG = 20 * 1024 * 1024
CHUNK = b"x" * 65536


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        if self.path == "/big":
            self.send_response(200)
            self.send_header("X-Server", NAME)
            self.send_header("Content-Length", str(BIG))
            self.end_headers()
            left = BIG
            while left > 0:
                n = min(left, len(CHUNK))
                self.wfile.write(CHUNK[:n])
                left -= n
            return
        body = (NAME + "\n").encode()
        self.send_response(200)
        self.send_header("X-Server", NAME)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


Server(("::", PORT), Handler).serve_forever()
