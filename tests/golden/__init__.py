"""Golden replays: small recorded feeds whose expected outputs are checked in.

Each folder holds ``feed.jsonl``, ``config.toml`` and ``expected/`` (``alerts.jsonl``,
``mentions.jsonl``, ``incidents.jsonl``, ``deliveries.jsonl``). ``test_golden.py``
replays each and compares byte for byte; a change in output is a reviewed diff:

    python -m tests.golden.regen            # every case
    python -m tests.golden.regen crisis     # one case
"""
