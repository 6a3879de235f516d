"""The platform-neutral conversation: one inbound event type, one outbound message
type, the pipeline that takes events in and the dispatcher that sends messages out.
Platforms (``bot.wecom``, ``bot.dingtalk``, the console) translate at the edge."""
