"""Signatures of what workers send each other, and of their requests of each other's views."""

from airkafka_app.contract.signing import headers, peer_signature, peer_verified, verified

KEY = "cluster-key"


def test_a_signed_record_verifies_only_on_its_topic_with_its_key_and_value():
    signed = headers(KEY, "app-internal", b"t1", b'{"report": {}}')
    assert verified(KEY, "app-internal", b"t1", b'{"report": {}}', signed)
    assert not verified(KEY, "app-control", b"t1", b'{"report": {}}', signed)  # another kind
    assert not verified(KEY, "app-internal", b"t2", b'{"report": {}}', signed)
    assert not verified(KEY, "app-internal", b"t1", b'{"report": {"x": 1}}', signed)
    assert not verified("other-key", "app-internal", b"t1", b'{"report": {}}', signed)


def test_an_unsigned_record_or_a_doubled_signature_is_refused_and_without_a_key_all_pass():
    signed = headers(KEY, "t", b"k", b"v")
    assert not verified(KEY, "t", b"k", b"v", [])
    assert not verified(KEY, "t", b"k", b"v", signed + signed)
    assert not verified(KEY, "t", b"k", b"v", [("airkafka-mac", "text")])
    assert headers("", "t", b"k", b"v") == [] and verified("", "t", b"k", b"v", None)


def test_a_peer_request_verifies_for_its_method_and_path_within_the_window():
    signature = peer_signature(KEY, "GET", "/tasks/?queue=default", now=1000.0)
    assert peer_verified(KEY, "GET", "/tasks/?queue=default", signature, now=1010.0)
    assert not peer_verified(KEY, "POST", "/tasks/?queue=default", signature, now=1010.0)
    assert not peer_verified(KEY, "GET", "/stats/", signature, now=1010.0)
    assert not peer_verified(KEY, "GET", "/tasks/?queue=default", signature, now=1100.0)  # replayed later
    assert not peer_verified("", "GET", "/tasks/?queue=default", signature, now=1000.0)
    assert not peer_verified(KEY, "GET", "/x", "garbage", now=1000.0)
