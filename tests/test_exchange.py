"""The exchange itself (etagkit/core/exchange.py), without any face: its fast path for the common
revalidation answers exactly what the general §13.2.2 evaluation answers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from etagkit import ETag, Outcome, evaluate
from etagkit.core.exchange import Answer, Exchange, Request, Settings
from etagkit.core.headers import fields_of
from etagkit.core.records import StoredValidator

TAGS = st.builds(ETag, st.sampled_from(["a", "b", "xyz"]), weak=st.booleans())


def _if_none_match(tag: ETag) -> st.SearchStrategy[str]:
    same = [str(tag), f'W/"{tag.tag}"', f'"{tag.tag}"']
    return st.one_of(
        st.sampled_from([*same, "*", '"other"', f'"other", {tag}', f" {tag} ", "", "W/", str(tag) + ","]),
        st.text(max_size=12),
    )


@given(data=st.data(), tag=TAGS, method=st.sampled_from(["GET", "HEAD"]))
def test_the_stored_304_fast_path_agrees_with_evaluate(data: st.DataObject, tag: ETag, method: str) -> None:
    inm = data.draw(_if_none_match(tag))
    extra = data.draw(st.sampled_from([{}, {"If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}]))
    record = StoredValidator(tag, None, (("Cache-Control", "no-cache"), ("ETag", str(tag))), (), 42)
    fields = fields_of([("If-None-Match", inm), *extra.items()])
    for _ in range(2):  # the second time, the record's 304 comes from the fast path's memo
        step = Exchange(Settings(stored=True), Request(method, "/r", fields=fields), has_store=True).before(
            record
        )
        expected = evaluate(method, fields, etag=tag, exists=True)
        if expected is Outcome.NOT_MODIFIED:
            assert isinstance(step, Answer) and step.reply.status == 304
            assert step.reply.headers == (("Cache-Control", "no-cache"), ("ETag", str(tag)))
            assert step.tally.bytes_saved == 42 and step.tally.stored
        else:
            assert not isinstance(step, Answer) or step.reply.status != 304
