#!/usr/bin/env python3
"""Prints every alert Hoist's webhook sink posts. Usage: alert-receiver.py [PORT] (default 9099)."""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            payload = json.loads(body)
            alert = payload.get("alert", {})
            print(f"{payload.get('status', '?'):9} {alert.get('severity', '?'):8} {alert.get('summary', '')}", flush=True)
        except ValueError:
            print(body.decode(errors="replace"), flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 9099
print(f"listening on http://127.0.0.1:{port}/", flush=True)
HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
