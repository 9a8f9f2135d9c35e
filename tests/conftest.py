"""Shared pytest setup: the real MQTT broker, a fresh PostgreSQL schema per test, and the
bundled sample day with the shipped config and models (tests/fixtures/)."""

pytest_plugins = ["tests.fixtures.broker", "tests.fixtures.pg", "tests.fixtures.sample_day"]
