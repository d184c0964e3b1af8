#!/usr/bin/python3
"""tests/integration/py/center_client.py -- the Debian python-socketio client
driving the notification center (unread, mark_read, mark_all_read, publish,
join/leave, events handled in SQL).

Connects like client.py (WebSocket, JWT in the auth payload, one or more
namespaces) and prints one JSON object per line on stdout:
  {"type": "connect", "ns": "/"}
  {"type": "connect_error", "ns": "/", "data": ...}
  {"type": "connected"}                      every namespace is connected
  {"type": "connect_failed", "message": "..."}
  {"type": "event", "ns": "/", "event": "unread", "args": [...],
   "handler": "named" | "any"}
  {"type": "ack", "id": 3, "args": [...]}    the ack of command 3
  {"type": "disconnect", "ns": "/"}
Events named in --events (default: unread,read) get their own handler, as an
application written for Flask-SocketIO would register them; every other
event goes to the catch-all handler. Handlers take *args: on notification
events the gateway appends the connection-state-recovery offset as a last
argument.

Commands come on standard input, one JSON object per line:
  {"id": 3, "ns": "/", "event": "mark_read", "args": [[12, 13]]}
emits the event with those arguments (each list element is one Socket.IO
argument) and asks for an ack. Closing standard input disconnects and exits.
Run it with /usr/bin/python3 (the Debian interpreter that sees
python3-socketio).
"""
import argparse
import json
import sys
import threading

import socketio

_lock = threading.Lock()


def emit(obj):
    with _lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def make_handlers(sio, ns, named):
    def on_connect():
        emit({"type": "connect", "ns": ns})

    def on_connect_error(*data):
        emit({"type": "connect_error", "ns": ns,
              "data": data[0] if len(data) == 1 else list(data)})

    def on_disconnect():
        emit({"type": "disconnect", "ns": ns})

    def on_any(event, *args):
        emit({"type": "event", "ns": ns, "event": event, "args": list(args),
              "handler": "any"})

    sio.on("connect", on_connect, namespace=ns)
    sio.on("connect_error", on_connect_error, namespace=ns)
    sio.on("disconnect", on_disconnect, namespace=ns)
    sio.on("*", on_any, namespace=ns)
    for name in named:
        def on_named(*args, name=name):
            emit({"type": "event", "ns": ns, "event": name, "args": list(args),
                  "handler": "named"})
        sio.on(name, on_named, namespace=ns)


def run_command(sio, line):
    try:
        cmd = json.loads(line)
        cid = cmd["id"]
    except (ValueError, KeyError, TypeError) as exc:
        emit({"type": "bad_command", "line": line, "message": str(exc)})
        return

    def on_ack(*args):
        emit({"type": "ack", "id": cid, "args": list(args)})

    args = cmd.get("args") or []
    try:
        # A tuple is sent as separate arguments; an empty tuple as none.
        sio.emit(cmd["event"], tuple(args), namespace=cmd.get("ns", "/"),
                 callback=on_ack)
    except Exception as exc:  # not connected, bad namespace...
        emit({"type": "emit_failed", "id": cid, "message": str(exc)})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token")
    ap.add_argument("--namespaces", default="/")
    ap.add_argument("--events", default="unread,read")
    ap.add_argument("--wait-timeout", type=float, default=5.0)
    opts = ap.parse_args()
    namespaces = [n for n in opts.namespaces.split(",") if n]
    named = [e for e in opts.events.split(",") if e]

    sio = socketio.Client(reconnection=False)
    for ns in namespaces:
        make_handlers(sio, ns, named)

    auth = {"token": opts.token} if opts.token is not None else None
    try:
        sio.connect(opts.url, auth=auth, transports=["websocket"],
                    namespaces=namespaces, wait_timeout=opts.wait_timeout)
    except Exception as exc:  # socketio.exceptions.ConnectionError and others
        emit({"type": "connect_failed", "message": str(exc)})
        return 2
    emit({"type": "connected", "transport": sio.transport()})

    try:
        for line in sys.stdin:
            line = line.strip()
            if line:
                run_command(sio, line)
    except KeyboardInterrupt:
        pass
    try:
        sio.disconnect()
    except Exception:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
