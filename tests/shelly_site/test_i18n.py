"""French catalog: complete, compiled, consistent, and French pages show no English project string."""

import re
from datetime import timedelta
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.utils import timezone

from tests.dashboard.stories import configured_pump, cycles_at, running_since, user

BASE_DIR = Path(settings.BASE_DIR)
PO = BASE_DIR / "locale" / "fr" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
SOURCE_DIRS = ("collector", "configs", "dashboard", "alerts", "shelly_site", "templates")
PLACEHOLDER = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[sdfgr]")
LITERALS = [
    re.compile(r"""\{%\s*translate\s+"([^"]+)"(?:\s+as\s+\w+)?\s*%\}"""),
    re.compile(r"""\{%\s*translate\s+'([^']+)'(?:\s+as\s+\w+)?\s*%\}"""),
    re.compile(r"""\b(?:_|gettext|gettext_lazy|gettext_noop)\(\s*"((?:[^"\\\n]|\\.)+)"\s*\)"""),
]


def catalog():
    return polib.pofile(str(PO))


def test_every_project_string_has_a_french_translation():
    untranslated = [e.msgid for e in catalog() if not e.translated() or "fuzzy" in e.flags]
    assert untranslated == []


def test_translations_keep_the_placeholders_of_the_english_text():
    for entry in catalog():
        texts = [entry.msgstr] if not entry.msgid_plural else list(entry.msgstr_plural.values())
        for text in texts:
            assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(entry.msgid)), entry.msgid


def test_the_compiled_catalog_is_up_to_date():
    """Run `make messages` (or `python scripts/compile_messages.py`) after editing the .po."""
    compiled = {(e.msgid, e.msgid_plural): (e.msgstr, dict(e.msgstr_plural)) for e in polib.mofile(str(MO)) if e.msgid}
    source = {(e.msgid, e.msgid_plural): (e.msgstr, dict(e.msgstr_plural)) for e in catalog() if e.translated()}
    assert compiled == source


def test_every_marked_string_in_the_code_is_in_the_catalog():
    """A string marked for translation but not extracted: run `make messages`, then translate it."""
    known = {e.msgid for e in catalog()}
    missing = []
    for folder in SOURCE_DIRS:
        for path in (BASE_DIR / folder).rglob("*"):
            if path.suffix not in (".py", ".html") or "migrations" in path.parts:
                continue
            text = path.read_text()
            for pattern in LITERALS:
                for literal in pattern.findall(text):
                    literal = (
                        literal.encode().decode("unicode_escape").encode("latin-1").decode()
                        if "\\" in literal
                        else literal
                    )
                    if literal not in known:
                        missing.append(f"{path.relative_to(BASE_DIR)}: {literal}")
    assert missing == []


def visible_text(html: str) -> str:
    html = re.sub(r"<script.*?</script>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.mark.django_db
def test_french_pages_show_no_english_project_string(client):
    now = timezone.now()
    pump = configured_pump(name="Pompe P1")
    cycles_at(pump, [now - timedelta(minutes=50)], minutes=10)
    running_since(pump, now - timedelta(minutes=5))
    client.force_login(user("chef", staff=True))
    english = {
        e.msgid
        for e in catalog()
        if e.msgstr and e.msgstr != e.msgid and len(e.msgid.split()) >= 2 and "%" not in e.msgid
    }
    for path in ("/", f"/channels/{pump.pk}/", "/channels/", "/energy/", "/alerts/", "/accounts/login/"):
        page = visible_text(client.get(path, HTTP_ACCEPT_LANGUAGE="fr").content.decode())
        leftovers = sorted(msgid for msgid in english if msgid in page)
        assert leftovers == [], path
