"""The operator's files (rate-limit policies, templates) and what the accounts refer to."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select

from worker.errors import UserError
from worker.limiter import Policy, parse_policy, resolve_policy
from worker.rendering.errors import TemplateError
from worker.rendering.sandbox import TEMPLATE_SUFFIX, environment, load, templates_root
from worker.services.doctor.report import Finding
from worker.store import tables


def check_policies(directory: Path, findings: list[Finding]) -> dict[str, Policy] | None:
    """Every policy file parses; each bad one is its own finding. The policies, if all do."""
    if not directory.is_dir():
        message = f"{directory}: rate-limit policy directory not found"
        fix = "set SIYU_RATE_LIMITS_DIR to the folder of <policy>.toml files"
        findings.append(Finding("policies", False, message, fix))
        return None
    policies, bad = {}, 0
    for path in sorted(directory.glob("*.toml")):
        try:
            policies[path.stem] = parse_policy(path)
        except UserError as exc:
            bad += 1
            fix = f"correct {path.name} (README: rate-limit policies)"
            findings.append(Finding("policies", False, str(exc), fix))
    if bad:
        return None
    names = ", ".join(policies) or "none: every account is unlimited"
    findings.append(Finding("policies", True, f"{directory}: {names}"))
    return policies


def check_account_policies(engine: Engine, policies: dict[str, Policy] | None) -> list[Finding]:
    """Every account's policy exists (checked only when every policy file parsed)."""
    if policies is None:
        return []
    a = tables.accounts.c
    with engine.connect() as conn:
        rows = conn.execute(select(a.name, a.policy, a.channel).order_by(a.name)).all()
    findings = []
    for name, policy, channel in rows:
        try:
            resolve_policy(policies, policy, channel)
        except UserError as exc:
            fix = f"write {policy}.toml in the policy folder, or re-add the account"
            findings.append(Finding("accounts", False, f"account {name}: {exc}", fix))
    if not findings:
        findings.append(Finding("accounts", True, f"{len(rows)} accounts, each with its policy"))
    return findings


def check_account_channels(engine: Engine) -> list[Finding]:
    """Every account's stored channel config can be used on this machine (a worker pauses
    one that cannot, with reason `config`)."""
    from worker.services.accounts import unusable_accounts

    fix = (
        "install the channel's package here, or remove the account and add it again with a "
        "valid --config; then `siyu accounts resume`"
    )
    return [
        Finding("accounts", False, f"account {bad.name} ({bad.state}): {bad.problem}", fix)
        for bad in unusable_accounts(engine)
    ]


def check_templates(directory: Path) -> list[Finding]:
    """Every `.j2` file under the templates dir (reply templates too) compiles."""
    root = templates_root(directory)
    if not root.is_dir():
        message = f"{root}: templates directory not found"
        fix = "set SIYU_TEMPLATES_DIR to the folder of <name>.j2 templates"
        return [Finding("templates", False, message, fix)]
    names = environment(root).list_templates(extensions=[TEMPLATE_SUFFIX[1:]])
    findings = []
    for name in names:
        try:
            load(root, name, shown=name)
        except TemplateError as exc:
            findings.append(Finding("templates", False, str(exc), "correct the template there"))
    if not findings:
        findings.append(Finding("templates", True, f"{root}: {len(names)} templates compile"))
    return findings
