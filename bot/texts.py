"""Every sentence a person reads lives in ``templates/``; this module renders it.

A template file is a set of Jinja macros, one per message, e.g. ``templates/import.j2``
holds ``{% macro bad_date(value) %}…{% endmacro %}``; ``say("import", "bad_date",
value="2026-13-01")`` renders it.
"""

from functools import cache
from importlib.resources import files

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape


@cache
def environment() -> Environment:
    root = files("templates")
    return Environment(
        loader=FileSystemLoader(str(root)),
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),  # pages only
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def say(module: str, message: str, /, **values: object) -> str:
    """Render macro ``message`` of ``templates/<module>.j2`` with ``values``."""
    macro = getattr(environment().get_template(f"{module}.j2").module, message)
    return str(macro(**values)).strip()


def page(name: str, /, **values: object) -> str:
    """Render a whole template file (an HTML page, a card body)."""
    return environment().get_template(name).render(**values)
