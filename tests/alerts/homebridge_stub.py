"""A loopback HTTP server that answers like Homebridge does (Config UI X 4.76 API + http-webhooks 0.2.0).

The answers are the ones measured in the workplace's HOMEBRIDGE.md: login →
201 with a bearer token, 401 without a valid one, `GET /api/accessories` as
an array of services looked up by `serviceName`, read-only sensor
characteristics answering 400, webhooks `GET /?accessoryId=…&state=…`.
A switch is linked to the motion sensor as the README's Homebridge config does.
"""

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

BRIDGE = "0E:4C:AB:12:34:56"


def unique_id(aid, iid, type_):
    return hashlib.sha256(f"{BRIDGE}{aid}{iid}{type_}".encode()).hexdigest()


class Homebridge:
    def __init__(self):
        self.values = {"Power Alert Trigger": 0, "Power Alert Motion": 0, "Power Alert Contact": 1}
        self.history: list[tuple[str, int]] = []  # (serviceName, value) on every change
        self.requests: list[tuple[str, str]] = []
        self.fail_next: list[int] = []  # status codes answered before doing anything
        self.tokens: set[str] = set()
        self.logins = 0
        self.lock = threading.Lock()

    def services(self):
        return [
            self._service(2, 8, "MotionSensor", "Power Alert Motion", "MotionDetected", False),
            self._service(3, 8, "ContactSensor", "Power Alert Contact", "ContactSensorState", False),
            self._service(4, 8, "Switch", "Power Alert Trigger", "On", True),
        ]

    def _service(self, aid, iid, type_, name, characteristic, writable):
        value = self.values[name]
        return {
            "aid": aid,
            "iid": iid,
            "type": type_,
            "serviceName": name,
            "serviceCharacteristics": [
                {"type": characteristic, "value": value, "canWrite": writable, "perms": ["ev", "pr"]}
            ],
            "values": {characteristic: value},
            "uniqueId": unique_id(aid, iid, type_),
        }

    def set(self, name, value):
        value = int(value)
        if self.values[name] != value:
            self.values[name] = value
            self.history.append((name, value))


class Handler(BaseHTTPRequestHandler):
    hb: Homebridge

    def log_message(self, *args):
        pass

    def _send(self, code, body):
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _scripted_failure(self):
        with self.hb.lock:
            self.hb.requests.append((self.command, self.path))
            if self.hb.fail_next:
                code = self.hb.fail_next.pop(0)
                self._send(code, {"message": "scripted", "statusCode": code})
                return True
        return False

    def _authorized(self):
        header = self.headers.get("Authorization", "")
        if header.removeprefix("Bearer ") in self.hb.tokens:
            return True
        self._send(401, {"message": "Unauthorized", "statusCode": 401})
        return False

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def do_GET(self):
        if self._scripted_failure():
            return
        url = urlsplit(self.path)
        if url.path == "/api/accessories":
            if self._authorized():
                self._send(200, self.hb.services())
            return
        if url.path == "/":  # http-webhooks
            query = parse_qs(url.query)
            accessory = query.get("accessoryId", [""])[0]
            names = {"power_alert_motion": "Power Alert Motion", "power_alert_contact": "Power Alert Contact"}
            if accessory not in names:
                self._send(404, f"[ERROR Http WebHook Server] AccessoryId '{accessory}' not found.".encode())
                return
            state = query.get("state", [None])[0]
            if state is None:
                self._send(200, {"success": True, "state": bool(self.hb.values[names[accessory]])})
                return
            on = state == "true"
            # The contact sensor: state=true means contact detected = closed (0).
            value = (0 if on else 1) if accessory == "power_alert_contact" else int(on)
            self.hb.set(names[accessory], value)
            self._send(200, {"success": True})
            return
        self._send(404, {"message": "Not Found", "statusCode": 404})

    def do_POST(self):
        if self._scripted_failure():
            return
        if self.path == "/api/auth/login":
            body = self._body()
            if body.get("username") != "admin" or body.get("password") != "admin":
                self._send(403, {"message": "Forbidden", "statusCode": 403})
                return
            self.hb.logins += 1
            token = f"jwt-{self.hb.logins}"
            self.hb.tokens.add(token)
            self._send(201, {"access_token": token, "token_type": "Bearer", "expires_in": 28800})
            return
        self._send(404, {"message": "Not Found", "statusCode": 404})

    def do_PUT(self):
        if self._scripted_failure():
            return
        if not self.path.startswith("/api/accessories/"):
            self._send(404, {"message": "Not Found", "statusCode": 404})
            return
        if not self._authorized():
            return
        uid = self.path.rsplit("/", 1)[1]
        service = next((s for s in self.hb.services() if s["uniqueId"] == uid), None)
        if service is None:
            self._send(400, {"message": f"Service with uniqueId of '{uid}' not found.", "statusCode": 400})
            return
        body = self._body()
        writable = [c["type"] for c in service["serviceCharacteristics"] if c["canWrite"]]
        if body.get("characteristicType") not in writable:
            self._send(400, {"message": "Invalid characteristicType. Valid types are: .", "statusCode": 400})
            return
        value = body["value"] in (True, 1, "true", "1")
        self.hb.set(service["serviceName"], value)
        if service["serviceName"] == "Power Alert Trigger":
            # on_url/off_url of the switch call the motion sensor's webhook.
            self.hb.set("Power Alert Motion", value)
        self._send(200, next(s for s in self.hb.services() if s["uniqueId"] == uid))


class Server:
    def __init__(self):
        self.hb = Homebridge()
        handler = type("BoundHandler", (Handler,), {"hb": self.hb})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
