#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# An HTTP proxy for the OCI tests that breaks every blob download the first
# time: it sends the headers and half the body, then drops the connection.
# Later requests (a client resuming with Range) pass through.  127.0.0.1 only.
#   cutting_proxy.py UPSTREAM_PORT PORTFILE LOGFILE
import http.client, http.server, os, sys

upstream = int(sys.argv[1])
cut = set()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        conn = http.client.HTTPConnection("127.0.0.1", upstream)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        conn.request("GET", self.path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        breaking = "/blobs/" in self.path and resp.status == 200 and self.path not in cut \
            and len(body) > 1024
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if breaking:
            cut.add(self.path)
            with open(sys.argv[3], "a") as log:
                log.write(self.path + "\n")
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
server.serve_forever()
