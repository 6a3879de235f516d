"""DingTalk (钉钉): robot messages over HTTP or Stream, interactive cards, the OpenAPI
client and sender, and event-subscription crypto (PROTOCOLS.md §C)."""
