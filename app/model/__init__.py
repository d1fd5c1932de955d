"""What the data is: input events, webhook configs, the internal records on Kafka, errors,
samples, and the URL rule a config must meet.

Pure pydantic models and the validation rules that belong to them. Imports nothing of
hookstream's outside this folder (no Faust, no aiohttp, no settings): every other layer
builds on it. The URL/SSRF rule (:mod:`app.model.url_policy`) lives here, not in the HTTP
edge, because a webhook config is only valid if its URLs pass it; the HTTP client checks it
again at send time.
"""
