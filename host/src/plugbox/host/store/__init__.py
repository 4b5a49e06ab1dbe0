"""Run history and per-job scheduler state: the :class:`RunStore` interface and its two backends.

``SqlRunStore("sqlite:///state/plugbox.db")`` (or ``"postgresql://…"``) is what the host uses;
:class:`MemoryRunStore` has the same semantics for tests and the harness.
"""

from plugbox.host.store.base import RunExistsError as RunExistsError
from plugbox.host.store.base import RunLookupError as RunLookupError
from plugbox.host.store.base import RunStore as RunStore
from plugbox.host.store.base import StoreClosedError as StoreClosedError
from plugbox.host.store.base import StoreUnavailableError as StoreUnavailableError
from plugbox.host.store.dialect import UnsupportedDatabaseError as UnsupportedDatabaseError
from plugbox.host.store.dialect import redact as redact
from plugbox.host.store.memory import MemoryRunStore as MemoryRunStore
from plugbox.host.store.migrations import LATEST_VERSION as LATEST_VERSION
from plugbox.host.store.migrations import SchemaTooNewError as SchemaTooNewError
from plugbox.host.store.records import JobStats as JobStats
from plugbox.host.store.records import JobTally as JobTally
from plugbox.host.store.records import PauseState as PauseState
from plugbox.host.store.records import RunCursor as RunCursor
from plugbox.host.store.records import RunRecord as RunRecord
from plugbox.host.store.records import RunStatus as RunStatus
from plugbox.host.store.records import Trigger as Trigger
from plugbox.host.store.sql import SqlRunStore as SqlRunStore
from plugbox.host.store.webhooks import DeliveryLog as DeliveryLog
from plugbox.host.store.webhooks import WebhookAttempt as WebhookAttempt
from plugbox.host.store.webhooks import WebhookDelivery as WebhookDelivery

__all__ = [
    "LATEST_VERSION",
    "DeliveryLog",
    "JobStats",
    "JobTally",
    "MemoryRunStore",
    "PauseState",
    "RunCursor",
    "RunExistsError",
    "RunLookupError",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "SchemaTooNewError",
    "SqlRunStore",
    "StoreClosedError",
    "StoreUnavailableError",
    "Trigger",
    "UnsupportedDatabaseError",
    "WebhookAttempt",
    "WebhookDelivery",
    "redact",
]
