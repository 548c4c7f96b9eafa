"""The resolve path's harness, for every test here."""

from tests.mesh.approvals.harness import path  # noqa: F401
