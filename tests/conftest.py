"""Shared pytest setup: the real MQTT broker fixture."""

pytest_plugins = ["tests.fixtures.broker"]
