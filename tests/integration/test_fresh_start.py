"""Fresh starts: a new broker, a worker that creates its topics, and a burst of commands at once
must publish every result, and log no error for what the Kafka client's retries mend. Before the
producer tracked its topics, 3 to 5 of 10 such starts here stopped publishing for good;
``bench/startup_soak.py`` repeats the run as often as asked.
"""

from scripts.fresh_start import fresh_start_run


def test_fresh_starts_publish_every_result(tmp_path):
    for run in range(2):
        result = fresh_start_run(tmp_path / f"run{run}", commands=440, malformed=10, timeout=60)
        assert not result.stalled, (
            f"run {run}: {result.ended}/{result.valid} terminal; see {result.log}\n{result.evidence}"
        )
        assert result.stopped_on_sigterm
        # A fresh broker's coordinator is elected within seconds: one warning, not a flood of errors.
        errors = [line for line in result.log.read_text().splitlines() if "[ERROR]" in line]
        assert not errors, errors[:10]
