"""Sealed channel secrets: opened with the server's key only, and each sealed value opened once per key."""

from __future__ import annotations

import pytest

from mesh import credentials
from mesh.credentials import SEALED, seal, unseal

KEY = b"k" * 32


def test_a_sealed_secret_opens_with_its_key_and_a_clear_one_is_as_it_is() -> None:
    sealed = seal(KEY, "hook-secret")
    assert sealed.startswith(SEALED) and "hook-secret" not in sealed
    assert unseal(KEY, sealed) == "hook-secret"
    assert unseal(KEY, "plain") == "plain"


def test_a_secret_is_decrypted_once_however_many_notifications_open_it(monkeypatch: pytest.MonkeyPatch) -> None:
    sealed = seal(KEY, "once")
    opened: list[str] = []
    real = credentials._fernet

    def counting(key: bytes):  # type: ignore[no-untyped-def]
        fernet = real(key)

        class Counted:
            def decrypt(self, token: bytes) -> bytes:
                opened.append(token.decode())
                return fernet.decrypt(token)

        return Counted()

    monkeypatch.setattr(credentials, "_fernet", counting)
    assert [unseal(KEY, sealed) for _ in range(5)] == ["once"] * 5
    assert len(opened) == 1


def test_a_wrong_key_is_refused_every_time_never_remembered() -> None:
    sealed = seal(KEY, "mine")
    for _ in range(2):
        with pytest.raises(ValueError, match="does not open"):
            unseal(b"x" * 32, sealed)
    assert unseal(KEY, sealed) == "mine"
