"""Issue #15, item 6: every test has a time limit (pytest-timeout, pyproject.toml), so a hung
test (a DDP spawn waiting on a dead rank) fails instead of blocking CI."""
import subprocess
import sys
import textwrap


def test_the_default_limit_is_set(request):
    assert request.config.pluginmanager.hasplugin("timeout")
    assert float(request.config.getini("timeout")) == 600  # measured slowest: 38 s (pyproject.toml)
    assert request.config.getini("timeout_func_only") is True


def test_a_hung_test_fails(tmp_path):
    """A test that sleeps past a (shortened) limit fails and the run goes on to the next test."""
    (tmp_path / "test_hang.py").write_text(textwrap.dedent("""
        import time
        def test_hangs():
            time.sleep(60)
        def test_after():
            pass
    """))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "timeout=2",
                        str(tmp_path / "test_hang.py")], capture_output=True, text=True, timeout=50, cwd=tmp_path)
    assert r.returncode == 1 and "1 failed, 1 passed" in r.stdout and "Timeout" in r.stdout, r.stdout[-2000:]
