"""The local console: a web page where a demo's visitor picks who they are, types
commands in the group or a private chat, and clicks the same cards — a platform like
WeCom or DingTalk, built from the same neutral events and cards. It lets anyone act as
anyone, so it is served only when enabled (``shuangsui demo`` does) and to loopback."""
