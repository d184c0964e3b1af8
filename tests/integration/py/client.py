#!/usr/bin/python3
"""tests/integration/py/client.py -- the Debian python-socketio client as a
test probe.

Connects to a Belfry gateway over WebSocket with a JWT in the auth payload,
to one or more namespaces, and prints one JSON object per line on stdout for
everything it sees:
  {"type": "connect", "ns": "/"}
  {"type": "connect_error", "ns": "/", "data": ...}
  {"type": "connected"}                      every namespace is connected
  {"type": "connect_failed", "message": "..."}
  {"type": "event", "ns": "/", "event": "response", "args": [...]}
  {"type": "disconnect", "ns": "/"}
It disconnects and exits when its standard input is closed. Run it with
/usr/bin/python3 (the Debian interpreter that sees python3-socketio).
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token")
    ap.add_argument("--namespaces", default="/")
    ap.add_argument("--wait-timeout", type=float, default=5.0)
    opts = ap.parse_args()
    namespaces = [n for n in opts.namespaces.split(",") if n]

    sio = socketio.Client(reconnection=False)

    for ns in namespaces:
        def on_connect(ns=ns):
            emit({"type": "connect", "ns": ns})

        def on_connect_error(*data, ns=ns):
            emit({"type": "connect_error", "ns": ns,
                  "data": data[0] if len(data) == 1 else list(data)})

        def on_disconnect(ns=ns):
            emit({"type": "disconnect", "ns": ns})

        def on_any(event, *args, ns=ns):
            emit({"type": "event", "ns": ns, "event": event, "args": list(args)})

        sio.on("connect", on_connect, namespace=ns)
        sio.on("connect_error", on_connect_error, namespace=ns)
        sio.on("disconnect", on_disconnect, namespace=ns)
        sio.on("*", on_any, namespace=ns)

    auth = {"token": opts.token} if opts.token is not None else None
    try:
        sio.connect(opts.url, auth=auth, transports=["websocket"],
                    namespaces=namespaces, wait_timeout=opts.wait_timeout)
    except Exception as exc:  # socketio.exceptions.ConnectionError and others
        emit({"type": "connect_failed", "message": str(exc)})
        return 2
    emit({"type": "connected", "transport": sio.transport()})

    # Block until the driving test closes our stdin.
    try:
        while sys.stdin.readline():
            pass
    except KeyboardInterrupt:
        pass
    try:
        sio.disconnect()
    except Exception:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
