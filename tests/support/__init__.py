"""What the tests share that is not a fixture: the fake platforms, the districts, the bot on
each fake and its people, the whole workflow. Fixtures live in the conftest.py files."""
