"""The HTTPS file server the example tests start in a process of its own (this project's
words): the example's build directory, served with its test_certs pair, on 0.0.0.0."""

from __future__ import annotations

import http.server
import os
import ssl


def serve(directory: str, port: int, certs: str) -> None:
    os.chdir(directory)
    httpd = http.server.HTTPServer(("0.0.0.0", port), http.server.SimpleHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(certs, "server_cert.pem"), os.path.join(certs, "server_key.pem"))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.serve_forever()
