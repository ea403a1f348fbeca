"""Settings → Scan workers: saved with the preferences and used by the Library's scans."""

from __future__ import annotations

import shutil

from app_testkit import make_window, wait_idle


def test_scan_workers_setting_is_saved_and_used(qtbot, env, shared):
    lfw = shared / "data" / "lfw_subset" / "images"
    albums = []
    for name in ("Dick_Cheney", "Winona_Ryder"):
        album = env / "albums" / name
        album.mkdir(parents=True)
        for photo in sorted((lfw / name).glob("*.jpg"))[:2]:
            shutil.copy2(photo, album / photo.name)
        albums.append(album)

    window = make_window(qtbot, env)
    for workers, album in ((1, albums[0]), (2, albums[1])):
        window.show_page("settings")
        page = window.settings_page
        page.scan_workers.setValue(workers)
        page.save_button.click()
        wait_idle(qtbot, window)
        assert f'"scan_workers": {workers}' in window.context.preferences_path.read_text()
        window.handle_dropped_paths([album])
        wait_idle(qtbot, window, 120)
        result = window.library.last_scan
        assert result is not None and result.workers == workers and result.added == 2
    window.close()
