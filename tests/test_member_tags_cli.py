"""``python -m bot tags import FILE.csv`` end to end in a subprocess: migrates, applies the
good rows, reports the bad ones by line, audits as the given actor, and a re-run changes nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.test_kb_import import run_cli


def test_tags_import_cli(tmp_path: Path) -> None:
    db = tmp_path / "cli.sqlite3"
    assert run_cli(tmp_path, "migrate").returncode == 0
    con = sqlite3.connect(db)
    con.execute(
        "INSERT INTO member (display_name, locale, locale_explicit, tags, status, is_staff, opted_out, created_at)"
        " VALUES ('a', 'zh_CN', 0, '[]', 'active', 0, 0, CURRENT_TIMESTAMP)"
    )
    con.commit()
    member_id = con.execute("SELECT id FROM member").fetchone()[0]
    con.close()
    rows = tmp_path / "tags.csv"
    rows.write_text(f"member,tag,op\n{member_id},VIP\n{member_id},plan:5g\nnobody,x\n", encoding="utf-8")
    res = run_cli(tmp_path, "tags", "import", str(rows), "--actor", "ops-lead")
    assert res.returncode == 1 and "line 4: no member 'nobody'" in res.stderr and "Traceback" not in res.stderr
    assert "2 changed, 0 already so, 1 errors" in res.stdout
    again = run_cli(tmp_path, "tags", "import", str(rows), "--actor", "ops-lead")
    assert "0 changed, 2 already so" in again.stdout
    con = sqlite3.connect(db)
    assert con.execute("SELECT tags FROM member").fetchone()[0].replace(" ", "") == '["plan:5g","vip"]'
    audit = con.execute("SELECT tag, op, actor, source FROM member_tag_change ORDER BY id").fetchall()
    assert audit == [("vip", "add", "cli:ops-lead", "cli"), ("plan:5g", "add", "cli:ops-lead", "cli")]
    con.close()
    missing = run_cli(tmp_path, "tags", "import", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
