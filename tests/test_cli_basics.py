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
