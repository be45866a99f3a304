"""The first real inputs a tester or lab brings, each a mistake found before anything is
built: output paths, URLs, tokens, waits, configs of another arch. Each is one line and exit
2; no secret is ever printed or saved; a harness bug leaves its traceback in the cache's logs,
readable by its owner alone, secrets redacted."""

from __future__ import annotations

import http.server
import math
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from harness.base import redaction
from harness.base.errors import InfraError, UsageError
from harness.faces import cli
from harness.kernel import obtain as obtain_module
from harness.runs import matrix, options, pipeline
from harness.runs.lava import export, job, server

TOKEN = "s3cr3t-T0KEN-xyz"


@pytest.fixture(autouse=True)
def nothing_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every case here must stop before a build: obtaining a kernel fails the test."""
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LAVA_TOKEN", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("a kernel was obtained: the mistake was found too late")

    monkeypatch.setattr(obtain_module, "obtain", refuse)
    monkeypatch.setattr(cli, "obtain", refuse)
    monkeypatch.setattr(pipeline, "check_kernels", refuse)
    monkeypatch.setattr(matrix, "run", refuse)


def one_line(capsys: pytest.CaptureFixture[str], argv: list[str], *words: str) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ltoboot: error: "), err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(("argv", "says"), [
    (["run", "--junit", "/missing/dir/j.xml"], "--junit /missing/dir/j.xml: cannot write"),
    (["run", "--junit", "/"], "is a directory"),
    (["lava", "run", "--junit", "/missing/j.xml"], "--junit"),
    (["matrix", "--json", "/missing/m.json"], "--json /missing/m.json"),
    (["matrix", "--json", "/tmp"], "is a directory"),
    (["tested-by", "--name", "T", "--email", "t@e.org", "--reply", "/missing/r.eml"],
     "--reply"),
    (["lava", "export", "--out", "/proc/xx"], "--out /proc/xx: cannot write there"),
    (["lava", "export", "--out", "/etc"], "not an empty directory"),
    (["lava", "export", "--out", "/tmp/x", "--artifact-url", "ftp://x/"], "not an http(s)"),
    (["lava", "export", "--out", "/tmp/x", "--artifact-url", "https://[::1/"], "not a URL"),
    (["lava", "export", "--out", "/tmp/x", "--artifact-url", "https://lab/dl?sig=abc"],
     "?query"),
    (["lava", "export", "--out", "/tmp/x", "--artifact-url", "https://lab/x/#frag"],
     "#fragment"),
    (["lava", "submit", "--server", "http://127.0.0.1:9/", "--artifact-url",
      "https://lab/x/"], "give --out DIR"),
    (["lava", "submit", "--server", "http://[::1/"], "--server: not a URL"),
    (["lava", "submit", "--server", "http://127.0.0.1:9/", "--wait", "nan"], "--wait"),
    (["lava", "submit", "--server", "http://127.0.0.1:9/", "--wait", "-5"], "--wait"),
    (["lava", "submit", "--server", "http://127.0.0.1:9/", "--wait", "inf"], "--wait"),
    (["tested-by", "--name", "Tess\nBcc: x@evil.org", "--email", "t@e.org"], "--name"),
    (["tested-by", "--name", "Tess", "--email", "a@x.org>"], "--email"),
    (["tested-by", "--name", "Tess", "--email", "no-at-sign"], "--email"),
])
def test_a_mistake_is_one_line_before_any_build(
        capsys: pytest.CaptureFixture[str], argv: list[str], says: str) -> None:
    one_line(capsys, argv, says)


def test_nothing_is_left_by_a_refused_output(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "out"
    d.mkdir()
    one_line(capsys, ["run", "--junit", str(d)], "is a directory")
    assert list(d.iterdir()) == []
    one_line(capsys, ["lava", "export", "--out", str(tmp_path / "new" / "jobs"),
                      "--artifact-url", "ftp://x/"], "not an http(s)")
    assert not (tmp_path / "new").exists()


def test_a_config_of_another_arch_is_refused_naming_both(tmp_path: Path) -> None:
    from harness.faces.cli_args import parser

    def specs(*argv: str) -> list[str]:
        return [s.arch for s in options.kernel_specs(vars(parser().parse_args(["run", *argv])))]

    cfg = tmp_path / "arm64.config"
    cfg.write_text("CONFIG_ARM64=y\nCONFIG_LTO_CLANG_THIN=y\n")
    with pytest.raises(UsageError, match=r"a \.config for arm64 \(CONFIG_ARM64=y\), not for "
                       "x86_64: give --arch arm64"):
        specs("--config", str(cfg))
    assert specs("--arch", "arm64", "--config", str(cfg)) == ["arm64"]
    neutral = tmp_path / "fragment.config"  # says no arch: taken for either
    neutral.write_text("CONFIG_PRINTK=y\n")
    assert specs("--config", str(neutral)) == ["arm64", "x86_64"]


def test_matrix_takes_a_base_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "x86.config"
    cfg.write_text("CONFIG_X86_64=y\n")
    one_line(capsys, ["matrix", "--arch", "arm64", "--config", str(cfg)],
             "a .config for x86_64")


# -- secrets ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [f"{TOKEN}\nmore", f"{TOKEN} more", f"{TOKEN}\x07x"])
def test_a_token_with_white_space_inside_is_refused_unseen(
        value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LAVA_TOKEN", value)
    line = one_line(capsys, ["lava", "submit", "--server", "http://127.0.0.1:9/"],
                    "LAVA_TOKEN", "not shown")
    assert TOKEN not in line


def test_a_token_is_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAVA_TOKEN", f"  {TOKEN}\n")
    assert server.token("default") == TOKEN


def test_credentials_in_the_server_url_are_refused_unseen(
        capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line(capsys, ["lava", "submit", "--server", "http://admin:PASSWORD@lab/"],
                    "user:password@", "not shown")
    assert "PASSWORD" not in line


class _Lab(http.server.BaseHTTPRequestHandler):
    """A stand-in for a LAVA server on loopback: answers what the test sets."""

    answers: ClassVar[dict[str, tuple[int, str, str]]] = {}
    seen: ClassVar[list[dict[str, str]]] = []

    def _answer(self) -> None:
        type(self).seen.append(dict(self.headers))
        code, ctype, body = next((v for k, v in self.answers.items() if k in self.path),
                                 (404, "text/plain", "no"))
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def lab() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Lab)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    _Lab.seen = []
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("answer", [
    (200, "text/html", "<html>Please log in</html>"),
    (200, "application/json", "[1, 2]"),
    (200, "application/json", '{"versio": "2023.01"}'),
])
def test_only_lava_passes_as_a_lava_server(lab: str, answer: tuple[int, str, str]) -> None:
    _Lab.answers = {"system/version": answer}
    with pytest.raises(InfraError, match="is not a LAVA server"):
        server.Server.connect(lab, None).version()


def test_malformed_job_ids_are_the_servers_fault(lab: str, tmp_path: Path) -> None:
    _Lab.answers = {"/jobs/": (201, "application/json", '{"job_ids": "abc"}')}
    path = tmp_path / "job.yaml"
    path.write_text("job_name: x\n")
    one = job.Job(SimpleNamespace(label="x86_64-thin"), "", path, (), "")  # type: ignore[arg-type]
    with pytest.raises(InfraError, match="not LAVA's list of numbers"):
        server.Server.connect(lab, None).submit(one)


def test_the_token_goes_as_lavas_header_and_nowhere_else(
        lab: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A failing submit: the token is sent (as LAVA's Token header, never Basic auth, even with
    a ~/.netrc for the host), and appears in no output and no file ltoboot writes."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / ".netrc").write_text("machine 127.0.0.1 login someone password netrc-pass\n")
    (home / ".netrc").chmod(0o600)
    monkeypatch.setenv("LAVA_TOKEN", f"{TOKEN}\n")
    for answer in [(401, "application/json", '{"detail": "bad token"}'),
                   (200, "text/html", f"<p>{TOKEN}</p>")]:
        _Lab.answers = {"system/version": answer}
        assert cli.main(["lava", "submit", "--server", lab]) == 2
    assert [h.get("Authorization") for h in _Lab.seen] == [f"Token {TOKEN}"] * 2
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
    for f in (tmp_path / "cache").rglob("*"):
        assert not f.is_file() or TOKEN.encode() not in f.read_bytes(), f


def test_a_crash_is_saved_in_the_cache_for_its_owner_alone_and_redacted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    redaction.hold(TOKEN)

    def bug(args: object) -> int:
        raise RuntimeError(f"InvalidHeader: 'Token {TOKEN}\\n'")

    monkeypatch.setitem(cli.COMMANDS, "coverage", bug)
    assert cli.main(["coverage"]) == 3
    err = capsys.readouterr().err
    assert TOKEN not in err and redaction.MASK in err
    crash = Path(err.split("traceback in ")[1].split(")")[0])
    assert crash.parent == tmp_path / "cache" / "logs"
    assert stat.S_IMODE(crash.stat().st_mode) == 0o600
    text = crash.read_text()
    assert "RuntimeError" in text and TOKEN not in text


def test_minutes_are_finite_and_positive() -> None:
    assert options.minutes("--wait", 1.5) == 1.5
    for bad in (0.0, -5.0, math.nan, math.inf):
        with pytest.raises(UsageError):
            options.minutes("--wait", bad)


def test_file_urls_are_what_lava_opens(tmp_path: Path) -> None:
    """LAVA opens urlparse(url).path as it is: no %-escapes for spaces or non-ASCII."""
    from urllib.parse import urlparse

    p = tmp_path / "my jobs" / "Jörg" / "bzImage"
    assert urlparse(export.file_url(p)).path == str(p)
    with pytest.raises(UsageError, match="'\\?' or '#'"):
        export.file_url(tmp_path / "a#b" / "bzImage")
