"""The pure steps of the flow: parse and join an event, build its payload, encode and sign the
request, decide the next retry, issue and verify feedback tokens.

Pure functions over :mod:`app.model`; they import nothing else of hookstream's, and neither
Faust nor aiohttp, so each is unit-tested without a broker or a network.
"""
