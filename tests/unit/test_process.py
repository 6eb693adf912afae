import asyncio
import os
import time

from airkafka_app.runners.process import MAX_LINE_BYTES, OutputTail, run_process


def test_lines_reach_on_line_whole_and_the_last_one_without_newline():
    lines: list[bytes] = []
    finished = asyncio.run(run_process(["sh", "-c", "printf 'a\\nbb\\nc'"], on_line=lines.append))
    assert (finished.returncode, lines) == (0, [b"a\n", b"bb\n", b"c"])


def test_a_line_split_across_reads_is_one_line():
    lines: list[bytes] = []
    tail = OutputTail(lines.append)
    for chunk in (b"Workload fin", b"ished {}\nnext"):
        tail.feed(chunk)
    tail.end()
    assert lines == [b"Workload finished {}\n", b"next"]


def test_a_line_longer_than_the_bound_comes_in_pieces():
    lines: list[bytes] = []
    tail = OutputTail(lines.append)
    tail.feed(b"x" * (MAX_LINE_BYTES + 10))
    tail.end()
    assert [len(line) for line in lines] == [MAX_LINE_BYTES, 10]


def test_a_program_that_cannot_start_raises_oserror(tmp_path):
    try:
        asyncio.run(run_process([str(tmp_path / "missing")]))
    except OSError:
        return
    raise AssertionError("no OSError")


def test_cancel_kills_the_group_and_reaps_the_process(tmp_path):
    marker = tmp_path / "pids"

    async def cancel_once_started() -> None:
        run = asyncio.ensure_future(run_process(["sh", "-c", f"sleep 30 & echo $$ $! > {marker}; wait"]))
        while not marker.exists() or not marker.read_text().strip():
            await asyncio.sleep(0.02)
        run.cancel()
        try:
            await run
        except asyncio.CancelledError:
            pass
        await asyncio.sleep(0.3)  # the loop reaps the killed shell

    asyncio.run(cancel_once_started())
    shell, sleeper = (int(pid) for pid in marker.read_text().split())
    deadline = time.monotonic() + 3
    while os.path.exists(f"/proc/{sleeper}") and "\nState:\tZ" not in open(f"/proc/{sleeper}/status").read():
        assert time.monotonic() < deadline, "the background sleep survived the cancel"
        time.sleep(0.05)
    # Reaped by the worker, not left a zombie: its pid is gone.
    assert not os.path.exists(f"/proc/{shell}")
