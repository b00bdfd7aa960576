"""Development aid until the first release: rebuild revision 0001 from the models.

Once a schema has shipped, never use this: add a new revision with
``alembic revision --autogenerate`` instead (see README, 开发).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command

from bot.db import MIGRATIONS, alembic_config, make_engine


def main() -> None:
    for old in (MIGRATIONS / "versions").glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'gen.db'}")
        command.revision(
            alembic_config(engine), message="initial schema", autogenerate=True, rev_id="0001"
        )
        engine.dispose()


if __name__ == "__main__":
    main()
