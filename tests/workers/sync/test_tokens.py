"""Stream tokens: encoding, parsing, refusals and clamping."""

from __future__ import annotations

import pytest

from workers.errors import MatrixError
from workers.sync.tokens import STREAMS, StreamToken


def test_round_trip() -> None:
    token = StreamToken(5, 4, 3, 2, 1, 7, 9)
    assert token.encode() == "s5_4_3_2_1_7_9"
    assert StreamToken.parse(token.encode()) == token


def test_one_position_per_stream() -> None:
    assert len(StreamToken().positions()) == len(STREAMS) == 7


def test_short_token_reads_missing_streams_as_zero() -> None:
    assert StreamToken.parse("s12") == StreamToken(events=12)
    assert StreamToken.parse("s12_3") == StreamToken(events=12, account_data=3)


@pytest.mark.parametrize(
    "text",
    ["", "garbage", "s", "s1_", "t1-2", "s1_-2", "s--1", "s1_2_3_4_5_6_7_8", "s1.5", "S1", "s1_x", "s" + "9" * 30],
)
def test_garbage_is_invalid_param(text: str) -> None:
    with pytest.raises(MatrixError) as info:
        StreamToken.parse(text)
    assert (info.value.status, info.value.errcode) == (400, "M_INVALID_PARAM")


def test_with_events_and_clamp() -> None:
    token = StreamToken(10, 10, 0, 0, 0, 0, 0)
    assert token.with_events(3).events == 3
    assert token.with_events(-5).events == -5  # backfilled history
    assert StreamToken.parse(token.with_events(-5).encode()) == token.with_events(-5)
    assert StreamToken(50, 2, 9, 0, 0, 0, 0).clamped_to(token) == StreamToken(10, 2, 0, 0, 0, 0, 0)
