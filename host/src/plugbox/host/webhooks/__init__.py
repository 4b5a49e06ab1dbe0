"""Failure (and success) webhooks: which runs to report, how to sign them, how to deliver them.

:mod:`.events` decides which events a finished run raises for which ``[[webhooks]]`` table,
:mod:`.signing` signs a body per the Standard Webhooks convention, and :class:`.Notifier` queues
deliveries in the run store and sends them from its own thread (docs/webhooks.md).
"""

from plugbox.host.webhooks.notifier import Notifier as Notifier

__all__ = ["Notifier"]
