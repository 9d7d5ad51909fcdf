#!/usr/bin/env python3
"""Compile the translation catalogs (locale/*/LC_MESSAGES/*.po → .mo) without GNU gettext.

Pure Python (polib, from PyPI), so a fresh machine needs no `msgfmt`. The .mo
files are committed; `tests/shelly_site/test_i18n.py` fails when one is out of
date with its .po. Usage: `python scripts/compile_messages.py` (or `make messages`,
which extracts the strings first).
"""

import sys
from pathlib import Path

import polib

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"


def catalogs():
    return sorted(LOCALE_DIR.glob("*/LC_MESSAGES/*.po"))


def compile_all() -> list[Path]:
    written = []
    for po_path in catalogs():
        po = polib.pofile(str(po_path))
        mo_path = po_path.with_suffix(".mo")
        po.save_as_mofile(str(mo_path))
        written.append(mo_path)
    return written


if __name__ == "__main__":
    for path in compile_all():
        print(f"compiled {path.relative_to(LOCALE_DIR.parent)}")
    sys.exit(0)
