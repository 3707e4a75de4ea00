"""A translating proxy in front of moto for CloudWatch.

aws-sdk-cloudwatch speaks the Smithy RPC v2 CBOR protocol (POST
/service/GraniteServiceVersion20100801/operation/<Operation>, CBOR bodies); moto serves CloudWatch
only over the AWS query and JSON protocols. This proxy decodes each CBOR request, re-encodes it as
JSON 1.0 (X-Amz-Target: GraniteServiceVersion20100801.<Operation>) for moto, and encodes moto's
JSON reply back to CBOR, using botocore's CloudWatch model so that timestamps become CBOR tag-1
epoch seconds and doubles stay floats, as the SDK's decoder requires. Errors keep their status
and `__type`. GET /ready answers 200 once listening. Test infrastructure only; binds 127.0.0.1.

    python moto_cbor_proxy.py --listen 127.0.0.1:PORT --upstream http://127.0.0.1:MOTO_PORT
"""

import argparse
import base64
import datetime
import gzip
import json
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.session
import cbor2

PREFIX = "/service/GraniteServiceVersion20100801/operation/"
MODEL = botocore.session.get_session().get_service_model("cloudwatch")


def to_json(value, shape):
    """CBOR-decoded request value -> JSON-protocol value, following the input shape."""
    if value is None or shape is None:
        return value
    kind = shape.type_name
    if kind == "structure":
        return {k: to_json(v, shape.members.get(k)) for k, v in value.items()}
    if kind == "list":
        return [to_json(v, shape.member) for v in value]
    if kind == "map":
        return {k: to_json(v, shape.value) for k, v in value.items()}
    if kind == "timestamp":
        if isinstance(value, datetime.datetime):
            return value.timestamp()
        return float(value)
    if kind == "blob":
        return base64.b64encode(value).decode() if isinstance(value, bytes) else value
    return value


def to_cbor(value, shape):
    """JSON-protocol reply value -> CBOR-ready value, following the output shape."""
    if value is None or shape is None:
        return value
    kind = shape.type_name
    if kind == "structure":
        return {k: to_cbor(v, shape.members.get(k)) for k, v in value.items() if v is not None}
    if kind == "list":
        return [to_cbor(v, shape.member) for v in value]
    if kind == "map":
        return {k: to_cbor(v, shape.value) for k, v in value.items()}
    if kind == "timestamp":
        if isinstance(value, str):
            seconds = datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        else:
            seconds = float(value)
        return cbor2.CBORTag(1, float(seconds))
    if kind in ("double", "float"):
        return float(value)
    if kind in ("integer", "long"):
        return int(value)
    if kind == "blob":
        return base64.b64decode(value) if isinstance(value, str) else value
    return value


class Handler(BaseHTTPRequestHandler):
    upstream = ""

    def log_message(self, fmt, *args):
        sys.stderr.write("cbor-proxy: " + (fmt % args) + "\n")

    def do_GET(self):
        self._reply(200, b"ready", "text/plain")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if not self.path.startswith(PREFIX):
            return self._reply(404, b"not a CloudWatch RPC v2 CBOR request", "text/plain")
        operation = self.path[len(PREFIX):].strip("/")
        try:
            op_model = MODEL.operation_model(operation)
        except Exception:
            return self._error(400, "UnknownOperationException", f"unknown operation {operation}")
        # The SDK gzips large PutMetricData bodies (request compression).
        if "gzip" in (self.headers.get("Content-Encoding") or "").lower():
            body = gzip.decompress(body)
        request = cbor2.loads(body) if body else {}
        payload = json.dumps(to_json(request, op_model.input_shape)).encode()
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"GraniteServiceVersion20100801.{operation}",
        }
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token", "Host"):
            if self.headers.get(name):
                headers[name] = self.headers[name]
        upstream = urllib.request.Request(self.upstream + "/", data=payload, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(upstream, timeout=30) as response:
                status, reply = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, reply = err.code, err.read()
        try:
            decoded = json.loads(reply) if reply.strip() else {}
        except ValueError:
            return self._error(status if status >= 400 else 502, "InternalFailure", f"moto sent non-JSON: {reply[:200]!r}")
        if status >= 300:
            error_type = decoded.get("__type", "InternalFailure").split("#")[-1]
            message = decoded.get("message") or decoded.get("Message") or ""
            return self._error(status, error_type, message)
        out = to_cbor(decoded, op_model.output_shape) if op_model.output_shape else {}
        self._reply(200, cbor2.dumps(out), "application/cbor")

    def _error(self, status, error_type, message):
        self._reply(status, cbor2.dumps({"__type": error_type, "message": message}), "application/cbor")

    def _reply(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("smithy-protocol", "rpc-v2-cbor")
        self.end_headers()
        self.wfile.write(body)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT to listen on")
    parser.add_argument("--upstream", required=True, help="moto's base URL")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    Handler.upstream = args.upstream.rstrip("/")
    ThreadingHTTPServer((host, int(port)), Handler).serve_forever()


if __name__ == "__main__":
    main()
