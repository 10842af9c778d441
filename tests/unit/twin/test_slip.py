"""SLIP codec: escapes, split delivery and line noise."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from twin import slip


def test_escapes_end_and_esc_bytes() -> None:
    assert slip.encode(b"\xc0\xdb") == b"\xc0\xdb\xdc\xdb\xdd\xc0"


def test_decode_handles_escape_that_looks_like_an_end_escape() -> None:
    # Payload DB DC must not come back as C0.
    assert slip.Decoder().feed(slip.encode(b"\xdb\xdc")) == [b"\xdb\xdc"]


@given(st.lists(st.binary(min_size=1, max_size=64), max_size=5), st.integers(1, 7))
def test_round_trip_in_arbitrary_pieces(payloads: list[bytes], step: int) -> None:
    stream = b"".join(slip.encode(p) for p in payloads)
    decoder = slip.Decoder()
    frames: list[bytes] = []
    for i in range(0, len(stream), step):
        frames += decoder.feed(stream[i : i + step])
    assert frames == payloads


def test_noise_before_and_between_frames_is_dropped_or_isolated() -> None:
    decoder = slip.Decoder()
    frames = decoder.feed(b"garbage" + slip.encode(b"one") + b"noise" + slip.encode(b"two"))
    # Noise after a frame becomes a frame of its own (the loader ignores it);
    # the real frames arrive intact.
    assert frames[0] == b"one"
    assert frames[-1] == b"two"
    assert b"garbage" not in frames
