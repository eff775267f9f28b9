"""Console logging for the `reel` command: one line per record, no tracebacks (see prefect-logging.yml)."""

from __future__ import annotations

import logging
from pathlib import Path

PREFECT_LOGGING_YML = Path(__file__).with_name("prefect-logging.yml")


class OneLineFilter(logging.Filter):
    """Keep the record, drop its traceback and everything after the message's first line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.exc_text:
            record.exc_info, record.exc_text = None, None
        msg = record.getMessage()
        if "\n" in msg:
            record.msg, record.args = msg.split("\n", 1)[0].rstrip() + " [...]", None
        return True
