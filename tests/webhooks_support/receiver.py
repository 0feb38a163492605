"""A webhook receiver for tests/webhooks.rs.

Verifies every delivery with the `standardwebhooks` library from PyPI (an
implementation nobody here wrote), answers as the control file says, and
appends one JSON line per request to the log file.

    python3 receiver.py CONTROL_FILE LOG_FILE [PORT [CERT_FILE KEY_FILE]]

Prints the port it listens on (127.0.0.1; PORT 0 or none: any free one) on
its first line. With CERT_FILE and KEY_FILE (PEM) it serves HTTPS.

The control file (re-read on every request) holds
    {"mode": "ok" | "endless" | "status:<code>" | "sleep:<seconds>", "secrets": ["whsec_..", ...]}
("endless": 200 with a body that never ends, written until the server
closes the connection.)
A log line is
    {"id": webhook-id, "timestamp": .., "signatures": n,
     "verified": [bool per secret], "body": the JSON body, "answer": code}
"""

import json
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

CONTROL, LOG = sys.argv[1], sys.argv[2]


def control():
    with open(CONTROL) as f:
        return json.load(f)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        ctl = control()
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified = []
        for secret in ctl.get("secrets", []):
            try:
                Webhook(secret).verify(body, headers)
                verified.append(True)
            except WebhookVerificationError:
                verified.append(False)
        mode = ctl.get("mode", "ok")
        answer = 200
        if mode.startswith("status:"):
            answer = int(mode.split(":")[1])
        elif mode.startswith("sleep:"):
            time.sleep(float(mode.split(":")[1]))
        entry = {
            "id": headers.get("webhook-id"),
            "timestamp": headers.get("webhook-timestamp"),
            "signatures": len(headers.get("webhook-signature", "").split()),
            "verified": verified,
            "body": json.loads(body),
            "answer": answer,
            "mode": mode,
        }
        with open(LOG, "a") as f:
            f.write(json.dumps(entry) + "\n")
        reply = b"ok" if answer < 300 else b"no"
        if mode == "endless":
            self.endless()
            return
        try:
            self.send_response(answer)
            if 300 <= answer < 400:
                self.send_header("location", "http://127.0.0.1:1/elsewhere")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
        except (BrokenPipeError, ConnectionResetError):
            # The server gave up on this attempt (its timeout, or it was
            # killed): the delivery was not acknowledged.
            pass


    def endless(self):
        """200 announcing a terabyte, then bytes until the server hangs up
        (or a minute passes: never a runaway thread)."""
        chunk, deadline = b"x" * 65536, time.monotonic() + 60
        try:
            self.send_response(200)
            self.send_header("content-length", str(1 << 40))
            self.end_headers()
            while time.monotonic() < deadline:
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[3]) if len(sys.argv) > 3 else 0), Handler)
if len(sys.argv) > 5:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(sys.argv[4], sys.argv[5])
    server.socket = tls.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
