"""`imgshard audit`: integrity, the mixing proof and its pictures, for any ImageNet-schema
shards. command.py is the CLI, run.py the audit itself (README's layout table has the rest)."""

from imgshard.audit.command import main
from imgshard.audit.errors import AuditError
from imgshard.audit.run import AuditResult, audit
from imgshard.audit.verdict import THRESHOLDS, ReaderModel, default_readers, webdataset_readers

__all__ = [
    "THRESHOLDS",
    "AuditError",
    "AuditResult",
    "ReaderModel",
    "audit",
    "default_readers",
    "main",
    "webdataset_readers",
]
