#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# A minimal token server for docker-registry's "token" auth, for the OCI
# tests: it checks Basic credentials and signs a JWT (RS256, x5c) granting
# the requested scopes.  Listens on 127.0.0.1 only; writes its port to a file.
#   token_server.py KEY.pem CERT.pem PORTFILE USER:PASSWORD [--tls CERT KEY]
#                   [--delay-after-first SECONDS]
# --tls serves https; --delay-after-first answers every request after the
# first that late (a slow token refresh, for the tests of what happens
# meanwhile).
import base64, http.server, json, os, ssl, sys, threading, time
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
cert = x509.load_pem_x509_certificate(open(sys.argv[2], "rb").read())
want = "Basic " + base64.b64encode(sys.argv[4].encode()).decode()
opts = sys.argv[5:]
tls = opts[opts.index("--tls") + 1:opts.index("--tls") + 3] if "--tls" in opts else None
delay = float(opts[opts.index("--delay-after-first") + 1]) if "--delay-after-first" in opts else 0
served = [0]
lock = threading.Lock()


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        with lock:
            served[0] += 1
            late = served[0] > 1
        if late and delay:
            time.sleep(delay)
        if self.headers.get("Authorization", "") != want:
            self.send_response(401)
            self.end_headers()
            return
        q = parse_qs(urlparse(self.path).query)
        access = []
        for scope in q.get("scope", []):
            typ, name, actions = scope.split(":")
            access.append({"type": typ, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256",
                  "x5c": [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": "test-issuer", "sub": sys.argv[4].split(":")[0],
                  "aud": q.get("service", [""])[0], "exp": now + 600, "nbf": now - 10,
                  "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
        sig = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        token = signing + "." + b64(sig)
        body = json.dumps({"token": token, "expires_in": 600}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
if tls:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls[0], tls[1])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
with open(sys.argv[3] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(sys.argv[3] + ".tmp", sys.argv[3])
server.serve_forever()
