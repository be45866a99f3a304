"""The Tested-by reply to a mailed series: an RFC 5322 message a tester sends as is
(`git send-email FILE`, `mutt -H FILE`), threaded under the cover letter (or, without one,
one message under each patch, in one mbox), to everyone the series went to, in the shape of the
project's seed mail: the cover's first lines quoted, the trailer, then per arch the evidence
(`/proc/version`, the LTO lines of `/proc/config.gz`) and a one-line summary."""

from __future__ import annotations

import email.policy
import email.utils
import re
import unicodedata
from email.message import EmailMessage

from harness.base.errors import UsageError
from harness.checks import LTO_GREP, Verdict
from harness.kernel.model import lto_title
from harness.mail.series import Mail, Series, Subject

QUOTED_LINES = 6  # of the cover letter's text, as a tester quotes the opening
_POLICY = email.policy.default.clone(linesep="\n", max_line_length=78, mangle_from_=True)


def _quote(body: str) -> list[str]:
    """The opening of the cover's text: its first lines up to the first blank one after text,
    `>`-quoted."""
    lines: list[str] = []
    for line in body.splitlines():
        if not line.strip():
            if lines:
                break
            continue
        lines.append(line.rstrip())
        if len(lines) == QUOTED_LINES:
            break
    return [f"> {line}" for line in lines]


def _addresses(*fields: str) -> list[tuple[str, str]]:
    return [(n, a) for n, a in email.utils.getaddresses(list(fields)) if a]


def _recipients(mail: Mail, own: str) -> tuple[str, str]:
    """(To, Cc) of a reply to all: the author, then everyone else it went to, each once and
    never the tester."""
    seen = {own.lower()}
    to: list[str] = []
    cc: list[str] = []
    for bucket, fields in ((to, (mail.sender,)), (cc, (mail.to, mail.cc))):
        for name, addr in _addresses(*fields):
            if addr.lower() not in seen:
                seen.add(addr.lower())
                bucket.append(email.utils.formataddr((name, addr)))
    return ", ".join(to), ", ".join(cc)


def summary_line(arch: dict[str, object], compiler: str) -> str:
    checks = arch["checks"]
    assert isinstance(checks, list)
    skipped = [c for c in checks if c["verdict"] == Verdict.SKIP]
    passed = [c for c in checks if c["verdict"] == Verdict.PASS]
    skips = f", {len(skipped)} skipped ({', '.join(str(c['name']) for c in skipped)})" \
        if skipped else ""
    return (f"{arch['arch']}: {len(passed)} of {len(checks)} checks passed{skips}; "
            f"{lto_title(str(arch['lto']))}, {compiler}")


def reply_body(mail: Mail, facts: dict[str, object]) -> str:
    who = email.utils.parseaddr(mail.sender)[0] or mail.sender
    arches = facts["arches"]
    assert isinstance(arches, list)
    lines = [f"On {mail.date}, {who} wrote:" if mail.date else f"{who} wrote:",
             *_quote(mail.body), "", f"Tested-by: {facts['tested_by']}", ""]
    names = " and ".join(str(a["arch"]) for a in arches)
    info = facts.get("series", {})
    assert isinstance(info, dict)
    modes = ", ".join(sorted({lto_title(str(a["lto"])) for a in arches}))
    lines += [f"Applied onto {info.get('base_described', '?')} ({str(info.get('base', ''))[:12]}"
              f"), built with Clang ({modes}) and booted in QEMU on {names}:", ""]
    for a in arches:
        lines.append(f"{a['arch']}:")
        if a["proc_version"]:
            lines += ["# cat /proc/version", str(a["proc_version"])]
        if a["lto_config"]:
            lines += [f"# {LTO_GREP}", str(a["lto_config"])]
        lines.append("")
    lines += [summary_line(a, str(facts["compiler"])) for a in arches]
    return "\n".join(lines) + "\n"


_ADDR = re.compile(r"[^@\s<>\",;()\[\]\\]+@[^@\s<>\",;()\[\]\\]+\.[^@\s<>\",;()\[\]\\.]+")


def check_identity(name: str, addr: str) -> None:
    """The tester's name and address as a Tested-by and a From header need them: refused
    before anything is built, with the fix."""
    if not name.strip() or any(unicodedata.category(c).startswith("C") for c in name):
        raise UsageError(f"--name {name!r}: give your name on one line, as in "
                         "--name 'Tess Tester'")
    if not _ADDR.fullmatch(addr):
        raise UsageError(f"--email {addr!r}: not an address; give it bare, as in "
                         "--email tess@example.org")


def _addressed(mail: Mail, name: str, addr: str) -> EmailMessage:
    """A reply to `mail` from the tester, to its author and everyone else it went to, threaded
    under it when it has a Message-ID; the body is the caller's."""
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = email.utils.formataddr((name, addr))
    to, cc = _recipients(mail, addr)
    if to:
        msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = mail.subject if Subject.parse(mail.subject).reply else f"Re: {mail.subject}"
    if mail.message_id:
        msg["In-Reply-To"] = mail.message_id
        msg["References"] = " ".join(r for r in (mail.references, mail.message_id) if r)
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["Message-ID"] = email.utils.make_msgid("ltoboot", addr.rpartition("@")[2] or None)
    return msg


def _with_body(msg: EmailMessage, body: str) -> EmailMessage:
    msg.set_content(body, cte="7bit" if body.isascii() else "8bit")
    return msg


def _one_or_mbox(messages: list[EmailMessage]) -> str:
    """One message as it is, several as an mbox, as git format-patch writes one (git
    send-email sends each message)."""
    if len(messages) == 1:
        return messages[0].as_bytes().decode()
    return "".join(f"From ltoboot Mon Sep 17 00:00:00 2001\n{m.as_bytes().decode()}\n"
                   for m in messages)


def reply(series: Series, facts: dict[str, object], name: str, addr: str) -> str:
    """The whole reply, for a run whose every check passed: one message to the cover letter,
    or, for a series without one, an mbox of one message per patch (b4 takes a reply's
    trailer for the message it answers alone). Headers RFC 2047 encoded, the body 8bit."""
    assert facts["passed"], "no Tested-by for a run that failed"
    check_identity(name, addr)
    return _one_or_mbox([_with_body(_addressed(m, name, addr), reply_body(m, facts))
                         for m in series.answered])
