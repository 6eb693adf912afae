"""Text from messages (ids, details, reasons) made safe to print: a control character in a task id
could end a log line early, forge the next one, or drive the operator's terminal with escape
sequences. Faust-free: both command lines use it."""

from __future__ import annotations

import logging
import re

# C0 controls but tab and newline, DEL, and the C1 controls (ESC's eight-bit forms among them).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _escaped(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def printable(text: object, *, lines: bool = False) -> str:
    """``text`` with control characters written as ``\\xNN``; newlines too unless ``lines``."""
    return (_CONTROL if lines else _CONTROL_OR_NEWLINE).sub(_escaped, str(text))


class _PrintableRecord(logging.LogRecord):
    def getMessage(self) -> str:  # noqa: N802 (logging's name)
        return printable(super().getMessage())


def install_printable_logs() -> None:
    """Every log record's message on one line, without raw control characters, whatever its
    arguments hold; a traceback is the formatter's, below it, and stays as it is."""
    logging.setLogRecordFactory(_PrintableRecord)
