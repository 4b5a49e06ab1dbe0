"""Who a job is: a root host's job reads the operator's files only as the run uid's "other" bits allow.

``dac-secret`` may read ``shared/`` (the test puts a readable file and a root-owned 0600 file
there). Landlock lets it open both; only the uid decides: as uid 0 without capabilities it would
still own — and read — the secret, as the run uid it is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from plugbox.sdk import JobContext, job
from plugbox.sdk import permissions as perms
from plugbox_hostile._attempt import attempt, report

SHARED = perms.Permissions(fs=perms.FsPermissions(mode="read", allow=("shared/",)))


@job("dac-secret", schedule="@daily", timeout="20s", permissions=SHARED)
def dac_secret(ctx: JobContext) -> dict[str, Any]:
    # The control: the grant works and the code really ran (a crash never passes for a block).
    readable = Path("shared/readable.txt").read_text()
    return report(
        {"uid": os.getuid(), "readable": readable},
        read_secret=attempt(lambda: Path("shared/secret.txt").read_text()),
    )


JOBS = [dac_secret]
