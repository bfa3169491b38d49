"""State keys: any ids, whatever their characters, split back into exactly themselves."""

from hypothesis import given
from hypothesis import strategies as st

from aggregates.state import SEP, Kind, join_parts, key, split_key, split_parts

IDS = st.text(alphabet=st.sampled_from(["a", "%", "1", "F", "2", "5", SEP, "é"]), max_size=8)


@given(st.lists(IDS, min_size=1, max_size=5))
def test_joined_ids_split_back_into_themselves(parts: list[str]) -> None:
    assert split_parts(join_parts(*parts)) == parts


@given(IDS, st.lists(IDS, max_size=4))
def test_a_key_gives_back_its_kind_owner_and_parts(owner: str, parts: list[str]) -> None:
    assert split_key(key(Kind.PIECE, owner, *parts)) == (Kind.PIECE, owner, parts)


def test_plain_ids_are_kept_as_they_are() -> None:
    assert key(Kind.PIECE, "owner@example.com", "c-1", 0, "u1") == SEP.join(
        ["p", "owner@example.com", "c-1", "0", "u1"]
    )
