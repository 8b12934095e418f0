"""Config validation: every error is one line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from drbdbackup.service.config import ConfigError, load_config
from drbdbackup.service.main import serve

from .conftest import Env, write_config

GOOD_SERVICE = 'listen = "127.0.0.1:8470"\ntoken_file = "t"\nstate_db = "s.db"'
GOOD_POLICY = '[[policy]]\nname = "p"\nfiles = [{ path = "f", volume_id = "v" }]'


def cfg(tmp_path: Path, service: str = GOOD_SERVICE, rest: str = GOOD_POLICY) -> str:
    p = tmp_path / "c.toml"
    p.write_text(f'[service]\n{service}\n\n[repository]\nlocation = "repo"\n\n{rest}\n')
    return str(p)


def test_good_config_and_defaults(tmp_path: Path) -> None:
    s = load_config(cfg(tmp_path, rest=GOOD_POLICY + '\nschedule = "*/5 * * * *"\nkeep_last = 3\n'
                        '\n[[policy]]\nname = "r"\nresources = ["a", "b"]\nkeep_last = 3\n'
                        '\n[linstor]\ncontrollers = "linstor://c1"\nallow_insecure = true'))
    assert s.service.max_jobs == 2 and s.service.max_jobs_per_node == 1
    assert s.service.linstor_api_rate == 10 and s.service.read_rate_mib == 0
    assert s.service.state_db == str(tmp_path / "s.db")
    assert s.repository.location == str(tmp_path / "repo")
    assert s.policy[0].files[0].path == str(tmp_path / "f") and s.policy[0].target() == "files:v"
    assert s.policy[1].target() == "resources:a,b" and s.linstor.allow_insecure
    assert s.policy_named("r") is s.policy[1] and s.policy_named("x") is None


def test_s3_location_is_kept(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text(f'[service]\n{GOOD_SERVICE}\n[repository]\nlocation = "s3://b/p"\n')
    assert load_config(str(p)).repository.location == "s3://b/p"


@pytest.mark.parametrize(("service", "rest", "needle"), [
    ('listen = "0.0.0.0:8470"\ntoken_file = "t"\nstate_db = "s"', GOOD_POLICY, "allow_remote"),
    ('listen = "10.1.2.3:80"\ntoken_file = "t"\nstate_db = "s"', GOOD_POLICY, "not loopback"),
    ('listen = "127.0.0.1"\ntoken_file = "t"\nstate_db = "s"', GOOD_POLICY, "HOST:PORT"),
    ('listen = "127.0.0.1:99999"\ntoken_file = "t"\nstate_db = "s"', GOOD_POLICY, "HOST:PORT"),
    ('state_db = "s"', GOOD_POLICY, "service.token_file"),
    (GOOD_SERVICE + "\nmax_jobs = 0", GOOD_POLICY, "service.max_jobs"),
    (GOOD_SERVICE + "\nlinstor_api_rate = 0", GOOD_POLICY, "linstor_api_rate"),
    (GOOD_SERVICE + "\nread_rate_mib = -1", GOOD_POLICY, "read_rate_mib"),
    (GOOD_SERVICE + '\ntimezone = "Mars/Base"', GOOD_POLICY, "timezone"),
    (GOOD_SERVICE + "\nbogus = 1", GOOD_POLICY, "service.bogus"),
    (GOOD_SERVICE, GOOD_POLICY + '\nschedule = "61 * * * *"', "bad cron expression"),
    (GOOD_SERVICE, GOOD_POLICY + '\nschedule = "daily"', "5 fields"),
    (GOOD_SERVICE, GOOD_POLICY + '\nresources = ["r"]', "exactly one of"),
    (GOOD_SERVICE, '[[policy]]\nname = "p"', "exactly one of"),
    (GOOD_SERVICE, GOOD_POLICY + "\nverify_sample = 1.5", "verify_sample"),
    (GOOD_SERVICE, GOOD_POLICY + '\ntracker = "magic"', "tracker"),
    (GOOD_SERVICE, GOOD_POLICY + "\nkeep_last = -1", "keep_last"),
    (GOOD_SERVICE, '[[policy]]\nname = "bad name"\nfiles = [{ path = "f", volume_id = "v" }]', "policy.0.name"),
    (GOOD_SERVICE, '[[policy]]\nname = "p"\nfiles = [{ path = "f", volume_id = "a/b" }]', "volume_id"),
    (GOOD_SERVICE, GOOD_POLICY + "\n" + GOOD_POLICY, "duplicate policy"),
    (GOOD_SERVICE, GOOD_POLICY + '\nkeep_within = "2 days"', "keep_within"),
    (GOOD_SERVICE, GOOD_POLICY + "\nkeep_monthly = -1", "keep_monthly"),
    (GOOD_SERVICE, "[linstor]\nfoo = 1", "linstor.foo"),
    (GOOD_SERVICE, "[[policy]]\nname = ", "not valid TOML"),
])
def test_bad_config(tmp_path: Path, service: str, rest: str, needle: str) -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(cfg(tmp_path, service, rest))
    msg = str(ei.value)
    assert needle in msg and "\n" not in msg and ei.value.exit_code == 2


def test_remote_allowed_when_asked(tmp_path: Path) -> None:
    s = load_config(cfg(tmp_path, 'listen = "0.0.0.0:8470"\nallow_remote = true\ntoken_file = "t"\nstate_db = "s"'))
    assert s.service.allow_remote


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(str(tmp_path / "nope.toml"))


def test_serve_bad_config_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert serve(cfg(tmp_path, 'listen = "8.8.8.8:1"\ntoken_file = "t"\nstate_db = "s"')) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err and "allow_remote" in err


def test_serve_missing_token_file_exit_2(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    (env.tmp / "token").unlink()
    assert serve(str(env.config)) == 2
    err = capsys.readouterr().err
    assert "cannot read API token file" in err and "Traceback" not in err


def test_serve_empty_token_file_exit_2(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    (env.tmp / "token").write_text("\n")
    assert serve(str(write_config(env.tmp))) == 2
    assert "is empty" in capsys.readouterr().err


def test_docstring_example_parses(tmp_path: Path) -> None:
    import textwrap

    from drbdbackup.service import config

    doc = config.__doc__ or ""
    example = textwrap.dedent(doc.split("EXAMPLE (parsed by the tests):", 1)[1])
    p = tmp_path / "example.toml"
    p.write_text(example)
    s = load_config(str(p))
    assert [x.name for x in s.policy] == ["vms", "images"] and s.policy[0].schedule == "15 2 * * *"
