"""The platform-neutral conversation: one inbound event type, the intake that takes
events in, the pipeline that processes them, and the dispatcher that sends the
messages of ``bot.outbound`` out. Platforms (``bot.wecom``, ``bot.dingtalk``, the
console) translate at the edge."""
