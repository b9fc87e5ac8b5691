"""core.revalidation.hashed_304 answers exactly what conditional_response answers, or nothing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from etagkit.core.etag import generate_etag
from etagkit.core.headers import Fields
from etagkit.core.reply import conditional_response
from etagkit.core.revalidation import hashed_304

BODY = b'{"id": 1, "title": "Dune"}'
TAG = str(generate_etag(BODY))
WEAK_TAG = str(generate_etag(BODY, weak=True))

HEADERS = st.sampled_from(
    [
        (("Content-Type", "application/json"),),
        (("Content-Type", "application/json"), ("Set-Cookie", "a=1"), ("Vary", "Accept")),
        (("Cache-Control", "max-age=60"), ("Expires", "Thu, 01 Jan 2099 00:00:00 GMT"), ("X-A", "b")),
    ]
)
INM = st.sampled_from(
    [TAG, WEAK_TAG, TAG[1:], f"W/{TAG}", '"other"', f'"other", {TAG}', "*", f" {TAG}", TAG + ","]
)


@given(headers=HEADERS, inm=INM, weak=st.booleans(), algorithm=st.sampled_from(["sha256", "sha1"]))
def test_hashed_304_is_the_general_paths_304(
    headers: tuple[tuple[str, str], ...], inm: str, weak: bool, algorithm: str
) -> None:
    fast = hashed_304(BODY, inm, headers, weak, algorithm)  # type: ignore[arg-type]
    general = conditional_response(
        "GET",
        Fields({"if-none-match": inm}),
        200,
        headers,
        BODY,
        weak=weak,
        algorithm=algorithm,  # type: ignore[arg-type]
        set_cookie=True,
    )
    if fast is None:
        return  # the exchange evaluates it in full
    assert general.status == 304
    assert fast.reply == general
    assert fast.tally.status == 304 and fast.tally.bytes_saved == len(BODY)


def test_an_exact_tag_and_its_weak_form_are_answered() -> None:
    headers = (("Content-Type", "application/json"),)
    for inm in (TAG, f"W/{TAG}"):
        fast = hashed_304(BODY, inm, headers, False, "sha256")
        assert fast is not None and fast.reply.status == 304
        assert dict(fast.reply.headers)["ETag"] == TAG
    assert hashed_304(BODY, '"other"', headers, False, "sha256") is None
