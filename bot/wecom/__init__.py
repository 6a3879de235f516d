"""WeCom (企业微信): callbacks in, API calls out, translated to and from the neutral
conversation types of ``bot.chat`` at this edge."""
