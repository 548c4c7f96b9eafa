"""``airlock token``: prints a JWT that a server on the same AIRLOCK_HOME accepts."""

from __future__ import annotations

import stat
from pathlib import Path

import jwt
import pytest

from gateway.cli import main
from mesh.auth import TokenVerifier


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AIRLOCK_HOME", str(tmp_path))
    for name in ("JWT_SECRET", "JWT_AUDIENCE", "JWT_ISSUER"):
        monkeypatch.delenv(f"AIRLOCK_{name}", raising=False)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["token", *args]) == 0
    out = capsys.readouterr().out.strip()
    assert out.count(".") == 2 and "\n" not in out
    return out


def test_token_verifies_with_the_home_secret(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = run(capsys, "--sub", "bob", "--role", "approver")
    secret_file = home / "jwt.secret"
    assert secret_file.exists()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    principal = TokenVerifier(secret=secret_file.read_bytes().strip()).verify(token)
    assert principal.sub == "bob"
    assert principal.tenant == "default"
    assert principal.roles == frozenset({"approver"})
    claims = jwt.decode(token, secret_file.read_bytes().strip(), algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 3600


def test_second_call_reuses_the_secret(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = run(capsys, "--sub", "bob", "--role", "approver")
    secret = (home / "jwt.secret").read_bytes()
    second = run(capsys, "--sub", "carol", "--role", "admin", "--role", "approver", "--tenant", "acme")
    assert (home / "jwt.secret").read_bytes() == secret
    verifier = TokenVerifier(secret=secret.strip())
    assert verifier.verify(first).sub == "bob"
    carol = verifier.verify(second)
    assert (carol.sub, carol.tenant, carol.roles) == ("carol", "acme", frozenset({"admin", "approver"}))


def test_ttl(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = run(capsys, "--sub", "bob", "--role", "approver", "--ttl", "90s")
    claims = jwt.decode(token, (home / "jwt.secret").read_bytes().strip(), algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 90
    token = run(capsys, "--sub", "bob", "--ttl", "15m")
    claims = jwt.decode(token, (home / "jwt.secret").read_bytes().strip(), algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 900


def test_default_role_is_agent(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = run(capsys, "--sub", "bot")
    principal = TokenVerifier(secret=(home / "jwt.secret").read_bytes().strip()).verify(token)
    assert principal.roles == frozenset({"agent"})


def test_home_is_created_when_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    nested = tmp_path / "a" / "b"
    monkeypatch.setenv("AIRLOCK_HOME", str(nested))
    monkeypatch.delenv("AIRLOCK_JWT_SECRET", raising=False)
    token = run(capsys, "--sub", "bob", "--role", "approver")
    assert TokenVerifier(secret=(nested / "jwt.secret").read_bytes().strip()).verify(token).sub == "bob"


def test_explicit_secret_wins_and_writes_no_file(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = run(capsys, "--sub", "bob", "--role", "admin", "--jwt-secret", "s3cret-s3cret-s3cret-s3cret-s3cret!")
    assert not (home / "jwt.secret").exists()
    assert TokenVerifier(secret=b"s3cret-s3cret-s3cret-s3cret-s3cret!").verify(token).is_admin


def test_audience_and_issuer(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = run(capsys, "--sub", "bob", "--role", "approver", "--audience", "airlock", "--issuer", "me")
    secret = (home / "jwt.secret").read_bytes().strip()
    assert TokenVerifier(secret=secret, audience="airlock", issuer="me").verify(token).sub == "bob"


@pytest.mark.parametrize(
    "args",
    [
        ["--role", "approver"],
        ["--sub", "bob", "--role", "root"],
        ["--sub", "bob", "--ttl", "soon"],
        ["--sub", "bob", "--ttl", "-5s"],
    ],
)
def test_bad_arguments_exit_with_usage(home: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["token", *args])
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_serve_accepts_the_printed_token(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import build_parser
    from gateway.settings import make_verifier

    token = run(capsys, "--sub", "bob", "--role", "approver")
    verifier = make_verifier(build_parser().parse_args(["serve", "--auth", "jwt"]))
    assert verifier is not None
    assert verifier.verify(token).sub == "bob"


def test_token_names_its_home_and_warns_only_when_it_makes_the_secret(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "--sub", "bob"]) == 0
    first = capsys.readouterr().err
    assert f"using AIRLOCK_HOME={home.resolve()}" in first
    assert "warning: created a new key" in first and str((home / "jwt.secret").resolve()) in first
    assert main(["token", "--sub", "bob"]) == 0
    second = capsys.readouterr().err
    assert f"using AIRLOCK_HOME={home.resolve()}" in second and "warning" not in second


def test_the_start_banner_names_an_airlock_command_that_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.serve import command_path

    script = tmp_path / ".venv" / "bin" / "airlock"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", [".venv/bin/airlock", "serve"])
    assert command_path() == ".venv/bin/airlock"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # started by its full path from a directory it is not under: the full path
    monkeypatch.setattr("sys.argv", [str(script), "serve"])
    assert command_path() == str(script.resolve())
    (tmp_path / "bin").mkdir()
    on_path = tmp_path / "bin" / "airlock"
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert command_path() == "airlock"
