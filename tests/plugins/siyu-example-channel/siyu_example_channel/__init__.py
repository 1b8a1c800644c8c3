"""An example third-party siyu channel: each message becomes one JSON line in a file.

`siyu accounts add outbox --channel jsonl --config path=/var/spool/siyu/outbox.jsonl`

It shows the whole adapter contract on a platform anyone can inspect: validate the config in
the constructor (a `UserError` naming the account and key), pass the idempotency key along so a
repeat is recognised (here: a key already in the file is not written again), look a send up by
that key, and declare capabilities as class attributes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from worker.channels.base import Channel, OutboundMessage, SendResult
from worker.errors import UserError

_LOCK = threading.Lock()  # one writer at a time per process; accounts may share a file


class JsonlChannel(Channel):
    scheme: ClassVar[str] = "jsonl"
    max_text_len: ClassVar[int] = 10_000
    supports_idempotency_lookup: ClassVar[bool] = True
    config_keys: ClassVar[frozenset[str]] = frozenset({"path"})
    required_config: ClassVar[frozenset[str]] = frozenset({"path"})

    def __init__(self, account: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(account, config)
        self.path = Path(str(self.config["path"]))
        if not self.path.parent.is_dir():
            raise UserError(
                f"account {account!r}: config path must be a file in an existing directory, "
                f"got {str(self.path)!r}"
            )

    def send(self, message: OutboundMessage) -> SendResult:
        with _LOCK:
            found = self.lookup(message.idempotency_key)
            if found is not None:
                return found
            line = {
                "key": message.idempotency_key,
                "account": self.account,
                "to": message.to,
                "text": message.text,
                "campaign": message.campaign,
            }
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
        return SendResult(message.idempotency_key)

    def lookup(self, idempotency_key: str) -> SendResult | None:
        if not self.path.exists():
            return None
        with self.path.open(encoding="utf-8") as lines:
            for raw in lines:
                if json.loads(raw)["key"] == idempotency_key:
                    return SendResult(idempotency_key)
        return None
