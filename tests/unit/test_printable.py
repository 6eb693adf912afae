"""Control characters from messages never reach a log line or a terminal raw."""

import logging

from airkafka_app.contract.printable import install_printable_logs, printable

HOSTILE = "t1\n2026-12-06 [ERROR] forged line\x1b[2J\x07\x9b31m"


def test_control_characters_are_written_as_escapes_and_newlines_only_where_lines_are_wanted():
    assert printable(HOSTILE) == "t1\\x0a2026-12-06 [ERROR] forged line\\x1b[2J\\x07\\x9b31m"
    assert printable("a\nb\tc\x1b", lines=True) == "a\nb\tc\\x1b"
    assert printable("plain é ü 日本") == "plain é ü 日本"


def test_a_log_line_of_a_hostile_id_stays_one_line_without_escapes(caplog):
    factory = logging.getLogRecordFactory()
    install_printable_logs()
    try:
        with caplog.at_level(logging.INFO):
            logging.getLogger("airkafka_app.test").info("task %s duplicate ignored", HOSTILE)
    finally:
        logging.setLogRecordFactory(factory)
    (line,) = [r.getMessage() for r in caplog.records]
    assert "\n" not in line and "\x1b" not in line and "\x9b" not in line and "forged line" in line
