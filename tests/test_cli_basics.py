from engine.models.layout import RESTORATION_PARTS


def test_models_verify_empty_folder_lists_parts_missing(tmp_path, run_cli):
    code, out, _ = run_cli("models", "verify", "--models", tmp_path)
    assert code == 4
    for name in RESTORATION_PARTS:
        line = next(line for line in out.splitlines() if line.strip().startswith(name))
        assert "missing" in line
    assert out.count("get it:") == len(RESTORATION_PARTS)
    assert "huggingface" in out.lower() or "hugging face" in out.lower()


def test_unknown_command_is_usage_error(run_cli):
    code, _, err = run_cli("no-such-command")
    assert code == 2
    assert "invalid choice" in err


def test_info_on_an_empty_folder_says_how_to_get_the_pack(tmp_path, run_cli):
    code, out, _ = run_cli("info", "--models", tmp_path)
    assert code == 0
    assert "faceme models download" in out and "GB" in out and "non-commercial" in out


def test_models_without_an_action_shows_its_actions(run_cli):
    code, out, _ = run_cli("models")
    assert code == 2
    for action in ("list", "download", "import", "verify", "remove"):
        assert action in out


def test_models_commands_reject_unknown_parts(tmp_path, run_cli):
    assert run_cli("models", "verify", "no-such-part", "--models", tmp_path)[0] == 2
    assert run_cli("models", "remove", "no-such-part", "--models", tmp_path)[0] == 2
    code, _, err = run_cli("models", "download", "no-such-part", "--models", tmp_path, "--accept-licenses")
    assert code == 2 and "unknown model part" in err
