"""Faithful fakes of the chat platforms' servers, for scenario tests that drive the real bot against them."""
