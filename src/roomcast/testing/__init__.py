"""Test a roomcast app with no network: `TestClient` talks to it over an in-memory transport."""

from ._client import Message as Message
from ._client import TestClient as TestClient
from ._conformance import BackendConformance as BackendConformance

__all__ = ["BackendConformance", "Message", "TestClient"]
