"""Hostile plugins for the attack suite: ``eve`` (jobs that attack at run time, one module per
class of attack, ``jobs_*.py``) and ``mallory`` (attacks at import time, during discovery)."""
