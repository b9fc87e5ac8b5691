"""The sans-I/O core: every HTTP decision etagkit makes, from plain values.

ETags (RFC 9110 §8.8.3), preconditions (§13), Cache-Control and Vary (RFC 9111), HTTP-dates,
header access, conditional replies, the request exchange every face drives (``exchange``, ``steps``),
representation keys and stored records, the client's RFC 9111 rules and the audit rules of
``etagkit check``. Nothing here imports the cache, an adapter, a
framework, a socket or asyncio, and nothing reads the clock: time is always a parameter.
"""
