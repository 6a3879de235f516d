"""Directory import (SPEC §3): CSV or XLSX, checked whole, applied all-or-nothing."""

from storage.importing.apply import Change, Outcome, import_file
from storage.importing.kinds import KINDS

__all__ = ["KINDS", "Change", "Outcome", "import_file"]
