"""DuckDB views over ``runs`` that follow the links between runs: ``children`` (child workflows,
by ``parent_run_id``) and ``chains`` (continue-as-new, by ``continued_from_run_id``). They read
only the ``runs`` view, so they are the same on the scanner and the COPY fallback path.
"""

from __future__ import annotations

__all__ = ["CHAINS_VIEW", "CHILDREN_VIEW", "LINK_VIEWS"]


#: One row per child run: its parent, and its depth below the top-level run (1: a direct child
#: of a run that has no parent). A cycle cannot be written by the engine; the depth is capped.
CHILDREN_VIEW = """
CREATE OR REPLACE VIEW children AS
WITH RECURSIVE linked AS MATERIALIZED (
    SELECT id, parent_run_id, workflow, state, correlation_id, started_at, completed_at
      FROM runs WHERE parent_run_id IS NOT NULL
), up(run_id, ancestor, depth) AS (
    SELECT id, parent_run_id, 1 FROM linked
    UNION ALL
    SELECT up.run_id, l.parent_run_id, up.depth + 1
      FROM up JOIN linked l ON l.id = up.ancestor
     WHERE up.depth < 10000
)
SELECT l.parent_run_id, l.id AS run_id, l.workflow, l.state, l.correlation_id,
       l.started_at, l.completed_at, epoch(l.completed_at - l.started_at) AS duration_s,
       d.depth
  FROM linked l JOIN (SELECT run_id, max(depth) AS depth FROM up GROUP BY run_id) d ON d.run_id = l.id
"""

#: One row per run of a continue-as-new chain, from its first run (position 1, the run nothing
#: continues) along continued_from_run_id; current_run_id is the chain's last run.
CHAINS_VIEW = """
CREATE OR REPLACE VIEW chains AS
WITH RECURSIVE linked AS MATERIALIZED (
    SELECT id, continued_from_run_id, correlation_id, workflow, state, started_at, completed_at
      FROM runs WHERE continued_from_run_id IS NOT NULL
), heads AS (
    SELECT id, continued_from_run_id, correlation_id, workflow, state, started_at, completed_at
      FROM runs
     WHERE continued_from_run_id IS NULL AND id IN (SELECT continued_from_run_id FROM linked)
), chain(first_run_id, run_id, position) AS (
    SELECT id, id, 1 FROM heads
    UNION ALL
    SELECT c.first_run_id, l.id, c.position + 1
      FROM chain c JOIN linked l ON l.continued_from_run_id = c.run_id
     WHERE c.position < 100000
), members AS (
    SELECT * FROM heads UNION ALL SELECT * FROM linked
)
SELECT m.correlation_id, c.first_run_id, c.position, m.id AS run_id, m.continued_from_run_id,
       m.workflow, m.state, m.started_at, m.completed_at,
       arg_max(c.run_id, c.position) OVER (PARTITION BY c.first_run_id) AS current_run_id
  FROM chain c JOIN members m ON m.id = c.run_id
"""

#: The views built over ``runs`` on every connection, after the four mirrored ones.
LINK_VIEWS: tuple[tuple[str, str], ...] = (("children", CHILDREN_VIEW), ("chains", CHAINS_VIEW))
