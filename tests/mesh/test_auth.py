"""JWT verification: required claims, pinned algorithms, key confusion, expiry, audience and issuer."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mesh.auth import AuthError, TokenVerifier, issue_token
from tests.conftest import SECRET


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {"sub": "alice", "tenant": "acme", "roles": ["approver"], "iat": now, "exp": now + 600}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def hs(body: dict[str, Any], secret: bytes = SECRET) -> str:
    return jwt.encode(body, secret, algorithm="HS256")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(body: dict[str, Any], alg: str = "none") -> str:
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(body).encode())}."


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# --- HS256 -------------------------------------------------------------------------------------------------


def test_valid_token_yields_principal() -> None:
    principal = TokenVerifier(secret=SECRET).verify(hs(claims(roles=["approver", "admin"])))
    assert principal.sub == "alice"
    assert principal.tenant == "acme"
    assert principal.roles == frozenset({"approver", "admin"})
    assert principal.can_resolve and principal.is_admin


def test_issue_token_round_trip() -> None:
    token = issue_token(SECRET, "bob", tenant="t1", roles=["agent"], ttl_s=60)
    body = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert body["exp"] - body["iat"] == 60
    assert set(body) >= {"sub", "tenant", "roles", "iat", "exp"}
    principal = TokenVerifier(secret=SECRET).verify(token)
    assert (principal.sub, principal.tenant, principal.roles) == ("bob", "t1", frozenset({"agent"}))


@pytest.mark.parametrize("missing", ["sub", "tenant", "roles", "iat", "exp"])
def test_required_claims(missing: str) -> None:
    body = claims()
    del body[missing]
    with pytest.raises(AuthError):
        TokenVerifier(secret=SECRET).verify(hs(body))


@pytest.mark.parametrize(
    "changes",
    [
        {"sub": ""},
        {"sub": 5},
        {"tenant": ""},
        {"tenant": ["acme"]},
        {"roles": [1, 2]},
        {"roles": {"approver": True}},
        {"exp": "tomorrow"},
        {"iat": "yesterday"},
        {"iat": str(int(time.time()))},
        {"nbf": "0"},
        {"exp": True},
        {"roles": "agent"},
        {"roles": ["superuser"]},
        {"roles": ["agent", "root"]},
        {"roles": []},
    ],
)
def test_bad_claim_values(changes: dict[str, Any]) -> None:
    with pytest.raises(AuthError):
        TokenVerifier(secret=SECRET).verify(hs(claims(**changes)))


def test_roles_as_list() -> None:
    principal = TokenVerifier(secret=SECRET).verify(hs(claims(roles=["agent", "approver"])))
    assert principal.roles == frozenset({"agent", "approver"})


def test_expired_token_refused() -> None:
    now = int(time.time())
    with pytest.raises(AuthError):
        TokenVerifier(secret=SECRET).verify(hs(claims(iat=now - 100, exp=now - 1)))


def test_wrong_secret_refused() -> None:
    with pytest.raises(AuthError):
        TokenVerifier(secret=SECRET).verify(hs(claims(), b"another-secret-0123456789abcdef0123"))


def test_tampered_payload_refused() -> None:
    header, _, signature = hs(claims()).split(".")
    forged = b64(json.dumps(claims(roles=["admin"], sub="mallory")).encode())
    with pytest.raises(AuthError):
        TokenVerifier(secret=SECRET).verify(f"{header}.{forged}.{signature}")


def test_tampered_signature_refused() -> None:
    token = hs(claims())
    head, _, sig = token.rpartition(".")
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    with pytest.raises(AuthError):
        TokenVerifier(secret=SECRET).verify(f"{head}.{flipped}")


@pytest.mark.parametrize("garbage", ["", "abc", "a.b", "a.b.c", "....", "Bearer x"])
def test_garbage_refused(garbage: str) -> None:
    with pytest.raises(AuthError):
        TokenVerifier(secret=SECRET).verify(garbage)


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_refused(alg: str) -> None:
    with pytest.raises(AuthError):
        TokenVerifier(secret=SECRET).verify(unsigned(claims(), alg))


def test_alg_none_refused_by_public_key_verifier(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(AuthError):
        TokenVerifier(public_key=public_pem(rsa_key)).verify(unsigned(claims()))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_hmac_algorithms_refused(alg: str) -> None:
    with pytest.raises(AuthError):
        TokenVerifier(secret=SECRET).verify(jwt.encode(claims(), SECRET, algorithm=alg))


# --- public keys -------------------------------------------------------------------------------------------


def test_rs256_accepted(rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(claims(), private_pem(rsa_key), algorithm="RS256")
    principal = TokenVerifier(public_key=public_pem(rsa_key)).verify(token)
    assert principal.sub == "alice" and principal.tenant == "acme"


def test_es256_accepted(ec_key: ec.EllipticCurvePrivateKey) -> None:
    token = jwt.encode(claims(), private_pem(ec_key), algorithm="ES256")
    principal = TokenVerifier(public_key=public_pem(ec_key)).verify(token)
    assert principal.roles == frozenset({"approver"})


def test_rs256_from_other_key_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), private_pem(other), algorithm="RS256")
    with pytest.raises(AuthError):
        TokenVerifier(public_key=public_pem(rsa_key)).verify(token)


def test_es256_token_against_rsa_key_refused(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> None:
    token = jwt.encode(claims(), private_pem(ec_key), algorithm="ES256")
    with pytest.raises(AuthError):
        TokenVerifier(public_key=public_pem(rsa_key)).verify(token)


def test_hs_rs_key_confusion_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    """An HS256 token whose HMAC secret is the verifier's own public key PEM must not pass."""
    pem = public_pem(rsa_key)
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims(roles=["admin"])).encode())
    import hashlib
    import hmac

    signature = b64(hmac.new(pem.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest())
    with pytest.raises(AuthError):
        TokenVerifier(public_key=pem).verify(f"{header}.{payload}.{signature}")


def test_hs_rs_key_confusion_refused_for_ec_key(ec_key: ec.EllipticCurvePrivateKey) -> None:
    pem = public_pem(ec_key)
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims()).encode())
    import hashlib
    import hmac

    signature = b64(hmac.new(pem.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest())
    with pytest.raises(AuthError):
        TokenVerifier(public_key=pem).verify(f"{header}.{payload}.{signature}")


def test_secret_verifier_refuses_rs256(rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(claims(), private_pem(rsa_key), algorithm="RS256")
    with pytest.raises(AuthError):
        TokenVerifier(secret=SECRET).verify(token)


def test_public_key_from_file(tmp_path: Any, rsa_key: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "pub.pem"
    path.write_text(public_pem(rsa_key))
    verifier = TokenVerifier.from_public_key_file(path)
    assert verifier.verify(jwt.encode(claims(), private_pem(rsa_key), algorithm="RS256")).sub == "alice"


def test_verifier_needs_exactly_one_key(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError):
        TokenVerifier()
    with pytest.raises(ValueError):
        TokenVerifier(secret=SECRET, public_key=public_pem(rsa_key))


# --- audience and issuer -----------------------------------------------------------------------------------


def test_audience_checked_when_configured() -> None:
    verifier = TokenVerifier(secret=SECRET, audience="airlock")
    assert verifier.verify(hs(claims(aud="airlock"))).sub == "alice"
    assert verifier.verify(hs(claims(aud=["other", "airlock"]))).sub == "alice"
    for bad in (claims(aud="other"), claims()):
        with pytest.raises(AuthError):
            verifier.verify(hs(bad))


def test_issuer_checked_when_configured() -> None:
    verifier = TokenVerifier(secret=SECRET, issuer="https://idp.example")
    assert verifier.verify(hs(claims(iss="https://idp.example"))).sub == "alice"
    for bad in (claims(iss="https://evil.example"), claims()):
        with pytest.raises(AuthError):
            verifier.verify(hs(bad))


def test_audience_and_issuer_via_issue_token() -> None:
    verifier = TokenVerifier(secret=SECRET, audience="airlock", issuer="me")
    token = issue_token(SECRET, "bob", roles=["admin"], audience="airlock", issuer="me")
    assert verifier.verify(token).sub == "bob"
    with pytest.raises(AuthError):
        verifier.verify(issue_token(SECRET, "bob", roles=["admin"], audience="airlock", issuer="you"))


def test_unconfigured_audience_does_not_reject_tokens_that_carry_one() -> None:
    assert TokenVerifier(secret=SECRET).verify(hs(claims(aud="anything"))).sub == "alice"


# --- header ------------------------------------------------------------------------------------------------


def test_verify_header() -> None:
    verifier = TokenVerifier(secret=SECRET)
    token = hs(claims())
    assert verifier.verify_header(f"Bearer {token}").sub == "alice"
    assert verifier.verify_header(f"bearer {token}").sub == "alice"
    for bad in (None, "", "Bearer", "Bearer   ", f"Basic {token}", token):
        with pytest.raises(AuthError):
            verifier.verify_header(bad)


def test_a_remembered_token_is_checked_again_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time()
    verifier = TokenVerifier(secret=SECRET)
    token = hs(claims(iat=int(now) - 10, exp=int(now) + 60))
    verifier.verify(token)
    decodes: list[str] = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decodes.append("x") or real_decode(*a, **k))
    verifier.verify(token)
    assert decodes == []
    monkeypatch.setattr(time, "time", lambda: now + 61)  # past its exp: PyJWT decides again
    verifier.verify(token)
    assert decodes == ["x"]


def test_a_remembered_token_is_not_decoded_again_and_a_tampered_one_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier = TokenVerifier(secret=SECRET)
    token = hs(claims())
    principal = verifier.verify(token)
    decodes: list[str] = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decodes.append("x") or real_decode(*a, **k))
    assert verifier.verify(token) == principal and decodes == []
    head, body, sig = token.split(".")
    with pytest.raises(AuthError):
        verifier.verify(f"{head}.{body}.{sig[:5]}{'B' if sig[5] == 'A' else 'A'}{sig[6:]}")  # a changed signature
    assert decodes == ["x"]


@pytest.mark.parametrize("token", ["\udcff\udcfe", "abc.déf.ghi"])
def test_a_token_that_is_not_ascii_is_refused_not_crashed_on(token: str) -> None:
    with pytest.raises(AuthError):
        TokenVerifier(secret=SECRET).verify(token)


async def test_undecodable_authorization_bytes_get_401_on_both_surfaces(airlock: Any) -> None:
    """aiohttp keeps bytes that are not UTF-8 as surrogates; they must be a 401, never a 500."""
    import asyncio

    for client, path, body in (
        (airlock.mesh_client, "/", b'{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"x"}}'),
        (airlock.gateway, "/messages/pending", b"{}"),
    ):
        host, port = client.server.host, client.server.port
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer \xff\xfe\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
            b"Connection: close\r\n\r\n" + body
        )
        await writer.drain()
        status_line = await reader.readline()
        writer.close()
        assert b" 401 " in status_line, (path, status_line)
