"""The server-sent events decoder (``assistants.providers.sse``) on hand-written byte streams."""

from __future__ import annotations

import pytest

from assistants.providers.sse import ServerSentEvent, SSEDecoder


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def every_split(body: bytes) -> list[list[ServerSentEvent]]:
    """The events of ``body`` fed whole, byte by byte, and cut in two at every position."""
    results = [decode(body), decode(*(body[i : i + 1] for i in range(len(body))))]
    results += [decode(body[:cut], body[cut:]) for cut in range(len(body) + 1)]
    return results


def test_one_event_per_blank_line() -> None:
    assert decode(b'data: {"a": 1}\n\ndata: two\n\n') == [
        ServerSentEvent('{"a": 1}'),
        ServerSentEvent("two"),
    ]


def test_data_lines_are_joined_with_newlines() -> None:
    assert decode(b"data: first\ndata: second\ndata:\ndata: fourth\n\n") == [
        ServerSentEvent("first\nsecond\n\nfourth")
    ]


def test_event_field_names_the_type_of_that_event_only() -> None:
    body = b"event: response.created\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\n"

    assert [(e.event, e.data) for e in decode(body)] == [
        ("response.created", "1"),
        ("message", "2"),
        ("message", "3"),
    ]


def test_id_is_kept_until_changed_and_ignored_with_nul() -> None:
    body = b"id: 7\ndata: a\n\ndata: b\n\nid: 8\x00\ndata: c\n\nid\ndata: d\n\n"

    assert [e.id for e in decode(body)] == ["7", "7", "7", ""]


def test_comments_retry_and_unknown_fields_are_ignored() -> None:
    body = b": keep-alive\n:\nretry: 3000\nfoo: bar\nDATA: upper\ndata: kept\n\n"

    assert decode(body) == [ServerSentEvent("kept")]


def test_only_one_space_after_the_colon_is_dropped() -> None:
    assert [e.data for e in decode(b"data:x\n\ndata:  two\n\ndata:\tt\n\n")] == [
        "x",
        " two",
        "\tt",
    ]


def test_field_without_colon_has_an_empty_value() -> None:
    # A bare "data" line is a data field with an empty value: the event is dispatched.
    assert decode(b"data\n\n") == [ServerSentEvent("")]
    assert decode(b"data:\n\n") == [ServerSentEvent("")]


def test_event_without_data_is_not_dispatched() -> None:
    body = b"event: ping\n\n: comment\n\nretry: 10\n\n\n\ndata: after\n\n"

    # Nor does its type leak into the next event.
    assert decode(body) == [ServerSentEvent("after")]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(newline: bytes) -> None:
    body = b"event: e\ndata: a\ndata: b\n\n: c\ndata: z\n\n".replace(b"\n", newline)

    for events in every_split(body):
        assert events == [ServerSentEvent("a\nb", "e"), ServerSentEvent("z")]


def test_mixed_line_endings_and_crlf_split_between_chunks() -> None:
    body = b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r"

    for events in every_split(body):
        assert events == [ServerSentEvent("a\nb\nc"), ServerSentEvent("d")]


def test_cr_then_lf_in_the_next_chunk_is_one_line_end() -> None:
    # "\r" | "\n" is one CRLF, not CR plus an empty line (which would dispatch early).
    assert decode(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [ServerSentEvent("a\nb")]


def test_unicode_line_separators_inside_data_are_not_line_ends() -> None:
    text = "x\u2028y\u2029z\x85w\x0bv\x0cu\x1cend ✓"
    body = f'data: {{"delta": "{text}"}}\n\n'.encode()

    for events in every_split(body):
        assert events == [ServerSentEvent(f'{{"delta": "{text}"}}')]


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert decode(b"data: a\xff\xfeb\xe2\x9c\n\n") == [ServerSentEvent("a\ufffd\ufffdb\ufffd")]


def test_multibyte_characters_split_between_chunks() -> None:
    body = "data: żółw ✓ 🐢\n\n".encode()

    for events in every_split(body):
        assert events == [ServerSentEvent("żółw ✓ 🐢")]


def test_byte_order_mark_is_skipped_once_at_the_start() -> None:
    body = b"\xef\xbb\xbfdata: a\n\n\xef\xbb\xbfdata: b\n\n"

    for events in every_split(body):
        # The second BOM starts a line named "\ufeffdata": an unknown field.
        assert events == [ServerSentEvent("a")]
    # Two bytes of a BOM are no BOM: they belong to the first line (an unknown field here).
    assert decode(b"\xef\xbb", b"data: c\n\n") == []
    assert decode(b"\xef", b"\xbb", b"\xbfdata: c\n\n") == [ServerSentEvent("c")]


def test_trailing_event_without_blank_line_is_dropped() -> None:
    # As the spec says (and as the OpenAI SDK's decoder does): an unfinished event is discarded.
    assert decode(b"data: a\n\ndata: b\n") == [ServerSentEvent("a")]
    assert decode(b"data: a\n\ndata: b") == [ServerSentEvent("a")]


def test_done_marker_is_plain_data() -> None:
    assert decode(b"data: [DONE]\n\n") == [ServerSentEvent("[DONE]")]


def test_long_line_over_many_chunks() -> None:
    payload = b"x" * 100_000
    chunks = [b"data: "] + [payload[i : i + 7] for i in range(0, len(payload), 7)] + [b"\n\n"]

    assert decode(*chunks) == [ServerSentEvent(payload.decode())]


def test_empty_chunks_change_nothing() -> None:
    assert decode(b"", b"data: a\r", b"", b"\n", b"", b"\n") == [ServerSentEvent("a")]
