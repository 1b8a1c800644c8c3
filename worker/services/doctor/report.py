"""What a check finds: `Finding`s, gathered into a `Report`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

NO_WORKER = "no worker is running: start one with `siyu worker`"
INIT = "run `siyu init`"


@dataclass(frozen=True, slots=True)
class Finding:
    """One fact about the installation: `ok`, or a problem and how to fix it."""

    check: str
    ok: bool
    message: str
    fix: str = ""

    def line(self) -> str:
        status = "ok" if self.ok else "PROBLEM"
        fix = f"; fix: {self.fix}" if self.fix and not self.ok else ""
        return f"{status:<8} {self.check:<14} {self.message}{fix}"


@dataclass(frozen=True, slots=True)
class Report:
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return all(finding.ok for finding in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [asdict(finding) for finding in self.findings]}
