#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# An HTTP proxy in front of a registry for the OCI tests.  127.0.0.1 only.
#   cutting_proxy.py UPSTREAM_PORT PORTFILE LOGFILE [options]
# By default it breaks every blob download the first time: it sends the
# headers and half the body, then drops the connection; later requests (a
# client resuming with Range) pass through.  Options:
#   --no-cut                   pass blobs through whole
#   --min-cut BYTES            cut only blobs larger than this (default 1024)
#   --tls CERT KEY             serve https
#   --delay-other-cuts SECS    cut every blob but the first only after SECS
#   --unauthorize-first-range CHALLENGE
#                              answer the first Range request with a 401 (an
#                              expired token) carrying this WWW-Authenticate
#   --cdn-host HOST            answer blob requests with a redirect to
#                              HOST:<this port>/cdn/..., which serves the blob
#                              (a cross-host redirect, as to a CDN)
#   --downgrade                answer blob requests with a redirect to the
#                              upstream over plain http
# LOGFILE gets a line per request: "<path> auth=<token hash or none> <status>"
# and "cut <path>" per broken download.
import hashlib, http.client, http.server, os, ssl, sys, threading, time

upstream = int(sys.argv[1])
opts = sys.argv[4:]


def opt(name, n=1):
    if name not in opts:
        return None
    i = opts.index(name)
    return opts[i + 1:i + 1 + n] if n > 1 else opts[i + 1]


cutting = "--no-cut" not in opts
min_cut = int(opt("--min-cut") or 1024)
tls = opt("--tls", 2)
delay_other = float(opt("--delay-other-cuts") or 0)
unauthorize = opt("--unauthorize-first-range")
cdn_host = opt("--cdn-host")
downgrade = "--downgrade" in opts
lock = threading.Lock()
cut = set()
state = {"first_cut": None, "range_refused": False}
cdn = {}


def log(line):
    with lock, open(sys.argv[3], "a") as f:
        f.write(line + "\n")


def auth_of(headers):
    a = headers.get("Authorization")
    return hashlib.sha256(a.encode()).hexdigest()[:12] if a else "none"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        blob = "/blobs/" in self.path
        if self.path.startswith("/cdn/"):
            log("%s auth=%s cdn" % (self.path, auth_of(self.headers)))
            body = cdn.get(self.path[5:], b"")
            return self.reply(200 if body else 404, [], body)
        if blob and downgrade:
            log("%s auth=%s 307" % (self.path, auth_of(self.headers)))
            return self.reply(307, [("Location", "http://127.0.0.1:%d%s" % (upstream, self.path))],
                              b"")
        if blob and unauthorize and "Range" in self.headers:
            with lock:
                refuse = not state["range_refused"]
                state["range_refused"] = True
            if refuse:
                log("%s auth=%s 401" % (self.path, auth_of(self.headers)))
                return self.reply(401, [("WWW-Authenticate", unauthorize),
                                        ("Content-Type", "application/json")],
                                  b'{"errors":[{"code":"UNAUTHORIZED","message":"expired"}]}')
        conn = http.client.HTTPConnection("127.0.0.1", upstream)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        conn.request("GET", self.path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        log("%s auth=%s %d" % (self.path, auth_of(self.headers), resp.status))
        if blob and cdn_host and resp.status == 200:
            key = hashlib.sha256(self.path.encode()).hexdigest()
            cdn[key] = body
            scheme = "https" if tls else "http"
            where = "%s://%s:%d/cdn/%s" % (scheme, cdn_host, self.server.server_address[1], key)
            return self.reply(307, [("Location", where)], b"")
        with lock:
            breaking = cutting and blob and resp.status == 200 and self.path not in cut \
                and len(body) > min_cut
            if breaking:
                cut.add(self.path)
                first = state["first_cut"] is None
                if first:
                    state["first_cut"] = self.path
        if not breaking:
            return self.reply(resp.status, resp.getheaders(), body)
        if not first and delay_other:
            time.sleep(delay_other)
        log("cut " + self.path)
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(2)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
if tls:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls[0], tls[1])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
server.serve_forever()
