"""A count and its noun agree: "1 face", "2 faces", never "1 faces" or "face(s)" (issue 19, item 6d)."""

from __future__ import annotations

import json
import re

from catalog_testkit import scan_two_people_with_the_cli

from engine.text import noun_for, plural

#: a count followed by a plural noun where the count is 1, or a "(s)" left for the reader to resolve
WRONG = re.compile(r"\b1 (faces|photos|people|files|parts|references|links|outputs)\b|\(s\)")


def test_plural_words():
    assert [plural(n, "face") for n in (0, 1, 2)] == ["0 faces", "1 face", "2 faces"]
    assert plural(1, "person", "people") == "1 person" and plural(3, "person", "people") == "3 people"
    assert plural(1, "new person", "new people") == "1 new person"
    assert noun_for(1, "face") == "face" and noun_for(2, "face") == "faces"


def test_the_people_commands_count_in_words(shared, tmp_path, run_cli, analyzer, monkeypatch):
    db, cheney, out = scan_two_people_with_the_cli(shared, tmp_path, run_cli, analyzer, monkeypatch)
    printed = [out]

    listing = json.loads(run_cli("people", "list", "--json", "--catalog", db)[1])
    pid = next(p["id"] for p in listing["people"] if "Cheney" in p["faces"][0]["photo"])
    assert run_cli("people", "rename", pid, "Dick", "--catalog", db)[0] == 0

    code, out, err = run_cli("people", "confirm", "Dick", cheney[0], "--catalog", db)
    assert code == 0 and out.strip() == "confirmed 1 face as Dick", err
    code, out, err = run_cli("people", "split", "Dick", cheney[1], "--name", "Other", "--catalog", db)
    assert code == 0 and out.strip() == "split 1 face out of Dick into Other", err
    code, out, err = run_cli("people", "reject", "Dick", cheney[2], "--catalog", db)
    assert code == 0 and out.strip() == "1 face is not Dick", err
    code, out, err = run_cli("people", "new", "Dick 2003", cheney[2], "--catalog", db)
    assert code == 0 and out.strip().endswith("with 1 confirmed face"), out

    code, out, _ = run_cli("people", "list", "--catalog", db)
    assert code == 0 and re.search(r"Other: 1 face$", out, re.M), out
    printed.append(out)
    code, out, _ = run_cli("catalog", "check", "--catalog", db)
    assert code == 0 and "6 photos, 6 faces" in out, out
    printed.append(out)
    code, _, err = run_cli("people", "split", "Dick", cheney[2], "--catalog", db)  # not one of Dick's faces
    assert code == 2 and re.search(r"face #\d+ is not in Dick", err), err
    printed.append(err)
    assert not [m.group(0) for text in printed for m in WRONG.finditer(text)], printed


def test_a_missing_part_is_counted_in_words(run_cli, tmp_path):
    code, out, _ = run_cli("models", "verify", "--models", tmp_path / "empty-pack", "faceme-mix")
    assert code == 4
    assert "1 part missing or invalid: faceme-mix" in out and not WRONG.search(out), out
