"""A SageMaker-compatible model server in plain Python, for the API tests: what a user's own
`model.py` behind `batch-transform api --local --model-command "python3 model.py"` looks like.

  SAGEMAKER_BIND_TO_PORT   port to serve on (set by the local runner)
  MODEL_UPPERCASE=1        answer each body upper-cased (a visible transform)
  MODEL_LATENCY_MS=n       wait n ms before each answer (a slow model, to stop a job while it runs)
  SM_MODEL_DIR             the extracted ModelDataUrl; with MODEL_PREFIX_FILE=name, every answer
                           starts with that file's first line (proves the artifacts arrived)
"""
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPPER = os.environ.get("MODEL_UPPERCASE") == "1"
LATENCY = int(os.environ.get("MODEL_LATENCY_MS", "0")) / 1000
PREFIX = b""
if os.environ.get("MODEL_PREFIX_FILE"):
    with open(os.path.join(os.environ["SM_MODEL_DIR"], os.environ["MODEL_PREFIX_FILE"]), "rb") as f:
        PREFIX = f.readline().strip() + b":"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.answer(200 if self.path == "/ping" else 404, b"")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if LATENCY:
            time.sleep(LATENCY)
        lines = body.split(b"\n")
        out = [PREFIX + (line.upper() if UPPER else line) if line else line for line in lines]
        self.answer(200, b"\n".join(out))


ThreadingHTTPServer(("127.0.0.1", int(os.environ["SAGEMAKER_BIND_TO_PORT"])), Handler).serve_forever()
