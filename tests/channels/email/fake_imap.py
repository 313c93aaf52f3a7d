"""A minimal IMAP4rev1 server for tests: LOGIN, SELECT, UID SEARCH/FETCH/STORE, EXPUNGE."""

from __future__ import annotations

import re
import socket
import socketserver
import ssl
import threading
from dataclasses import dataclass, field

_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')


def _args(text: str) -> list[str]:
    return [m.group(1) if m.group(1) is not None else m.group(2) for m in _ARG.finditer(text)]


@dataclass
class Mailbox:
    user: str = "robot"
    password: str = 'p@ss "word"'
    messages: dict[int, bytes] = field(default_factory=dict)
    flags: dict[int, set[str]] = field(default_factory=dict)
    next_uid: int = 1

    def add(self, raw: bytes) -> int:
        uid = self.next_uid
        self.next_uid += 1
        self.messages[uid] = raw
        self.flags[uid] = set()
        return uid


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def send(self, text: str | bytes) -> None:
        self.wfile.write(text.encode() if isinstance(text, str) else text)

    def handle(self) -> None:
        box = self.server.mailbox
        self.send("* OK [CAPABILITY IMAP4rev1] fake IMAP ready\r\n")
        authed = False
        while True:
            line = self.rfile.readline()
            if not line:
                return
            tag, _, rest = line.decode().rstrip("\r\n").partition(" ")
            command, _, arguments = rest.partition(" ")
            command = command.upper()
            with self.server.lock:
                if command == "CAPABILITY":
                    self.send(f"* CAPABILITY IMAP4rev1\r\n{tag} OK CAPABILITY completed\r\n")
                elif command == "LOGIN":
                    user, password = _args(arguments)[:2]
                    password = password.replace('\\"', '"').replace("\\\\", "\\")
                    authed = (user, password) == (box.user, box.password)
                    self.send(f"{tag} OK LOGIN completed\r\n" if authed else f"{tag} NO [AUTHENTICATIONFAILED] bad\r\n")
                elif not authed and command != "LOGOUT":
                    self.send(f"{tag} NO not authenticated\r\n")
                elif command == "SELECT":
                    self.send(f"* {len(box.messages)} EXISTS\r\n* 0 RECENT\r\n{tag} OK [READ-WRITE] SELECT completed\r\n")
                elif command == "UID":
                    self.uid(tag, arguments, box)
                elif command == "EXPUNGE":
                    for uid in [u for u, f in box.flags.items() if "\\Deleted" in f]:
                        del box.messages[uid], box.flags[uid]
                    self.send(f"{tag} OK EXPUNGE completed\r\n")
                elif command == "LOGOUT":
                    self.send(f"* BYE logging out\r\n{tag} OK LOGOUT completed\r\n")
                    return
                else:
                    self.send(f"{tag} BAD unknown command\r\n")

    def uid(self, tag: str, arguments: str, box: Mailbox) -> None:
        sub, _, rest = arguments.partition(" ")
        sub = sub.upper()
        uids = sorted(box.messages)
        if sub == "SEARCH":
            unseen = [str(u) for u in uids if "\\Seen" not in box.flags[u]]
            self.send(f"* SEARCH {' '.join(unseen)}\r\n{tag} OK SEARCH completed\r\n")
        elif sub == "FETCH":
            uid = int(rest.split()[0])
            if uid in box.messages:
                raw = box.messages[uid]
                seq = uids.index(uid) + 1
                self.send(f"* {seq} FETCH (UID {uid} BODY[] {{{len(raw)}}}\r\n".encode() + raw + b")\r\n")
            self.send(f"{tag} OK FETCH completed\r\n")
        elif sub == "STORE":
            parts = rest.split(" ", 2)
            uid = int(parts[0])
            flags = parts[2].strip("()").split()
            if uid in box.flags:
                box.flags[uid].update(flags)
                seq = uids.index(uid) + 1
                self.send(f"* {seq} FETCH (UID {uid} FLAGS ({' '.join(sorted(box.flags[uid]))}))\r\n")
            self.send(f"{tag} OK STORE completed\r\n")
        else:
            self.send(f"{tag} BAD unknown UID command\r\n")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mailbox: Mailbox, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mailbox = mailbox
        self.lock = threading.Lock()
        self.tls = tls

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = super().get_request()
        if self.tls is not None:  # implicit TLS (imaps)
            sock = self.tls.wrap_socket(sock, server_side=True)
        return sock, address


class FakeImapServer:
    def __init__(self, mailbox: Mailbox | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.mailbox = mailbox or Mailbox()
        self._server = _Server(self.mailbox, tls)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeImapServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
