from airkafka_app.worker.runners.process import MAX_LINE_BYTES, OutputTail


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
