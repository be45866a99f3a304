"""The Tested-by reply to a mailed series: an RFC 5322 message a tester sends as is
(`git send-email FILE`, `mutt -H FILE`), threaded under the cover letter (or, without one,
one message under each patch, in one mbox), to everyone the series went to, in the shape of the
project's seed mail: the cover's first lines quoted, the trailer, then per arch the evidence
(`/proc/version`, the LTO lines of `/proc/config.gz`) and a one-line summary.

When the series fails and bisecting it names a patch, the failure report instead: a message
under that patch, to its author and everyone it went to, saying what broke and how it was
found, with no trailer b4 could take."""

from __future__ import annotations

import email.policy
import email.utils
import re
import unicodedata
from email.message import EmailMessage

from harness.base.errors import UsageError
from harness.base.progress import duration
from harness.checks import LTO_GREP, Verdict
from harness.kernel.model import lto_title
from harness.mail.series import Mail, Series, Subject
from harness.reports.tested_by import culprit_of, evidence, excerpt_lines, items, steps_table

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


def _recipients(mail: Mail, own: str, author: str = "") -> tuple[str, str]:
    """(To, Cc) of a reply to all: the author (`author`, else the sender), then everyone else
    it went to (the sender among them), each once and never the tester."""
    seen = {own.lower()}
    to: list[str] = []
    cc: list[str] = []
    for bucket, fields in ((to, (author or mail.sender,)), (cc, (mail.sender, mail.to, mail.cc))):
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


def _addressed(mail: Mail, name: str, addr: str, author: str = "") -> EmailMessage:
    """A reply to `mail` from the tester, to its author (`author`, else its sender) and
    everyone else it went to, threaded under it when it has a Message-ID; the body is the
    caller's."""
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = email.utils.formataddr((name, addr))
    to, cc = _recipients(mail, addr, author)
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


# -- the failure report: when a series fails and bisecting it names a patch ------------------

# A line b4 reads as a trailer in a reply (LoreMessage.find_trailers: any line, indented or
# not, shaped `Name: value`; a person's when the value has an address): consoles and checks'
# evidence print such lines (`CPU: 0 PID: 1 …`, `RIP: 0010:…`, a commit's `Fixes:` quoted),
# so evidence stands behind "| ", and any other line of that shape does too.
_TRAILER_SHAPE = re.compile(r"^\s*\w\S+:\s+\S")


def _inert(line: str) -> str:
    """The line as it is, or, shaped like a trailer, behind "| " at its indentation."""
    if not _TRAILER_SHAPE.match(line):
        return line
    text = line.lstrip()
    return f"{line[:len(line) - len(text)]}| {text}"


def _lto_of(label: str, arch: str) -> str:
    """The LTO mode a kernel's label names (x86_64-thin, arm64-full+variant-prebuilt)."""
    return re.split(r"[-+]", label.removeprefix(f"{arch}-"))[0]


def failure_body(mail: Mail, findings: list[dict[str, object]], facts: dict[str, object]) -> str:
    """What broke, its evidence, the base and config, how bisecting found this patch, and the
    command that reproduces it: a report, with no trailer of any kind (b4 takes nothing)."""
    who = email.utils.parseaddr(mail.author)[0] or email.utils.parseaddr(mail.author)[1]
    info = facts.get("series")
    mailed = info if isinstance(info, dict) else {}
    lines = [f"Hi {who}," if who else "Hello,", "",
             "ltoboot built this series with Clang LTO, booted it in QEMU and checked",
             "the kernel: a check fails, and bisecting the series' patches names this",
             "patch. This is a failure report, not a Tested-by."]
    if not mail.message_id:
        lines.append("The patch came without a Message-ID: this report is not threaded "
                     "under it.")
    for f in findings:
        arch = str(f["arch"])
        lto = _lto_of(str(f["label"]), arch)
        checks = ", ".join(items(f, "checks"))
        lines += ["", f"On {arch} ({lto_title(lto)}, {facts.get('compiler') or 'clang'}), "
                      f"{checks} fails:", f"  {f['said']}"]
        summary, excerpt = evidence(f)
        if summary:
            lines += ["", f"What fails with the patch applied: {summary}"]
            lines += [f"  | {e}" for e in excerpt_lines(excerpt)]
        base = str(f.get("base") or mailed.get("base_described") or "?")
        commit = str(f.get("base_commit") or mailed.get("base") or "")[:12]
        config = items(f, "config")
        lines += ["", f"Applied onto {base}" + (f" ({commit})" if commit else "")
                  + (", built with this config:" if config else ".")]
        lines += [f"  | {c}" for c in config]
        if table := steps_table(f):
            lines += ["", "How it was found: the head booted again, the base, then the",
                      "series' first patches, each kernel built from the nearest cached build:"]
            lines += [f"  {row}" for row in table]
            if f.get("seconds"):
                lines.append(f"Bisected in {duration(float(str(f['seconds'])))}.")
        if f.get("reproduce"):
            lines += ["", "To reproduce it with ltoboot:", f"  $ {f['reproduce']}"]
    # line by line: a sentence or summary of several lines is fenced on each of them
    return "\n".join(_inert(line) for text in lines for line in text.split("\n")) + "\n"


def failure_report(series: Series, findings: list[dict[str, object]], facts: dict[str, object],
                   name: str, addr: str) -> str:
    """The reply a tester sends when the series fails and bisecting names a patch: a message
    to each culprit patch (findings of several arches naming one patch share it), threaded
    under it, to its author (who wrote it, as git am takes it: an in-body From) and everyone
    it went to; several are an mbox, as `reply` writes
    them. Headers RFC 2047 encoded, the body 8bit."""
    check_identity(name, addr)
    named: dict[int, list[dict[str, object]]] = {}
    for f in findings:
        if (patch := culprit_of(f)) is not None:
            named.setdefault(int(patch["index"]), []).append(f)
    assert named, "no culprit named: no failure report"
    messages = []
    for index, found in sorted(named.items()):
        mail = series.patches[index - 1]  # patches 1..index applied make the culprit's step
        messages.append(_with_body(_addressed(mail, name, addr, mail.author),
                                   failure_body(mail, found, facts)))
    return _one_or_mbox(messages)
