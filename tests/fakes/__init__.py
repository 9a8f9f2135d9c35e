"""Test doubles that speak the real protocols: loopback servers, not mocks."""
