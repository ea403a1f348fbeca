"""Two people with the same name are offered a merge (issue 19, item 3): `faceme people rename` and `faceme
people list` say who else has the name and the command that makes them one; names may still repeat."""

from __future__ import annotations

from catalog_testkit import add_photos, lfw_numbers

from engine.catalog.scanner import scan


def test_a_second_ann_is_offered_a_merge(shared, tmp_path, catalog, analyzer, run_cli):
    album = tmp_path / "album"
    add_photos(shared, album, "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:2])
    add_photos(shared, album, "Winona_Ryder", lfw_numbers(shared, "Winona_Ryder")[:2])
    scan(catalog, [album], analyzer=analyzer, workers=1)
    db = catalog.engine.url.database
    import json

    people = json.loads(run_cli("people", "list", "--json", "--catalog", db)[1])["people"]
    first, second = people[0]["id"], people[1]["id"]
    assert run_cli("people", "rename", str(first), "Ann", "--catalog", db)[0] == 0
    code, out, err = run_cli("people", "rename", str(second), "Ann", "--catalog", db)
    assert code == 0, err
    assert f"person {second} is now Ann" in out
    assert f"person {first} is also named Ann: if they are the same person, `faceme people merge {first} {second}`" \
        in out
    code, out, _ = run_cli("people", "list", "--catalog", db)
    assert f"2 people are named Ann ({min(first, second)}, {max(first, second)})" in out
    assert json.loads(run_cli("people", "list", "--json", "--catalog", db)[1])["people"][0]["name"] == "Ann"
