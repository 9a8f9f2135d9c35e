"""Data crisismon ships: sample feeds, lexicons, configs and the trained sentiment model."""

from pathlib import Path

SEEDS_DIR = Path(__file__).resolve().parent
