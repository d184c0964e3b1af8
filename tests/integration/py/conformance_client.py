#!/usr/bin/python3
"""tests/integration/py/conformance_client.py -- the Debian python-socketio
client against `belfry-gateway --conformance`.

Runs one fixed scenario and prints one JSON object per line on stdout; the
node test (tests/integration/clients.test.js) asserts on them:
  {"type": "connected", "transport": ..., "namespaces": [...]}
  {"type": "event", "ns": "/", "event": "auth", "args": [...]}
  {"type": "ack", "name": "...", "value": ...}
  {"type": "connect_error", "ns": "/random", "data": ...}
  {"type": "refused", "message": "..."}     the /random client did not connect
  {"type": "transport", "value": "websocket"}
  {"type": "error", "message": "..."}       anything unexpected
  {"type": "done"}
Binary values are printed as {"$bytes": "<hex>"}. Run it with /usr/bin/python3
(the Debian interpreter that sees python3-socketio and python3-websocket).

Design: the scenario is sequential (connect both namespaces with auth, plain
events, several arguments, acks, binary events and binary acks, then a second
client for an unknown namespace); event handlers only print, so the node side
sees every packet the client surfaced, in order.
"""
import argparse
import json
import sys
import threading
import time

import socketio

_lock = threading.Lock()


def plain(v):
    """JSON-printable copy of v with bytes as {"$bytes": hex}."""
    if isinstance(v, (bytes, bytearray)):
        return {"$bytes": bytes(v).hex()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    return v


def out(obj):
    with _lock:
        sys.stdout.write(json.dumps(plain(obj)) + "\n")
        sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--transports", default="default",
                    help="default (polling then websocket), polling or websocket")
    opts = ap.parse_args()
    transports = {"default": None, "polling": ["polling"],
                  "websocket": ["websocket"]}[opts.transports]
    namespaces = ["/", "/custom"]
    # python-engineio silently degrades without these; say so instead.
    needs = {"default": ["requests", "websocket"], "polling": ["requests"],
             "websocket": ["websocket"]}[opts.transports]
    for mod in needs:
        try:
            __import__(mod)
        except ImportError:
            out({"type": "error", "message": "python3-%s is not installed "
                 "(python-engineio needs it for this transport)" % mod})
            return 3

    sio = socketio.Client(reconnection=False)
    for ns in namespaces:
        def on_any(event, *args, ns=ns):
            out({"type": "event", "ns": ns, "event": event, "args": list(args)})

        def on_connect_error(*data, ns=ns):
            out({"type": "connect_error", "ns": ns,
                 "data": data[0] if len(data) == 1 else list(data)})

        sio.on("*", on_any, namespace=ns)
        sio.on("connect_error", on_connect_error, namespace=ns)

    # A server -> client ack: the handler's return value is the answer.
    sio.on("ack-request", lambda *args: ("from-py",) + args)

    try:
        sio.connect(opts.url, auth={"token": "py-token", "n": 7},
                    transports=transports, namespaces=namespaces,
                    wait_timeout=5)
    except Exception as exc:
        out({"type": "error", "message": "connect: %r" % (exc,)})
        return 2
    out({"type": "connected", "transport": sio.transport(),
         "namespaces": sorted(sio.namespaces.keys())})

    try:
        sio.emit("message", (1, "2", {"3": [True]}, None, "\u00e9\U0001F600"))
        sio.emit("message", "to-custom", namespace="/custom")
        out({"type": "ack", "name": "one",
             "value": sio.call("message-with-ack", "first", timeout=5)})
        out({"type": "ack", "name": "several",
             "value": sio.call("message-with-ack", (1, {"a": 2}), timeout=5)})
        out({"type": "ack", "name": "custom",
             "value": sio.call("message-with-ack", "c", namespace="/custom",
                               timeout=5)})
        sio.emit("message", (b"\x01\x02\x03", {"nested": b"\x04\x05"}, "txt"))
        out({"type": "ack", "name": "binary",
             "value": sio.call("message-with-ack", b"\x09\x08\x07", timeout=5)})
        sio.emit("request-ack", ("x", 5))
        # Give the last plain events time to come back before the next step.
        time.sleep(0.3)
        out({"type": "transport", "value": sio.transport()})
    except Exception as exc:
        out({"type": "error", "message": "scenario: %r" % (exc,)})

    bad = socketio.Client(reconnection=False)

    def on_bad_error(*data):
        out({"type": "connect_error", "ns": "/random",
             "data": data[0] if len(data) == 1 else list(data)})

    bad.on("connect_error", on_bad_error, namespace="/random")
    try:
        bad.connect(opts.url, transports=transports, namespaces=["/random"],
                    wait_timeout=1)
        out({"type": "error", "message": "/random connected"})
        bad.disconnect()
    except Exception as exc:
        out({"type": "refused", "message": str(exc)})
        try:
            bad.disconnect()
        except Exception:
            pass

    # The main connection is still usable afterwards.
    try:
        out({"type": "ack", "name": "after",
             "value": sio.call("message-with-ack", "still-here", timeout=5)})
    except Exception as exc:
        out({"type": "error", "message": "after: %r" % (exc,)})
    try:
        sio.disconnect()
    except Exception:
        pass
    out({"type": "done"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
