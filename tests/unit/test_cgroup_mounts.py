from airkafka_app.worker.runners.containment import slow_migrations

HYBRID = """\
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw{v2}
42 31 0:39 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
"""


def test_a_cgroup2_mount_without_favordynmods_is_named_with_the_remedy():
    why = slow_migrations(HYBRID.format(v2=",nsdelegate"))
    assert why is not None and "/sys/fs/cgroup/unified" in why and "favordynmods" in why
    assert slow_migrations(HYBRID.format(v2=",nsdelegate,favordynmods")) is None
    assert slow_migrations(HYBRID.splitlines()[1]) is None  # no cgroup2: the subreaper, no moves
