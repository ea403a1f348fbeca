"""Two people with the same name are offered a merge in the People page too (issue 19, item 3): naming a
person like another asks whether they are the same person; yes merges them, no keeps both (names repeat)."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app_testkit import make_window, wait_idle


def _rename(qtbot, window, person_id: int, name: str) -> None:
    page = window.people
    page.select_people([person_id])
    qtbot.wait(10)
    page.name_edit.clear()
    qtbot.keyClicks(page.name_edit, name)
    qtbot.keyClick(page.name_edit, Qt.Key.Key_Return)
    wait_idle(qtbot, window)


def test_a_second_ann_is_offered_a_merge(qtbot, scanned_env):
    window = make_window(qtbot, scanned_env)
    window.show_page("people")
    wait_idle(qtbot, window)
    page = window.people
    first, second, third = [c for c in page.cards if not c.is_unknown][:3]
    asked = []
    page.confirm_namesake_merge = lambda name, others: asked.append((name, others)) or False
    _rename(qtbot, window, first.id, "Ann")
    assert asked == []  # the first Ann: nothing to ask
    _rename(qtbot, window, second.id, "Ann")
    assert asked == [("Ann", 1)]
    assert sorted(c.name for c in page.cards if c.name == "Ann") == ["Ann", "Ann"]  # "no": both kept

    page.confirm_namesake_merge = lambda name, others: asked.append((name, others)) or True
    _rename(qtbot, window, third.id, "Ann")
    wait_idle(qtbot, window)
    assert asked[-1] == ("Ann", 2)
    anns = [c for c in page.cards if c.name == "Ann"]
    assert len(anns) == 1 and anns[0].face_count == first.face_count + second.face_count + third.face_count
